"""The job registry: one SQLite file (WAL) shared safely by every CLI, TUI and supervisor."""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tunedeck.core.errors import DiskFullError, JobError, StateError
from tunedeck.core.jobs.model import LOCAL_FIELDS, LOCAL_HOST, Job, JobState, new_job_id
from tunedeck.core.jobs.space import mount_of
from tunedeck.core.locations import PRIVATE_FILE, create_private, ensure, state_dir, tighten

BUSY_TIMEOUT_MS = 30_000
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, host TEXT NOT NULL,"
    " state TEXT NOT NULL, created_at REAL NOT NULL, doc TEXT NOT NULL)"
)
# Run folders whose watched run was forgotten (`runs rm`): a watched folder's scan skips them.
FORGOTTEN_SCHEMA = "CREATE TABLE IF NOT EXISTS forgotten (output_dir TEXT PRIMARY KEY)"
# The newest runs are read every second while watched runs change: no sort of the whole table.
CREATED_INDEX = "CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs (created_at)"
# A watched folder's scan asks whether a run folder is some job's output dir.
OUTPUT_DIR = "json_extract(doc, '$.output_dir')"
OUTPUT_DIR_INDEX = f"CREATE INDEX IF NOT EXISTS jobs_by_output_dir ON jobs (host, {OUTPUT_DIR})"


def default_registry_path() -> Path:
    return ensure(state_dir()) / "jobs.db"


class JobRegistry:
    """Jobs by id. Every read-modify-write runs in one BEGIN IMMEDIATE transaction."""

    def __init__(self, path: Path | str | None = None):
        self.path = Path(path) if path else default_registry_path()
        ensure(self.path.parent)
        self.read_only = False
        self._db = sqlite3.connect(":memory:")
        try:
            self._db = self._open()
        except DiskFullError:
            self._db.close()
            self._db = self._open_read_only()  # a full disk: reads still work, writes say why

    def _open(self) -> sqlite3.Connection:
        if not self.path.exists():
            _create(self.path)
        for path in _files_of(self.path):
            tighten(path, PRIVATE_FILE)
        if self.path.stat().st_size == 0:
            raise damaged(self.path, "it is empty (0 bytes)")
        db = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        self._db = db
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        self._with_retry(lambda: db.execute("PRAGMA journal_mode=WAL"))
        db.execute("PRAGMA synchronous=NORMAL")
        self._with_retry(lambda: db.execute(SCHEMA))
        self._with_retry(lambda: db.execute(FORGOTTEN_SCHEMA))
        self._with_retry(lambda: db.execute(CREATED_INDEX))
        self._with_retry(lambda: db.execute(OUTPUT_DIR_INDEX))
        return db

    def _open_read_only(self) -> sqlite3.Connection:
        self.read_only = True
        uri = f"file:{self.path}?immutable=1"
        db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        self._db = db
        self._with_retry(lambda: db.execute("SELECT 1 FROM jobs LIMIT 1").fetchone())
        return db

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
        """Insert or replace a record (used to mirror remote jobs); fields only this box knows
        (LOCAL_FIELDS, e.g. where the run was pulled to) are kept when the new record lacks them."""
        with self._transaction() as db:
            job = self._with_local_fields(db, job)
            self._write(db, job)
        return job

    def version(self) -> int:
        """Changes when another connection committed since the last call (a cache may stay)."""
        return self._with_retry(lambda: self._db.execute("PRAGMA data_version").fetchone()[0])

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

    def with_output_dir(self, output_dir: str, host: str = LOCAL_HOST) -> list[Job]:
        """One host's jobs (this box's by default) whose output_dir is exactly `output_dir`."""
        rows = self._with_retry(
            lambda: self._db.execute(
                f"SELECT doc FROM jobs WHERE host = ? AND {OUTPUT_DIR} = ? ORDER BY created_at",
                (host, output_dir),
            ).fetchall()
        )
        return [Job.from_dict(json.loads(r[0])) for r in rows]

    def forget_dir(self, output_dir: str) -> None:
        """Remember that the watched run of `output_dir` was forgotten on purpose."""
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO forgotten (output_dir) VALUES (?)", (output_dir,))

    def unforget_dir(self, output_dir: str) -> None:
        if self.is_forgotten(output_dir):
            with self._transaction() as db:
                db.execute("DELETE FROM forgotten WHERE output_dir=?", (output_dir,))

    def is_forgotten(self, output_dir: str) -> bool:
        row = self._with_retry(
            lambda: self._db.execute(
                "SELECT 1 FROM forgotten WHERE output_dir=?", (output_dir,)
            ).fetchone()
        )
        return row is not None

    def active(self) -> list[Job]:
        return [j for j in self.list() if not JobState(j.state).is_final]

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        if self.read_only:
            raise disk_full(self.path)
        self._with_retry(lambda: self._db.execute("BEGIN IMMEDIATE"))
        try:
            yield self._db
        except BaseException as error:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            if isinstance(error, sqlite3.DatabaseError):
                raise _translate(error, self.path) from error
            raise
        self._with_retry(lambda: self._db.execute("COMMIT"))

    @staticmethod
    def _with_local_fields(db: sqlite3.Connection, job: Job) -> Job:
        missing = [name for name in LOCAL_FIELDS if getattr(job, name) is None]
        if not missing:
            return job
        row = db.execute("SELECT doc FROM jobs WHERE id=?", (job.id,)).fetchone()
        if row is None:
            return job
        kept = json.loads(row[0])
        return job.evolve(**{name: kept.get(name) for name in missing})

    @staticmethod
    def _write(db: sqlite3.Connection, job: Job) -> None:
        db.execute(
            "INSERT OR REPLACE INTO jobs (id, host, state, created_at, doc) VALUES (?, ?, ?, ?, ?)",
            (job.id, job.host, job.state.value, job.created_at, json.dumps(job.to_dict())),
        )

    def _with_retry(self, action):
        """busy_timeout covers almost all contention; this covers the rest (e.g. WAL setup)."""
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                return action()
            except sqlite3.OperationalError as error:
                text = str(error)
                if "locked" not in text and "busy" not in text:
                    raise _translate(error, self.path) from error
                if time.monotonic() > deadline:
                    raise JobError(
                        "the job registry stayed busy for too long", hint="try again"
                    ) from error
                time.sleep(0.01)
            except sqlite3.DatabaseError as error:
                raise _translate(error, self.path) from error


