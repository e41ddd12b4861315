"""Waiting for a run to end, for scripts (`tunedeck runs wait`): any host, any origin."""

from __future__ import annotations

import time
from dataclasses import dataclass

from tunedeck.core.jobs.model import LOCAL_HOST, Job, JobState

POLL_SECONDS = 1.0
EXIT_SUCCEEDED = 0
EXIT_UNSUCCESSFUL = 1  # failed, cancelled or lost
EXIT_TIMEOUT = 124  # as timeout(1) says it


@dataclass(frozen=True)
class WaitResult:
    """The run as last seen, and whether it reached a final state before the timeout."""

    job: Job
    ended: bool

    @property
    def exit_code(self) -> int:
        if not self.ended:
            return EXIT_TIMEOUT
        return EXIT_SUCCEEDED if self.job.state == JobState.SUCCEEDED else EXIT_UNSUCCESSFUL


def wait_for_end(
    job: Job, timeout: float | None = None, poll: float = POLL_SECONDS, pool=None
) -> WaitResult:
    """Refresh `job` through a pool until its state is final or `timeout` seconds passed; a host
    that does not answer meanwhile is asked again (its job keeps its last known state)."""
    from tunedeck.core.jobs.pool import BackendPool

    own = pool is None
    pool = pool or BackendPool(rest_seconds=poll)
    deadline = None if timeout is None else time.monotonic() + timeout
    registry = pool.backend(LOCAL_HOST).registry
    try:
        while True:
            job = pool.refresh([registry.get(job.id) or job]).jobs[0]
            if job.state.is_final:
                return WaitResult(job, ended=True)
            if deadline is not None and time.monotonic() >= deadline:
                return WaitResult(job, ended=False)
            pause = poll if deadline is None else min(poll, max(0.0, deadline - time.monotonic()))
            time.sleep(pause)
    finally:
        if own:
            pool.close()
