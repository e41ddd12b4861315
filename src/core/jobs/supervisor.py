"""The tiny process that owns a job: starts it detached and records how it ended.

`python -m tunedeck.core.jobs.supervisor --db REGISTRY JOB_ID` double-forks away from its
caller, starts the job's argv in a new session (stdin /dev/null, output to the job log),
records pid and start time, waits, then records exit code and end time in one transaction.
It is a child subreaper, so descendants that leave the job's group stay findable for cancel.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def main(argv: list[str]) -> int:
    db, job_id = _parse(argv)
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    return _supervise(db, job_id)


def _parse(argv: list[str]) -> tuple[str, str]:
    if len(argv) != 3 or argv[0] != "--db":
        sys.stderr.write("usage: python -m tunedeck.core.jobs.supervisor --db REGISTRY JOB_ID\n")
        sys.exit(2)
    return argv[1], argv[2]


def _supervise(db: str, job_id: str) -> int:
    from pathlib import Path

    from tunedeck.core.jobs.model import JobState
    from tunedeck.core.jobs.procs import start_time
    from tunedeck.core.jobs.registry import JobRegistry
    from tunedeck.core.jobs.space import hold_reserve, release_reserve

    _become_subreaper()
    registry = JobRegistry(db)
    me = os.getpid()
    job = registry.set(job_id, supervisor_pid=me, supervisor_start=start_time(me))
    if job.cancel_requested_at:
        registry.set(job_id, state=JobState.CANCELLED, ended_at=time.time(), cancel_signal=None)
        return 0
    from tunedeck.core.jobs.metrics import trainer_log_mark

    # Which metrics file was there before: a run that never trains must not claim its points.
    job = registry.set(job_id, metrics_before=trainer_log_mark(job.output_dir))
    log_fd = os.open(job.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    env = {**os.environ, **job.env, "TUNEDECK_JOB_ID": job.id}
    # Space to record the end in, should the job fill the disk.
    reserve = hold_reserve(Path(job.log_path).with_suffix(".reserve"))
    try:
        proc = subprocess.Popen(
            list(job.argv),
            cwd=job.cwd or None,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as error:
        release_reserve(reserve)
        code = 127 if isinstance(error, FileNotFoundError) else 126
        message = f"cannot start {job.argv[0]!r}: {error.strerror or error}"
        os.write(log_fd, f"tunedeck: {message}\n".encode())
        registry.set(
            job_id, state=JobState.FAILED, exit_code=code, ended_at=time.time(), message=message
        )
        return 0
    os.close(log_fd)
    registry.set(
        job_id,
        state=JobState.RUNNING,
        pid=proc.pid,
        pgid=proc.pid,
        pid_start=start_time(proc.pid),
        started_at=time.time(),
    )
    status = _reap_until(proc.pid)
    proc.returncode = status  # already reaped here; keeps Popen from waiting again
    _record_end_despite_full_disk(registry, job_id, status, reserve)
    _reap_until(None)  # orphans re-parented to us: reap them until none is left
    return 0


def _record_end_despite_full_disk(registry, job_id: str, status: int, reserve) -> None:
    """Record the end; on a full disk, give the reserve back and record it saying so."""
    from tunedeck.core.errors import DiskFullError
    from tunedeck.core.jobs.space import full_disk_of, release_reserve

    job = registry.get(job_id)
    full = full_disk_of([job.output_dir, job.cwd, job.log_path]) if status != 0 else None
    message = f"no space left on {full} (the disk filled up while the job ran)" if full else None
    try:
        _record_end(registry, job_id, status, message)
    except DiskFullError:
        release_reserve(reserve)
        reserve = None
        _record_end(registry, job_id, status, message, keep_metrics=False)
    finally:
        release_reserve(reserve)


def _record_end(
    registry, job_id: str, status: int, message: str | None, keep_metrics: bool = True
) -> None:
    from pathlib import Path

    from tunedeck.core.jobs.metrics import keep_job_metrics, read_job_progress
    from tunedeck.core.jobs.model import JobState

    job = registry.get(job_id)
    copy_to = Path(job.log_path).with_suffix(".metrics.jsonl")
    kept = keep_job_metrics(job, copy_to) if keep_metrics else None
    job = job.evolve(metrics_path=kept)
    progress = read_job_progress(job)

    def finish(job):
        exit_code = status if status >= 0 else None
        signal_number = -status if status < 0 else None
        if job.cancel_requested_at:
            state = JobState.CANCELLED
        elif status == 0:
            state = JobState.SUCCEEDED
        else:
            state = JobState.FAILED
        return job.evolve(
            state=state,
            message=message if state == JobState.FAILED else job.message,
            metrics_path=kept,
            exit_code=exit_code,
            signal=signal_number,
            ended_at=time.time(),
            progress=progress.fraction,
            last_loss=progress.last_loss,
        )

    registry.update(job_id, finish)


def _reap_until(pid: int | None) -> int:
    """Reap children until `pid` ends (its exit status, or -signal), or until none are left."""
    while True:
        try:
            reaped, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue
        if pid is not None and reaped == pid:
            return os.waitstatus_to_exitcode(status)


def _become_subreaper() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: descendants that leave the group are then found by /proc walks only


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
