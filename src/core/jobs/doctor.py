"""`tunedeck doctor`: the health of the state dir, the job registry and hosts.toml, and the
repair of a damaged registry (a copy kept beside it, every readable job salvaged, a clean one)."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from tunedeck.core.errors import TunedeckError
from tunedeck.core.jobs.model import Job
from tunedeck.core.locations import state_dir

LOW_SPACE = 1 << 20


@dataclass(frozen=True)
class Check:
    """One thing looked at: `ok`, what was found, and the fix when it is not ok."""

    name: str
    path: str
    ok: bool
    detail: str
    fix: str | None = None

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "path": self.path,
            "ok": self.ok,
            "detail": self.detail,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class Repair:
    """What `--repair` did: where the damaged file went and how many jobs came back."""

    registry: str
    backup: str
    salvaged: int

    def to_dict(self) -> dict:
        return {"registry": self.registry, "backup": self.backup, "salvaged": self.salvaged}


def registry_path() -> Path:
    return state_dir() / "jobs.db"


def check_all() -> list[Check]:
    """Every check, in the order a user reads them; none writes anything."""
    return [check_state_dir(), check_registry(), check_hosts()]


def check_state_dir() -> Check:
    path = state_dir()
    if not path.exists():
        return Check("state dir", str(path), True, "not created yet (made on first use)")
    info = os.stat(path)
    mode = stat.S_IMODE(info.st_mode)
    free = _free_bytes(path)
    if free < LOW_SPACE:
        return Check(
            "state dir", str(path), False, f"only {free} bytes free", "free some space on that disk"
        )
    if mode & 0o077:
        return Check(
            "state dir",
            str(path),
            False,
            f"mode {mode:04o}: others can read it",
            f"chmod 700 {path} (any tunedeck command does it)",
        )
    return Check("state dir", str(path), True, f"private (0700), {free >> 20} MiB free")


def check_registry() -> Check:
    path = registry_path()
    if not path.exists():
        return Check("registry", str(path), True, "no jobs yet")
    problem = registry_problem(path)
    if problem:
        return Check(
            "registry",
            str(path),
            False,
            f"damaged: {problem}",
            "tunedeck doctor --repair (keeps a copy, salvages the readable jobs)",
        )
    count = _count_jobs(path)
    return Check("registry", str(path), True, f"healthy, {count} job(s)")


def check_hosts() -> Check:
    from tunedeck.core.jobs.hosts import hosts_file, load_hosts

    path = hosts_file()
    if not path.exists():
        return Check("hosts.toml", str(path), True, "none (no remote hosts)")
    try:
        hosts = load_hosts()
    except TunedeckError as error:
        return Check("hosts.toml", str(path), False, str(error), "fix the file or re-add the hosts")
    return Check("hosts.toml", str(path), True, f"{len(hosts)} host(s)")


def registry_problem(path: Path) -> str | None:
    """Why the registry file at `path` cannot be trusted, or None when it reads whole."""
    if path.stat().st_size == 0:
        return "it is empty (0 bytes)"
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            result = db.execute("PRAGMA quick_check").fetchall()
            db.execute("SELECT doc FROM jobs").fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError as error:
        return str(error)
    if result != [("ok",)]:
        return "; ".join(r[0] for r in result[:3])
    return None


def repair_registry(path: Path | None = None) -> Repair | None:
    """Move a damaged registry aside (PATH.damaged-STAMP), salvage its readable jobs into a
    fresh one; None when there was nothing to repair."""
    from tunedeck.core.jobs.registry import JobRegistry

    path = path or registry_path()
    if not path.exists() or registry_problem(path) is None:
        return None
    jobs = salvage_jobs(path)
    backup = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    for suffix in ("", "-wal", "-shm"):
        source = path.with_name(path.name + suffix)
        if source.exists():
            os.replace(source, backup.with_name(backup.name + suffix))
    registry = JobRegistry(path)
    try:
        for job in jobs:
            registry.put(job)
    finally:
        registry.close()
    return Repair(str(path), str(backup), len(jobs))


def salvage_jobs(path: Path) -> list[Job]:
    """Every job record that can still be read: row by row through SQLite, else (when SQLite
    cannot open the file at all) the JSON records found in its bytes."""
    jobs = _rows_by_rowid(path)
    if jobs is None:
        jobs = _records_in_bytes(path.read_bytes())
    return sorted(jobs.values(), key=lambda job: job.created_at)


def _rows_by_rowid(path: Path) -> dict[str, Job] | None:
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        db.execute("SELECT 1 FROM jobs LIMIT 1").fetchall()
    except sqlite3.DatabaseError:
        return None
    try:
        try:
            last = db.execute("SELECT max(rowid) FROM jobs").fetchone()[0] or 0
        except sqlite3.DatabaseError:
            last = path.stat().st_size // 64
        jobs: dict[str, Job] = {}
        for rowid in range(1, last + 1):
            try:
                row = db.execute("SELECT doc FROM jobs WHERE rowid=?", (rowid,)).fetchone()
            except sqlite3.DatabaseError:
                continue
            job = _job_of(row[0]) if row else None
            if job is not None:
                jobs[job.id] = job
        return jobs
    finally:
        db.close()


def _records_in_bytes(data: bytes) -> dict[str, Job]:
    decoder = json.JSONDecoder()
    text = data.decode("utf-8", "replace")
    jobs: dict[str, Job] = {}
    start = text.find('{"id": ')
    while start != -1:
        try:
            doc, end = decoder.raw_decode(text, start)
        except ValueError:
            end = start + 1
        else:
            job = _job_of(json.dumps(doc))
            if job is not None and _newer(job, jobs.get(job.id)):
                jobs[job.id] = job
        start = text.find('{"id": ', end)
    return jobs


def _newer(job: Job, other: Job | None) -> bool:
    """Of two copies of one record in the bytes, the one further along in its life."""
    return other is None or _progress_rank(job) > _progress_rank(other)


def _progress_rank(job: Job) -> tuple:
    return (job.state.is_final, job.ended_at or 0, job.started_at or 0)


def _job_of(doc: str) -> Job | None:
    try:
        job = Job.from_dict(json.loads(doc))
    except (ValueError, TypeError, KeyError):
        return None
    return job if job.id and job.argv else None


def _count_jobs(path: Path) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT count(*) FROM jobs").fetchone()[0]
    finally:
        db.close()


def _free_bytes(path: Path) -> int:
    info = os.statvfs(path)
    return info.f_bavail * info.f_frsize
