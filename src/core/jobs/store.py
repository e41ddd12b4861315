"""The content-addressed store in a host's workdir, and sending files into it.

On the host: WORKDIR/.tunedeck/store/sha256/ab/abcdef... holds each file once, read-only, named
by its SHA-256; a run reads a tree of hard links to it, WORKDIR/.tunedeck/inputs/<tree>/...,
named by the hash of its manifest. Files are pushed into a staging folder, their hashes checked
on the host, then renamed into the store: a dropped connection leaves nothing half-written in
use, and the next sync sends only what the store still lacks.
Here: hashes are cached by (path, size, mtime_ns), so an unchanged folder is not read again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tunedeck.core.errors import HostError, Location
from tunedeck.core.locations import ensure, state_dir

STORE_DIR = ".tunedeck/store"
INPUTS_DIR = ".tunedeck/inputs"
OBJECTS = "sha256"
INCOMING = "incoming"
STALE_STAGING = 24 * 3600.0
HASH_CHUNK = 4 << 20


@dataclass(frozen=True)
class SyncResult:
    """What one sync did: files and bytes sent, files the host already had, the tree there."""

    files_sent: int
    bytes_sent: int
    files_present: int
    bytes_present: int
    tree: str  # absolute path of the run's tree on the host
    method: str

    def summary(self, host: str) -> str:
        """`synced: 1 file, 10.0 MB (11 files already on gpu1)`."""
        text = f"synced: {_count(self.files_sent)}, {human_bytes(self.bytes_sent)}"
        if self.files_present:
            text += f" ({_count(self.files_present)} already on {host})"
        return text


# --- here: hashing -----------------------------------------------------------------------


class HashCache:
    """SHA-256 of local files, remembered by (path, size, mtime_ns) in <state>/hashes.sqlite."""

    def __init__(self, path: Path | None = None):
        self.path = path or ensure(state_dir()) / "hashes.sqlite"
        self.db = sqlite3.connect(self.path, timeout=30)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS hashes (path TEXT PRIMARY KEY, size INTEGER,"
            " mtime_ns INTEGER, sha256 TEXT)"
        )

    def digest(self, path: Path) -> str:
        """The file's SHA-256, read again only when its size or mtime changed."""
        return self.digests([path])[0]

    def digests(self, paths: list[Path]) -> list[str]:
        """SHA-256 of each file; those not cached are read on several threads, stored in one
        commit."""
        keys = []
        for path in paths:
            real = str(Path(path).resolve())
            info = os.stat(real)
            keys.append((real, info.st_size, info.st_mtime_ns))
        found = [self._cached(key) for key in keys]
        todo = [key for key, digest in zip(keys, found, strict=True) if digest is None]
        computed = dict(zip(todo, parallel_sha256([key[0] for key in todo]), strict=True))
        if computed:
            self.db.executemany(
                "INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?)",
                [(*key, digest) for key, digest in computed.items()],
            )
            self.db.commit()
        return [digest or computed[key] for key, digest in zip(keys, found, strict=True)]

    def _cached(self, key: tuple[str, int, int]) -> str | None:
        row = self.db.execute(
            "SELECT sha256 FROM hashes WHERE path = ? AND size = ? AND mtime_ns = ?", key
        ).fetchone()
        return row[0] if row else None

    def close(self) -> None:
        self.db.close()


def parallel_sha256(paths: list[str | Path]) -> list[str]:
    """SHA-256 of each file, read on up to one thread per core (hashlib releases the GIL)."""
    if len(paths) <= 1:
        return [file_sha256(path) for path in paths]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(len(paths), os.cpu_count() or 1, 8)) as pool:
        return list(pool.map(file_sha256, paths))


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def tree_id(manifest: Mapping[str, str]) -> str:
    """The name of a run tree: the hash of its sorted (name, file hash) pairs."""
    digest = hashlib.sha256()
    for name in sorted(manifest):
        digest.update(f"{name}\0{manifest[name]}\n".encode())
    return digest.hexdigest()[:32]


# --- here: sending -----------------------------------------------------------------------


