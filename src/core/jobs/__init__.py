"""Jobs: detached runs on this box or on hosts over SSH; registry, logs, metrics, cancel.

Heavy parts (ssh, agent) load on first use so the supervisor and `--help` start fast.
"""

from __future__ import annotations

from tunedeck.core.jobs.backend import DEFAULT_GRACE, Backend, CancelResult, JobSpec, Resources
from tunedeck.core.jobs.logs import LogChunk
from tunedeck.core.jobs.metrics import MetricPoint
from tunedeck.core.jobs.model import LOCAL_HOST, Job, JobState
from tunedeck.core.jobs.registry import JobRegistry

__all__ = [
    "DEFAULT_GRACE",
    "LOCAL_HOST",
    "Backend",
    "CancelResult",
    "Job",
    "JobRegistry",
    "JobSpec",
    "JobState",
    "LogChunk",
    "MetricPoint",
    "cancel",
    "find_job",
    "backend_for",
    "get_backend",
    "job_spec",
    "read_log",
    "read_metrics",
    "submit",
]


def submit(
    argv: list[str],
    *,
    name: str,
    kind: str = "command",
    host: str | None = None,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
    output_dir: str | None = None,
    config: str | None = None,
    command_line: str | None = None,
    resources: Resources | None = None,
) -> Job:
    """Start `argv` as a detached job on this box (host None/"local") or on `host`."""
    spec = job_spec(argv, name=name, kind=kind, cwd=cwd, env=env, output_dir=output_dir,
                    config=config, command_line=command_line, resources=resources)  # fmt: skip
    backend = get_backend(host)
    try:
        return backend.submit(spec)
    finally:
        backend.close()


def job_spec(
    argv: list[str],
    *,
    name: str,
    kind: str = "command",
    cwd: str | None = None,
    env: dict[str, str] | None = None,
    output_dir: str | None = None,
    config: str | None = None,
    command_line: str | None = None,
    resources: Resources | None = None,
) -> JobSpec:
    """The JobSpec `submit` hands to a backend (also what --dry-run previews)."""
    return JobSpec(
        argv=tuple(argv),
        name=name,
        kind=kind,
        cwd=cwd,
        env=dict(env or {}),
        output_dir=output_dir,
        config=config,
        command_line=command_line,
        resources=resources,
    )


def get_backend(host: str | None = None) -> Backend:
    """LocalBackend for None/"local"; a SlurmBackend for a Slurm host whose target is `local`
    (this machine is its login node); else an SshBackend for a hosts.toml or ssh config name."""
    if host is None or host == LOCAL_HOST:
        from tunedeck.core.jobs.local import LocalBackend

        return LocalBackend()
    from tunedeck.core.jobs.hosts import get_host

    return backend_for(get_host(host))


def backend_for(entry) -> Backend:
    """The backend of a Host entry: Slurm here, or ssh (whose agent may serve Slurm there)."""
    if entry.is_slurm and entry.is_this_machine:
        from tunedeck.core.jobs.slurm import SlurmBackend

        return SlurmBackend.for_host(entry)
    from tunedeck.core.jobs.ssh import SshBackend

    return SshBackend(entry)


def find_job(job_id: str) -> Job:
    """The job whose id starts with `job_id` in this box's registry."""
    return JobRegistry().find(job_id)


def cancel(job: Job | str, grace: float = DEFAULT_GRACE) -> CancelResult:
    """Cancel a job (SIGTERM, then SIGKILL after `grace` seconds) and say which signal ended it."""
    job = find_job(job) if isinstance(job, str) else job
    backend = get_backend(job.host)
    try:
        return backend.cancel(job, grace)
    finally:
        backend.close()


def read_log(job: Job, offset: int = 0, limit: int = 1 << 20) -> LogChunk:
    """Up to `limit` bytes of the job's log from byte `offset`."""
    backend = get_backend(job.host)
    try:
        return backend.read_log(job, offset, limit)
    finally:
        backend.close()


def read_metrics(job: Job) -> list[MetricPoint]:
    """The job's metric series (trainer_log.jsonl, or Trainer lines in its log)."""
    backend = get_backend(job.host)
    try:
        return backend.metrics(job)
    finally:
        backend.close()
