"""The job record: what was started, where, and what became of it."""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass, field, fields, replace
from enum import Enum
from typing import Any


class JobState(str, Enum):
    """Where a job is in its life; the last four are final. `stale`: a watched run whose log
    stopped growing and whose process is unknown (it may come back)."""

    QUEUED = "queued"
    RUNNING = "running"
    STALE = "stale"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES


# Fields only this box knows: a mirror of the host's record keeps them (JobRegistry.put).
LOCAL_FIELDS = ("pulled_to",)

FINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.LOST})
KINDS = ("train", "quantize", "command")
# Who wrote a run: tunedeck started it, or it is watched by its output dir.
ORIGINS = ("tunedeck", "llamafactory", "trainer")
LOCAL_HOST = "local"

MASK = "***"

# Crockford-like alphabet without look-alikes (no i, l, o, u): easy to read aloud and type.
_ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def new_job_id(length: int = 6) -> str:
    """A short, human-typeable id (6 base32 characters: about a billion values)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


@dataclass(frozen=True)
class Job:
    """One detached run of a command, on this box or on a remote host."""

    id: str
    name: str
    argv: tuple[str, ...]
    kind: str = "command"
    host: str = LOCAL_HOST
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    config: str | None = None
    output_dir: str | None = None
    log_path: str | None = None
    state: JobState = JobState.QUEUED
    pid: int | None = None
    pgid: int | None = None
    pid_start: int | None = None
    supervisor_pid: int | None = None
    supervisor_start: int | None = None
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    signal: int | None = None
    cancel_requested_at: float | None = None
    cancel_signal: str | None = None
    progress: float | None = None
    last_loss: float | None = None
    message: str | None = None
    # What a user types to run it again (`tunedeck train CFG ...`); argv is what the job executes.
    command_line: str | None = None
    # Which metric points are this job's own: output_dir/trainer_log.jsonl as it was before the
    # job started ("absent", or inode:size:mtime), and the copy of it taken when the job ended.
    metrics_before: str | None = None
    metrics_path: str | None = None
    # Where `tunedeck runs pull` last brought its output dir on this box (kept by mirrors).
    pulled_to: str | None = None
    # "tunedeck" for a job it started; "llamafactory" / "trainer" for a run watched by its dir.
    origin: str = "tunedeck"
    # A scheduler's own id and words for the job (Slurm: "1234" or "1234_3", "PENDING",
    # "Resources"); None on hosts without a scheduler.
    scheduler_id: str | None = None
    scheduler_state: str | None = None
    reason: str | None = None
    queue_position: int | None = None  # a pending job's place in its partition's queue (1: next)
    # Jobs started together (a sweep) share a group id; `group_index` is this one's place in it.
    group: str | None = None
    group_index: int | None = None
    script_path: str | None = None  # the batch script a scheduler ran (Slurm: kept with the run)

    @property
    def is_local(self) -> bool:
        return self.host == LOCAL_HOST

    def evolve(self, **changes: Any) -> Job:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The whole record, env values included: for the registry and the agent protocol."""
        doc = asdict(self)
        doc["argv"] = list(self.argv)
        doc["state"] = self.state.value
        return doc

    def masked_env(self, reveal: bool = False) -> dict[str, str]:
        """The job's env as outputs show it: every value masked unless `reveal`."""
        return mask_env(self.env, reveal)

    def to_public_dict(self, reveal_env: bool = False) -> dict[str, Any]:
        """to_dict() for what a user sees (`--json`, show): env values masked unless revealed."""
        doc = self.to_dict()
        doc["env"] = self.masked_env(reveal_env)
        return doc

    def masked(self, reveal_env: bool = False) -> Job:
        """This job with its env values masked (unless `reveal_env`), for display."""
        return self if reveal_env else replace(self, env=self.masked_env())

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Job:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in doc.items() if k in known}
        values["argv"] = tuple(values.get("argv") or ())
        values["state"] = JobState(values.get("state", "queued"))
        values["env"] = dict(values.get("env") or {})
        return cls(**values)


def mask_env(env: dict[str, str], reveal: bool = False) -> dict[str, str]:
    """Env as outputs show it: `-e` values may be tokens, so each value is MASK unless `reveal`."""
    if reveal:
        return dict(env)
    return {key: MASK for key in env}
