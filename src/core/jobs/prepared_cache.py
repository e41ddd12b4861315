"""The prepared-data cache of a box: what runs prepared there (runners.prepared builds it), and
removing it, here or on a host through its agent.

Each folder under cache_root() is one set of inputs (its key); meta.json says what made it and
its mtime when a run last read it (mark_used). A build a killed run left
half-done (`.KEY.PID.partial`, its process gone) is listed as partial and removed with the rest.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunedeck.core.errors import UsageError
from tunedeck.core.jobs import procs
from tunedeck.core.jobs.store import human_bytes
from tunedeck.core.locations import cache_dir

META_FILE = "meta.json"  # written last by a build: a folder without it is not complete

MIN_PREFIX = 4  # the shortest key prefix that names a folder
CELLS = ("key", "size", "examples", "datasets", "template", "model", "used")


def cache_root() -> Path:
    """Where this box's prepared data lives: one folder per set of inputs."""
    return cache_dir() / "prepared"


@dataclass(frozen=True)
class CachedData:
    """One folder of prepared data (or a partial build) and what made it."""

    key: str
    folder: Path
    size: int  # bytes on disk
    examples: int
    tokens: int
    built_at: float
    used_at: float  # when a run last read it (or built it)
    about: dict[str, Any]  # datasets, template, model, stage, cutoff_len
    partial: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "folder": str(self.folder),
            "size": self.size,
            "examples": self.examples,
            "tokens": self.tokens,
            "built_at": self.built_at,
            "used_at": self.used_at,
            "partial": self.partial,
            "about": self.about,
        }

    def cells(self, now: float) -> list[str]:
        """The entry as a listing shows it (CELLS' columns)."""
        about = self.about
        return [
            self.key[:12],
            human_bytes(self.size),
            "partial" if self.partial else f"{self.examples:,}",
            ",".join(about.get("datasets", ())) or "-",
            str(about.get("template") or "-"),
            Path(str(about.get("model") or "-")).name,
            f"{_age(now - self.used_at)} ago",
        ]

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> CachedData:
        fields = {k: doc[k] for k in ("key", "size", "examples", "tokens", "built_at", "used_at")}
        return cls(
            folder=Path(doc["folder"]), about=dict(doc.get("about") or {}),
            partial=bool(doc.get("partial")), **fields,
        )  # fmt: skip


def prepared_on(
    host: str | None,
    remove: list[str] | None = None,
    older_than_s: float | None = None,
    clear: bool = False,
) -> tuple[str, list[CachedData], bool]:
    """(the cache folder, its entries, whether they were removed) on `host` (None: this box),
    through its agent: a listing, or with `remove`, `older_than_s` or `clear` a removal."""
    ask = {"remove": remove, "older_than_s": older_than_s, "clear": clear}
    backend = None
    if host not in (None, "local"):
        from tunedeck.core.jobs import get_backend

        backend = get_backend(host)
    if backend is not None and hasattr(backend, "request"):
        try:
            answer = backend.request("prepared", **ask)
        finally:
            backend.close()
    else:  # this box, or a Slurm login node that is this box
        answer = prepared_here(**ask)
    entries = [CachedData.from_dict(doc) for doc in answer["entries"]]
    return answer["folder"], entries, answer["removed"]


def prepared_here(
    remove: list[str] | None = None, older_than_s: float | None = None, clear: bool = False
) -> dict[str, Any]:
    """The agent's side of prepared_on: this box's cache listed, or the asked part removed."""
    removing = bool(remove) or older_than_s is not None or clear
    if sum((bool(remove), older_than_s is not None, clear)) > 1:
        raise UsageError("give one of --rm, --older-than and --clear")
    entries = remove_prepared(remove, older_than_s) if removing else list_prepared()
    return {
        "folder": str(cache_root()),
        "entries": [e.to_dict() for e in entries],
        "removed": removing,
    }


def list_prepared(root: Path | None = None) -> list[CachedData]:
    """Every folder of the cache, the last used first; partial builds of live processes are
    left out (they are still being written)."""
    root = root or cache_root()
    if not root.is_dir():
        return []
    found = [entry for path in root.iterdir() if (entry := _entry(path)) is not None]
    return sorted(found, key=lambda e: e.used_at, reverse=True)


def remove_prepared(
    keys: list[str] | None = None,
    older_than_s: float | None = None,
    root: Path | None = None,
) -> list[CachedData]:
    """Remove the folders named by key (or a unique prefix of one), or those not used for
    `older_than_s`, or all of them (neither given); the ones removed."""
    entries = list_prepared(root)
    if keys:
        chosen = [_named(entries, key) for key in keys]
    elif older_than_s is not None:
        cutoff = time.time() - older_than_s
        chosen = [e for e in entries if e.used_at < cutoff]
    else:
        chosen = entries
    for entry in chosen:
        shutil.rmtree(entry.folder, ignore_errors=True)
    return chosen


def mark_used(folder: Path) -> None:
    """Stamp a folder as read by a run now (meta.json's mtime, the listing's `used`)."""
    try:
        os.utime(folder / META_FILE)
    except OSError:
        pass  # a read-only tokenized_path: nothing to stamp


def _named(entries: list[CachedData], key: str) -> CachedData:
    matches = [e for e in entries if e.key.startswith(key)] if len(key) >= MIN_PREFIX else []
    if len(matches) == 1:
        return matches[0]
    reason = "names no prepared data" if not matches else "is the start of several keys"
    if len(key) < MIN_PREFIX:
        reason = f"is shorter than {MIN_PREFIX} characters"
    raise UsageError(f"{key!r} {reason}", hint="`tunedeck data prepared` lists the keys")


def _entry(path: Path) -> CachedData | None:
    if not path.is_dir():
        return None
    if path.name.startswith(".") and path.name.endswith(".partial"):
        return _partial(path)
    try:
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
        stat = (path / META_FILE).stat()
    except (OSError, ValueError):
        return None  # not ours, or not complete
    if not isinstance(meta, dict) or not isinstance(meta.get("rows"), dict):
        return None
    return CachedData(
        key=path.name,
        folder=path,
        size=_size(path),
        examples=int(meta["rows"].get("train", 0)),
        tokens=int(meta.get("tokens", 0)),
        built_at=float(meta.get("built_at", stat.st_mtime)),
        used_at=stat.st_mtime,
        about=dict(meta.get("about", {})),
    )


def _partial(path: Path) -> CachedData | None:
    """A build left by a process that is gone (its pid is in the name); None while it runs."""
    try:
        pid = int(path.name.rsplit(".", 2)[-2])
    except ValueError:
        return None
    if procs.is_alive(pid, None):
        return None
    mtime = path.stat().st_mtime
    key = path.name[1:].split(".", 1)[0]
    return CachedData(key, path, _size(path), 0, 0, mtime, mtime, {}, partial=True)


def _size(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        try:
            total += path.stat().st_blocks * 512 if path.is_file() else 0
        except OSError:
            continue
    return total


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(max(seconds, 0))}s"
