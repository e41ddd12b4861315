"""Watched folders (e.g. LLaMA-Factory's `saves/`): run folders that appear under them are added
as watched runs by themselves. Kept in config_dir()/watch.toml (0600, like hosts.toml):

    stale_after = 600            # seconds without a change before a watched run reads `stale`

    [[folders]]
    host = "local"
    path = "/home/me/LLaMA-Factory/saves"

The scan is stat-based: a folder is listed again only when its mtime changed (a new entry in
it), and a run folder found once is never looked into again by the scan.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from tunedeck.core.errors import JobError, Location, UsageError
from tunedeck.core.locations import config_dir, toml_string, write_private

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

STALE_AFTER = 600.0  # ten minutes
MAX_DEPTH = 4  # saves/<model>/<method>/<run>: LlamaBoard's layout, one level to spare
RUN_MARKS = ("trainer_log.jsonl", "trainer_state.json", "run_status.json")
CHECKPOINT_PREFIX = "checkpoint-"


@dataclass(frozen=True)
class WatchedFolder:
    """A folder on a host whose new run folders are added by themselves."""

    host: str
    path: str

    def to_dict(self) -> dict:
        return {"host": self.host, "path": self.path}


def watch_file() -> Path:
    return config_dir() / "watch.toml"


def stale_after() -> float:
    """Seconds without a change after which a watched run reads `stale` (watch.toml)."""
    return _SETTINGS.current()[0]


def watched_folders(host: str | None = None) -> list[WatchedFolder]:
    """The watched folders (one host's when given), as watch.toml says now."""
    folders = _SETTINGS.current()[1]
    return [f for f in folders if host is None or f.host == host]


@dataclass(frozen=True)
class FolderWatched:
    """A folder now watched, and the runs found under it at once."""

    host: str
    path: str
    runs: tuple = ()


def watch_folder(path: str, host: str | None = None) -> FolderWatched:
    """Check that `path` is a folder on `host` (this box when None), add the runs under it, and
    keep it in watch.toml so that new ones are added by themselves."""
    from tunedeck.core.jobs.model import LOCAL_HOST
    from tunedeck.core.jobs.pool import BackendPool

    host = host or LOCAL_HOST
    if host == LOCAL_HOST:
        path = os.path.abspath(os.path.expanduser(path))
    with BackendPool() as pool:
        found = pool.backend(host).scan_watched([path])
    if found["missing"]:
        raise JobError(
            f"no such folder on {host}: {path}",
            location=Location(file=path),
            hint="give a folder that exists there (runs may appear in it later)",
        )
    add_folder(WatchedFolder(host, path))
    return FolderWatched(host, path, tuple(found["added"]))


def unwatch_folder(path: str, host: str | None = None) -> WatchedFolder:
    """Stop watching `path` on `host` (as `watch_folder` recorded it)."""
    from tunedeck.core.jobs.model import LOCAL_HOST

    host = host or LOCAL_HOST
    if host == LOCAL_HOST:
        path = os.path.abspath(os.path.expanduser(path))
    folder = WatchedFolder(host, path)
    remove_folder(folder)
    return folder


def add_folder(folder: WatchedFolder) -> WatchedFolder:
    """Add a folder to watch.toml (already there: nothing changes)."""
    stale, folders = _load()
    if folder not in folders:
        _save(stale, [*folders, folder])
    return folder


def remove_folder(folder: WatchedFolder) -> None:
    """Take a folder out of watch.toml; its runs stay listed (rm forgets them one by one)."""
    stale, folders = _load()
    if folder not in folders:
        raise JobError(
            f"{folder.path} is not watched on {folder.host}",
            location=Location(file=str(watch_file())),
            hint="list the watched folders with: tunedeck runs watch",
        )
    _save(stale, [f for f in folders if f != folder])


class FolderScanner:
    """Finds run folders under watched roots; remembers each folder's mtime between scans."""

    def __init__(self) -> None:
        self._dirs: dict[str, tuple[int, tuple[str, ...], bool]] = {}
        self.known: set[str] = set()  # run folders already handled (added, or someone's)
        self.listings = 0  # folders listed so far: an unchanged folder is never listed again
        self._lock = threading.Lock()

    def scan(self, root: str) -> list[str]:
        """Every run folder under `root` (itself included), down to MAX_DEPTH levels."""
        found: list[str] = []
        with self._lock:
            self._walk(os.path.abspath(root), 0, found)
        return found

    def _walk(self, folder: str, depth: int, found: list[str]) -> None:
        entry = self._entry(folder)
        if entry is None:
            return
        _, children, is_run = entry
        if is_run:
            found.append(folder)
            return
        if depth < MAX_DEPTH:
            for child in children:
                self._walk(child, depth + 1, found)

    def _entry(self, folder: str) -> tuple[int, tuple[str, ...], bool] | None:
        try:
            mtime = os.stat(folder).st_mtime_ns
        except OSError:
            self._dirs.pop(folder, None)
            return None
        cached = self._dirs.get(folder)
        if cached is not None and cached[0] == mtime:
            return cached
        children, is_run = [], False
        self.listings += 1
        try:
            with os.scandir(folder) as entries:
                for item in entries:
                    if item.name in RUN_MARKS or item.name.startswith(CHECKPOINT_PREFIX):
                        is_run = True
                    elif not item.name.startswith(".") and item.is_dir(follow_symlinks=False):
                        children.append(item.path)
        except OSError:
            return None
        entry = (mtime, tuple(sorted(children)), is_run)
        self._dirs[folder] = entry
        return entry


def scan_and_add(folders: list[str], registry, scanner: FolderScanner) -> dict:
    """On the host that has them: add the new run folders under `folders` as watched runs.

    Returns {"added": [job dicts], "missing": [folders that do not exist]}."""
    from tunedeck.core.jobs.watch import add_watched

    added, missing = [], []
    for root in folders:
        path = os.path.abspath(os.path.expanduser(root))
        if not os.path.isdir(path):
            missing.append(root)
            continue
        for run in scanner.scan(path):
            if run in scanner.known:
                continue
            scanner.known.add(run)
            if registry.with_output_dir(run) or registry.is_forgotten(run):
                continue
            name = os.path.relpath(run, path) if run != path else os.path.basename(run)
            added.append(add_watched(run, name=name, registry=registry).to_dict())
    return {"added": added, "missing": missing}


# -- watch.toml ---------------------------------------------------------------------------------


class _Settings:
    """watch.toml, read again only when its stamp changed (cheap to ask on every refresh)."""

    def __init__(self) -> None:
        self._stamp: tuple | None = None
        self._value: tuple[float, list[WatchedFolder]] = (STALE_AFTER, [])

    def current(self) -> tuple[float, list[WatchedFolder]]:
        path = watch_file()
        try:
            info = os.stat(path)
            stamp = (str(path), info.st_ino, info.st_size, info.st_mtime_ns)
        except OSError:
            stamp = (str(path), None)
        if stamp != self._stamp:
            try:
                self._value = _load()
            except UsageError:
                self._value = (STALE_AFTER, [])  # a broken file: the commands say why
            self._stamp = stamp
        return self._value


_SETTINGS = _Settings()


def _load() -> tuple[float, list[WatchedFolder]]:
    path = watch_file()
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return STALE_AFTER, []
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise UsageError(
            f"watch.toml is not valid TOML: {error}",
            location=Location(file=str(path)),
            hint="fix or remove the file",
        ) from error
    stale = doc.get("stale_after", STALE_AFTER)
    if not isinstance(stale, int | float) or isinstance(stale, bool) or stale <= 0:
        raise UsageError(
            "stale_after must be a number of seconds above 0",
            location=Location(file=str(path), column="stale_after"),
        )
    folders = []
    for index, item in enumerate(doc.get("folders") or (), start=1):
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            raise UsageError(
                f"folders entry {index} needs a path",
                location=Location(file=str(path), row=index, column="path"),
            )
        folders.append(WatchedFolder(str(item.get("host") or "local"), item["path"]))
    return float(stale), folders


def _save(stale: float, folders: list[WatchedFolder]) -> None:
    lines = ["# tunedeck watched folders: `tunedeck runs watch DIR` writes this file.", ""]
    if stale != STALE_AFTER:
        lines += [f"stale_after = {stale:g}", ""]
    for folder in folders:
        lines += [
            "[[folders]]",
            f"host = {toml_string(folder.host)}",
            f"path = {toml_string(folder.path)}",
        ]
        lines.append("")
    write_private(watch_file(), "\n".join(lines))


# -- discovery across hosts ---------------------------------------------------------------------

LOCAL_SCANNER = FolderScanner()  # this process's memory of the folders it has scanned
REMOTE_SCAN_SECONDS = 5.0


class Discovery:
    """New runs under every host's watched folders, through a pool's warm backends: this box's
    scanned here, each remote host's by its agent (at most every `remote_every` seconds)."""

    def __init__(self, pool, remote_every: float = REMOTE_SCAN_SECONDS, clock=None):
        import time

        self.pool = pool
        self.remote_every = remote_every
        self._clock = clock or time.monotonic
        self._asked_at: dict[str, float] = {}

    def run(self) -> tuple[list, dict[str, str]]:
        """(the runs added now, {host: why} for hosts that could not be asked)."""
        from tunedeck.core.errors import TunedeckError
        from tunedeck.core.jobs.model import LOCAL_HOST

        by_host: dict[str, list[str]] = {}
        for folder in watched_folders():
            by_host.setdefault(folder.host, []).append(folder.path)
        added, unreachable = [], {}
        for host, paths in by_host.items():
            if host != LOCAL_HOST and (self.pool.resting(host) or not self._due(host)):
                continue
            try:
                added += self.pool.backend(host).scan_watched(paths)["added"]
            except TunedeckError as error:
                unreachable[host] = error.message
        return added, unreachable

    def _due(self, host: str) -> bool:
        now = self._clock()
        if now - self._asked_at.get(host, now - self.remote_every - 1) < self.remote_every:
            return False
        self._asked_at[host] = now
        return True
