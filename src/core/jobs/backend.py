"""What every place that runs jobs offers (this box, an SSH host, later a Slurm cluster)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import Protocol

from tunedeck.core.jobs.gpus import Gpu
from tunedeck.core.jobs.logs import LogChunk
from tunedeck.core.jobs.metrics import MetricPoint
from tunedeck.core.jobs.model import Job

DEFAULT_GRACE = 60.0


@dataclass(frozen=True)
class Resources:
    """What a scheduler is asked for (Slurm); other backends run on what the host has."""

    nodes: int = 1
    gpus_per_node: int | None = None
    time: str | None = None  # Slurm's forms: "30", "2:00:00", "1-00:00:00"
    mem: str | None = None  # per node, e.g. "64G"
    cpus_per_task: int | None = None
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    requeue: bool = False  # resubmit after a time limit or preemption, resuming from a checkpoint
    hold: bool = False  # submitted held (sbatch --hold): it waits until `scontrol release`


@dataclass(frozen=True)
class JobSpec:
    """What to run: the part of a Job the submitter chooses."""

    argv: tuple[str, ...]
    name: str
    kind: str = "command"
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    output_dir: str | None = None
    config: str | None = None
    id: str | None = None  # chosen by the caller when a remote side must reuse it
    command_line: str | None = None  # what a user types to run it again
    resources: Resources | None = None  # for a scheduler; None: the host's defaults
    group: str | None = None  # jobs started together (a sweep) share it
    group_index: int | None = None
    # bash lines a scheduler's script runs instead of argv (srun + torchrun across nodes)
    launch_lines: tuple[str, ...] | None = None

    def to_dict(self) -> dict:
        """Every field as JSON values: for the agent protocol."""
        doc = asdict(self)
        doc["argv"] = list(self.argv)
        return doc

    @classmethod
    def from_dict(cls, doc: dict) -> JobSpec:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in doc.items() if k in known}
        values["argv"] = tuple(values.get("argv") or ())
        values["env"] = dict(values.get("env") or {})
        if values.get("launch_lines") is not None:
            values["launch_lines"] = tuple(values["launch_lines"])
        if values.get("resources") is not None:
            values["resources"] = Resources(**values["resources"])
        return cls(**values)


@dataclass(frozen=True)
class CancelResult:
    """How a cancel ended: `signal` is the last one needed (SIGTERM or SIGKILL), None if the
    job had already finished; `survivors` lists pids still alive afterwards (should be empty)."""

    job: Job
    signal: str | None
    survivors: tuple[int, ...] = ()
    # Processes left behind by a job that had already ended (its main process died alone),
    # ended by this cancel.
    leftovers: tuple[int, ...] = ()

    def to_dict(self) -> dict:
        """The whole outcome (env values included): for the agent protocol."""
        return {
            "job": self.job.to_dict(),
            "signal": self.signal,
            "survivors": list(self.survivors),
            "leftovers": list(self.leftovers),
        }

    def to_public_dict(self, reveal_env: bool = False) -> dict:
        """to_dict() for `--json` output: the job's env values masked unless revealed."""
        return {**self.to_dict(), "job": self.job.to_public_dict(reveal_env)}


class Backend(Protocol):
    """A place that runs jobs. A Slurm backend maps these onto sbatch/squeue/scancel."""

    host: str

    def submit(self, spec: JobSpec) -> Job: ...

    def status(self, ids: list[str]) -> list[Job]: ...

    def list(self) -> list[Job]: ...

    def read_log(self, job: Job, offset: int = 0, limit: int = ...) -> LogChunk: ...

    def tail_offset(self, job: Job, lines: int) -> int: ...

    def follow_log(
        self, job: Job, offset: int = 0, stop_event: threading.Event | None = None
    ) -> Iterator[LogChunk]: ...

    def cancel(self, job: Job, grace: float = DEFAULT_GRACE) -> CancelResult: ...

    def remove(self, job: Job) -> None: ...

    def metrics(self, job: Job) -> list[MetricPoint]: ...

    def gpus(self) -> list[Gpu]: ...

    def close(self) -> None: ...
