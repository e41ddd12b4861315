"""The job registry: one SQLite file (WAL) shared safely by every CLI, TUI and supervisor."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tunedeck.core.errors import HostError, JobError
from tunedeck.core.jobs.model import Job, JobState, new_job_id
from tunedeck.core.locations import ensure, state_dir

BUSY_TIMEOUT_MS = 30_000


def default_registry_path() -> Path:
    return ensure(state_dir()) / "jobs.db"


class JobRegistry:
    """Jobs by id. Every read-modify-write runs in one BEGIN IMMEDIATE transaction."""

    def __init__(self, path: Path | str | None = None):
        self.path = Path(path) if path else default_registry_path()
        ensure(self.path.parent)
        self._db = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        self._with_retry(lambda: self._db.execute("PRAGMA journal_mode=WAL"))
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._with_retry(
            lambda: self._db.execute(
                "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, host TEXT NOT NULL,"
                " state TEXT NOT NULL, created_at REAL NOT NULL, doc TEXT NOT NULL)"
            )
        )

    def close(self) -> None:
        self._db.close()

    def new_id(self) -> str:
        """An id not used by any job in this registry."""
        while True:
            job_id = new_job_id()
            if self.get(job_id) is None:
                return job_id

    def add(self, job: Job) -> Job:
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM jobs WHERE id=?", (job.id,)).fetchone():
                raise JobError(f"a job with id {job.id} already exists")
            self._write(db, job)
        return job

    def put(self, job: Job) -> Job:
        """Insert or replace a record (used to mirror remote jobs)."""
        with self._transaction() as db:
            self._write(db, job)
        return job

    def get(self, job_id: str) -> Job | None:
        row = self._with_retry(
            lambda: self._db.execute("SELECT doc FROM jobs WHERE id=?", (job_id,)).fetchone()
        )
        return Job.from_dict(json.loads(row[0])) if row else None

    def find(self, prefix: str) -> Job:
        """The one job whose id starts with `prefix`; a typed error when none or several match."""
        prefix = prefix.strip().lower()
        if not prefix:
            raise JobError("empty job id")
        rows = self._with_retry(
            lambda: self._db.execute(
                "SELECT doc FROM jobs WHERE substr(id, 1, ?) = ? ORDER BY created_at",
                (len(prefix), prefix),
            ).fetchall()
        )
        if not rows:
            raise JobError(f"no job matches '{prefix}'", hint="list jobs with `tunedeck runs`")
        if len(rows) > 1:
            ids = ", ".join(json.loads(r[0])["id"] for r in rows[:8])
            raise JobError(f"'{prefix}' matches several jobs: {ids}", hint="type more characters")
        return Job.from_dict(json.loads(rows[0][0]))

    def list(self, host: str | None = None) -> list[Job]:
        """Jobs, oldest first; only one host's when `host` is given."""
        query, args = "SELECT doc FROM jobs ORDER BY created_at", ()
        if host is not None:
            query, args = "SELECT doc FROM jobs WHERE host=? ORDER BY created_at", (host,)
        rows = self._with_retry(lambda: self._db.execute(query, args).fetchall())
        return [Job.from_dict(json.loads(r[0])) for r in rows]

    def recent(self, limit: int, host: str | None = None) -> tuple[list[Job], int]:
        """The newest `limit` jobs, oldest first, and how many there are in all (one host's)."""
        where, args = ("WHERE host=?", (host,)) if host is not None else ("", ())
        newest = f"SELECT doc, created_at FROM jobs {where} ORDER BY created_at DESC LIMIT ?"
        rows = self._with_retry(
            lambda: self._db.execute(
                f"SELECT doc FROM ({newest}) ORDER BY created_at", (*args, limit)
            ).fetchall()
        )
        total = self._with_retry(
            lambda: self._db.execute(f"SELECT count(*) FROM jobs {where}", args).fetchone()[0]
        )
        return [Job.from_dict(json.loads(r[0])) for r in rows], total

    def update(self, job_id: str, change: Callable[[Job], Job | None]) -> Job:
        """Read, change and write one job atomically; `change` returning None keeps it as is."""
        with self._transaction() as db:
            row = db.execute("SELECT doc FROM jobs WHERE id=?", (job_id,)).fetchone()
            if row is None:
                raise JobError(f"no job {job_id}")
            job = Job.from_dict(json.loads(row[0]))
            changed = change(job)
            if changed is not None and changed != job:
                self._write(db, changed)
                return changed
            return job

    def set(self, job_id: str, **fields) -> Job:
        return self.update(job_id, lambda job: job.evolve(**fields))

    def remove(self, job_id: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM jobs WHERE id=?", (job_id,))

    def active(self) -> list[Job]:
        return [j for j in self.list() if not JobState(j.state).is_final]

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._with_retry(lambda: self._db.execute("BEGIN IMMEDIATE"))
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._with_retry(lambda: self._db.execute("COMMIT"))

    @staticmethod
    def _write(db: sqlite3.Connection, job: Job) -> None:
        db.execute(
            "INSERT OR REPLACE INTO jobs (id, host, state, created_at, doc) VALUES (?, ?, ?, ?, ?)",
            (job.id, job.host, job.state.value, job.created_at, json.dumps(job.to_dict())),
        )

    @staticmethod
    def _with_retry(action):
        """busy_timeout covers almost all contention; this covers the rest (e.g. WAL setup)."""
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                return action()
            except sqlite3.OperationalError as error:
                if "full" in str(error):
                    raise HostError(
                        f"disk full: cannot write the job registry ({error})",
                        hint="free some space on this machine",
                    ) from error
                if "locked" not in str(error) and "busy" not in str(error):
                    raise
                if time.monotonic() > deadline:
                    raise JobError(
                        "the job registry stayed busy for too long", hint="try again"
                    ) from error
                time.sleep(0.01)
