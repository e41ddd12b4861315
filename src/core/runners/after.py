"""Start a command once another job on this box has ended: one sweep point after the other.

`python -m tunedeck.core.runners.after JOB_ID -- ARGV...` runs as a job itself. It waits until
JOB_ID is final in this box's registry (succeeded, failed, cancelled or lost: a failed point does
not stop the rest), showing itself as queued meanwhile, then execs ARGV in its own process, so
the job's pid, group, log and cancel stay the same. A SIGTERM while waiting ends it at once.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Sequence

MODULE = "tunedeck.core.runners.after"
POLL = 0.5  # seconds between looks at the previous job
EXIT_USAGE = 2


def after_argv(python: str, previous_id: str, argv: Sequence[str]) -> list[str]:
    """The argv of a job that runs `argv` once job `previous_id` has ended."""
    return [python, "-m", MODULE, previous_id, "--", *argv]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3 or args[1] != "--":
        print(f"usage: python -m {MODULE} JOB_ID -- COMMAND [ARG ...]", file=sys.stderr)
        return EXIT_USAGE
    previous_id, command = args[0], args[2:]
    _exit_on_signals(previous_id)
    own_id = os.environ.get("TUNEDECK_JOB_ID")
    ended = wait_for_end(previous_id, own_id)
    print(f"job {previous_id} {ended}: starting", file=sys.stderr, flush=True)
    _mark_started(own_id)
    try:
        os.execvp(command[0], command)
    except OSError as error:
        print(f"tunedeck: cannot start {command[0]!r}: {error.strerror}", file=sys.stderr)
        return 127 if isinstance(error, FileNotFoundError) else 126


def wait_for_end(previous_id: str, own_id: str | None) -> str:
    """Block until job `previous_id` is final (or unknown here); its state's name."""
    from tunedeck.core.jobs import JobRegistry
    from tunedeck.core.jobs.local import LocalBackend

    registry = JobRegistry()
    backend = LocalBackend(registry)
    shown_queued = False
    try:
        while True:
            found = backend.status([previous_id])
            if not found or found[0].state.is_final:
                return found[0].state.value if found else "is not known here"
            if not shown_queued:
                shown_queued = _show_queued(registry, own_id, found[0])
            time.sleep(POLL)
    finally:
        registry.close()


def _show_queued(registry, own_id: str | None, previous) -> bool:
    """Record this job as queued behind `previous`, once the supervisor recorded it running."""
    from tunedeck.core.jobs import JobState

    if own_id is None:
        return True
    own = registry.get(own_id)
    if own is None or own.pid != os.getpid():
        return False  # the supervisor has not written its 'running' yet: it would win

    def queue(job):
        if job.state is not JobState.RUNNING or job.cancel_requested_at:
            return None
        return job.evolve(state=JobState.QUEUED, message=f"waiting for job {previous.id}")

    registry.update(own_id, queue)
    print(f"waiting for job {previous.id} ({previous.name}) to end", file=sys.stderr, flush=True)
    return True


def _mark_started(own_id: str | None) -> None:
    """Running from now on: the real start time, the waiting message gone."""
    if own_id is None:
        return
    from tunedeck.core.jobs import JobRegistry, JobState

    registry = JobRegistry()
    try:

        def start(job):
            if job.state is not JobState.QUEUED:
                return None
            return job.evolve(state=JobState.RUNNING, started_at=time.time(), message=None)

        registry.update(own_id, start)
    finally:
        registry.close()


def _exit_on_signals(previous_id: str) -> None:
    """While waiting, SIGTERM/SIGINT end the job at once (nothing to save yet)."""

    def stop(signum: int, _frame) -> None:
        name = signal.Signals(signum).name
        os.write(2, f"{name} received while waiting for job {previous_id}: not started\n".encode())
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


if __name__ == "__main__":
    sys.exit(main())
