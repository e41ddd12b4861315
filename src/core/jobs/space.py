"""Disk space for jobs: refuse to start on a full disk, keep a reserve so that a job which
fills the disk can still have its end recorded, and say which disk ran out."""

from __future__ import annotations

import os
from pathlib import Path

from tunedeck.core.errors import DiskFullError

MIN_FREE = 256 << 10  # what `run` wants free on the state disk: a registry write, logs, a reserve
RESERVE = 128 << 10  # held by each supervisor, freed to record the end on a full disk
NEARLY_FULL = 64 << 10


def free_bytes(path: str | Path) -> int | None:
    """Bytes an unprivileged writer may still use on `path`'s disk (None when unknown)."""
    try:
        info = os.statvfs(path)
    except OSError:
        return None
    return info.f_bavail * info.f_frsize


def mount_of(path: str | Path) -> Path:
    """The mount point holding `path` (what a user frees space on)."""
    path = Path(os.path.abspath(path))
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def require_space(path: Path, needed: int = MIN_FREE) -> None:
    """Refuse (DiskFullError) when `path`'s disk has less than `needed` bytes free."""
    free = free_bytes(path)
    if free is not None and free < needed:
        raise DiskFullError(
            f"no space left on {mount_of(path)} ({free} bytes free; a job needs {needed} there)",
            hint=f"free some space on {mount_of(path)}; nothing was started",
        )


def full_disk_of(paths: list[str | None]) -> Path | None:
    """The mount point of the first existing path whose disk is (nearly) full."""
    for path in paths:
        if not path:
            continue
        existing = Path(path)
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        free = free_bytes(existing)
        if free is not None and free < NEARLY_FULL:
            return mount_of(existing)
    return None


def hold_reserve(path: Path) -> Path | None:
    """Write RESERVE bytes at `path` for later release; None when the disk cannot spare them."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError:
        return None
    try:
        os.posix_fallocate(fd, 0, RESERVE)
    except OSError:
        os.close(fd)
        path.unlink(missing_ok=True)
        return None
    os.close(fd)
    return path


def release_reserve(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)