def sync_tree(
    backend,
    files: Mapping[str, Path],
    on_progress=None,
    approve=None,
    cache: HashCache | None = None,
    bwlimit: int | None = None,
) -> SyncResult:
    """Make the tree `files` (name in the tree -> local file) exist on the backend's host,
    sending only the files its store lacks; returns where the tree is there.

    `approve(missing)` sees {name: size} of what must be sent and may raise to refuse it."""
    from tunedeck.core.jobs.transfer import push_files

    own_cache = cache is None
    cache = cache or HashCache()
    try:
        names = list(files)
        manifest = dict(zip(names, cache.digests([files[name] for name in names]), strict=True))
    finally:
        if own_cache:
            cache.close()
    by_hash = {digest: files[name] for name, digest in manifest.items()}
    answer = backend.request("store_have", hashes=sorted(by_hash))
    have = set(answer["have"])
    missing = {digest: path for digest, path in by_hash.items() if digest not in have}
    if approve is not None:
        approve({n: files[n].stat().st_size for n, d in manifest.items() if d in missing})
    staging = answer["incoming"] + "/" + uuid.uuid4().hex[:16]
    method = "none"
    if missing:
        sent = push_files(
            backend.host_config, missing, staging, on_progress=on_progress, bwlimit=bwlimit
        )
        method = sent.method
    done = backend.request(
        "store_commit",
        staging=staging if missing else None,
        objects={digest: path.stat().st_size for digest, path in missing.items()},
        manifest=manifest,
    )
    present = [d for d in by_hash if d in have]
    return SyncResult(
        files_sent=len(missing),
        bytes_sent=sum(p.stat().st_size for p in missing.values()),
        files_present=len(present),
        bytes_present=sum(by_hash[d].stat().st_size for d in present),
        tree=done["tree"],
        method=method,
    )


# --- on the host: the agent's side -------------------------------------------------------


def store_have(hashes: list[str], paths: list[str] = ()) -> dict:
    """Which of `hashes` the store holds, which `paths` exist, and where to stage new files."""
    root = _writable(Path(STORE_DIR))
    incoming = root / INCOMING
    incoming.mkdir(parents=True, exist_ok=True)
    _drop_stale(incoming)
    have = [h for h in hashes if _object(root, h).is_file()]
    exist = [p for p in paths if os.path.exists(os.path.expanduser(p))]
    return {"have": have, "paths": exist, "incoming": str(incoming.absolute())}


def store_commit(staging: str | None, objects: Mapping[str, int], manifest: Mapping[str, str]):
    """Check each staged file's hash and size, move it into the store, then build the tree."""
    root = _writable(Path(STORE_DIR))
    if staging:
        folder = Path(staging)
        try:
            _admit_all(root, folder, {digest: int(size) for digest, size in objects.items()})
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return {"tree": str(_build_tree(root, manifest).absolute())}


def _admit_all(root: Path, folder: Path, objects: dict[str, int]) -> None:
    """Check every staged file (hashed on several threads), then move each into the store."""
    todo = {d: s for d, s in objects.items() if not _object(root, d).is_file()}
    whole = [
        d for d, s in todo.items() if (folder / d).is_file() and (folder / d).stat().st_size == s
    ]
    found = dict(zip(whole, parallel_sha256([folder / d for d in whole]), strict=True))
    for digest in todo:
        _admit(root, folder / digest, digest, found.get(digest))


def _admit(root: Path, staged: Path, digest: str, found: str | None) -> None:
    final = _object(root, digest)
    if found != digest:
        raise HostError(
            f"a sent file does not match its hash ({digest[:12]}): not stored",
            location=Location(file=str(staged.absolute())),
            hint="run the launch again: the file is sent anew",
        )
    final.parent.mkdir(parents=True, exist_ok=True)
    staged.chmod(0o444)
    os.replace(staged, final)


def _build_tree(root: Path, manifest: Mapping[str, str]) -> Path:
    final = Path(INPUTS_DIR) / tree_id(manifest)
    if final.is_dir():
        return final
    building = final.with_name(final.name + f".tmp-{uuid.uuid4().hex[:8]}")
    for name, digest in manifest.items():
        source, target = _object(root, digest), building / _inside(name)
        if not source.is_file():
            shutil.rmtree(building, ignore_errors=True)
            raise HostError(f"the store lacks {digest[:12]} for {name}", hint="sync again")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
    building.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(building, final)
    except OSError:
        shutil.rmtree(building, ignore_errors=True)  # built meanwhile by another launch
    return final


def _writable(root: Path) -> Path:
    try:
        (root / OBJECTS).mkdir(parents=True, exist_ok=True)
        Path(INPUTS_DIR).mkdir(parents=True, exist_ok=True)
    except PermissionError:
        pass
    if not os.access(root / OBJECTS, os.W_OK) or not os.access(INPUTS_DIR, os.W_OK):
        raise HostError(
            f"cannot write the store in the workdir {os.getcwd()} (permission denied)",
            location=Location(file=str(root.absolute())),
            hint="give the host a workdir it can write: tunedeck hosts add NAME TARGET --workdir DIR",
        )
    return root


def _object(root: Path, digest: str) -> Path:
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"not a sha256: {digest!r}")
    return root / OBJECTS / digest[:2] / digest


def _inside(name: str) -> str:
    parts = Path(name).parts
    if not parts or Path(name).is_absolute() or ".." in parts:
        raise ValueError(f"not a name inside a tree: {name!r}")
    return name


def _drop_stale(incoming: Path) -> None:
    cutoff = time.time() - STALE_STAGING
    for folder in incoming.iterdir():
        try:
            if folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            pass


def human_bytes(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def _count(files: int) -> str:
    return f"{files} file" if files == 1 else f"{files} files"
