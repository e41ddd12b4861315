"""Start a command once earlier jobs on this box have ended: one sweep point after the other.

`python -m tunedeck.core.runners.after JOB_ID[,JOB_ID...] -- ARGV...` runs as a job itself. It
waits until every JOB_ID (all the points before it, so that one cancelled while it waited still
leaves the earlier ones to wait for and no two points ever run at once) is final in this box's
registry (succeeded, failed, cancelled or lost: a failed point does not stop the rest), showing
itself as queued meanwhile, then execs ARGV in its own process, so the job's pid, group, log and
cancel stay the same. A SIGTERM while waiting ends it at once.
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


def after_argv(python: str, previous_ids: Sequence[str], argv: Sequence[str]) -> list[str]:
    """The argv of a job that runs `argv` once every job of `previous_ids` has ended."""
    return [python, "-m", MODULE, ",".join(previous_ids), "--", *argv]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3 or args[1] != "--":
        print(f"usage: python -m {MODULE} JOB_ID -- COMMAND [ARG ...]", file=sys.stderr)
        return EXIT_USAGE
    previous_ids, command = args[0].split(","), args[2:]
    _exit_on_signals(previous_ids[-1])
    own_id = os.environ.get("TUNEDECK_JOB_ID")
    ended = wait_for_end(previous_ids, own_id)
    print(f"job {previous_ids[-1]} {ended}: starting", file=sys.stderr, flush=True)
    _mark_started(own_id)
    try:
        os.execvp(command[0], command)
    except OSError as error:
        print(f"tunedeck: cannot start {command[0]!r}: {error.strerror}", file=sys.stderr)
        return 127 if isinstance(error, FileNotFoundError) else 126


def wait_for_end(previous_ids: Sequence[str], own_id: str | None) -> str:
    """Block until every job of `previous_ids` is final (or unknown here); the last one's state."""
    from tunedeck.core.jobs import JobRegistry
    from tunedeck.core.jobs.local import LocalBackend

    registry = JobRegistry()
    backend = LocalBackend(registry)
    shown_for = None
    try:
        while True:
            found = {job.id: job for job in backend.status(list(previous_ids))}
            waiting = [found[i] for i in previous_ids if i in found and not found[i].state.is_final]
            if not waiting:
                last = found.get(previous_ids[-1])
                return last.state.value if last else "is not known here"
            nearest = waiting[-1]
            if shown_for != nearest.id and _show_queued(registry, own_id, nearest):
                shown_for = nearest.id
            time.sleep(POLL)
    finally:
        registry.close()


def _show_queued(registry, own_id: str | None, previous) -> bool:
    """Record this job as queued behind `previous` (the nearest earlier job still to end), once
    the supervisor recorded it running."""
    from tunedeck.core.jobs import JobState

    if own_id is None:
        return True
    own = registry.get(own_id)
    if own is None or own.pid != os.getpid():
        return False  # the supervisor has not written its 'running' yet: it would win

    def queue(job):
        if job.state not in (JobState.RUNNING, JobState.QUEUED) or job.cancel_requested_at:
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