def damaged(path: Path, why: str) -> StateError:
    return StateError(
        f"the job registry {path} is damaged: {why}",
        hint="run `tunedeck doctor` (`tunedeck doctor --repair` keeps a copy and starts clean)",
    )


def disk_full(path: Path) -> DiskFullError:
    return DiskFullError(
        f"no space left on {mount_of(path)}: cannot write the job registry {path}",
        hint="free some space there",
    )


def _translate(error: sqlite3.DatabaseError, path: Path) -> Exception:
    """A SQLite error as the user's problem: a full disk, or a damaged registry."""
    if _is_disk_error(error) or "readonly" in str(error):
        return disk_full(path)
    if isinstance(error, sqlite3.OperationalError) and "no such table" not in str(error):
        return StateError(f"cannot use the job registry {path}: {error}")
    return damaged(path, str(error))


def _is_disk_error(error: sqlite3.Error) -> bool:
    text = str(error)
    return "full" in text or "disk I/O" in text


def _create(path: Path) -> None:
    """A new registry, 0600 from its first byte, put in place whole (never a 0-byte file)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.new")
    create_private(tmp)
    try:
        db = sqlite3.connect(tmp, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(SCHEMA)
        db.close()
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process created it first: use theirs
    except sqlite3.OperationalError as error:
        raise _translate(error, path) from error
    finally:
        for leftover in _files_of(tmp):
            leftover.unlink(missing_ok=True)


def _files_of(path: Path) -> list[Path]:
    """The registry file and SQLite's companions beside it."""
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
