"""Processes as /proc shows them: start times (pid reuse), groups and descendants."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    pgid: int
    state: str
    start: int  # clock ticks after boot; with the pid it names one process for good


def proc_info(pid: int) -> ProcInfo | None:
    """What /proc/<pid>/stat says, or None when no such process exists."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("utf-8", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rest = raw[raw.rfind(")") + 2 :].split()
    return ProcInfo(pid, int(rest[1]), int(rest[2]), rest[0], int(rest[19]))


def start_time(pid: int) -> int | None:
    info = proc_info(pid)
    return info.start if info else None


def is_alive(pid: int | None, start: int | None) -> bool:
    """True when `pid` still runs and is the same process (same start time), zombies excluded."""
    if not pid:
        return False
    info = proc_info(pid)
    if info is None or info.state in ("Z", "X"):
        return False
    return start is None or info.start == start


def all_processes() -> list[ProcInfo]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = proc_info(int(name))
            if info is not None and info.state not in ("Z", "X"):
                found.append(info)
    return found


def group_and_descendants(pgid: int | None, roots: list[int]) -> list[ProcInfo]:
    """Live processes in group `pgid` plus every descendant of `roots` (even in other groups)."""
    procs = all_processes()
    children: dict[int, list[ProcInfo]] = {}
    for p in procs:
        children.setdefault(p.ppid, []).append(p)
    chosen = {p.pid: p for p in procs if pgid and p.pgid == pgid}
    stack = [r for r in roots if r]
    for p in list(chosen.values()):
        stack.append(p.pid)
    seen: set[int] = set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        for child in children.get(pid, []):
            chosen[child.pid] = child
            stack.append(child.pid)
    return list(chosen.values())
