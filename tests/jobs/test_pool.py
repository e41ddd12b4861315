"""The backend pool: local checks touch only local jobs, a failed host rests, hosts.toml is
read again when it changes."""

from __future__ import annotations

import time

from jobs_helpers import cli

from tunedeck.core.jobs import JobRegistry, JobState
from tunedeck.core.jobs.hosts import Host, add_host
from tunedeck.core.jobs.local import LocalBackend
from tunedeck.core.jobs.model import Job
from tunedeck.core.jobs.pool import BackendPool, HostList


def _remote_row(host: str) -> Job:
    """A running job mirrored from a host, started long ago: no local process could match it."""
    old = time.time() - 3600
    job = Job(id=f"r{host}"[:6], name="far", argv=("sleep", "6"), host=host, created_at=old)
    registry = JobRegistry()
    registry.put(job.evolve(state=JobState.RUNNING, pid=1 << 22, started_at=old))
    registry.close()
    return job


def test_a_local_check_never_touches_a_remote_job():
    job = _remote_row("gpu1")
    local = LocalBackend()
    assert local.list() == []
    assert local.refresh(JobRegistry().get(job.id)).state is JobState.RUNNING
    assert JobRegistry().get(job.id).state is JobState.RUNNING


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_host_that_failed_rests_then_is_asked_again():
    add_host(Host("down", "127.0.0.1", ssh_options=("-p", "1", "-o", "ConnectTimeout=5")))
    job = _remote_row("down")
    clock = Clock()
    with BackendPool(rest_seconds=30, clock=clock) as pool:
        first = pool.refresh(JobRegistry().list())
        assert "down" in first.unreachable and pool.resting("down")
        assert first.jobs[0].state is JobState.RUNNING  # the last known state, not lost
        clock.now += 29
        assert pool.refresh(JobRegistry().list()).unreachable == {}  # resting: not asked
        clock.now += 2
        assert "down" in pool.refresh(JobRegistry().list()).unreachable
    assert JobRegistry().get(job.id).state is JobState.RUNNING


def test_the_host_list_is_read_again_when_hosts_toml_changes():
    hosts = HostList()
    assert hosts.current() == {}
    cli("hosts", "add", "gpu1", "me@gpu1")
    assert hosts.current()["gpu1"].target == "me@gpu1"
    cli("hosts", "rm", "gpu1")
    assert hosts.current() == {}


def test_a_host_whose_entry_changed_gets_a_new_backend():
    add_host(Host("gpu9", "gpu9.example", command="tunedeck"))
    with BackendPool() as pool:
        before = pool.backend("gpu9")
        assert pool.backend("gpu9") is before  # warm while nothing changed
        time.sleep(0.01)  # a new mtime for hosts.toml
        add_host(Host("gpu9", "gpu9.example", command="/home/me/venv/bin/tunedeck"))
        after = pool.backend("gpu9")
        assert after is not before
        assert after.host_config.command == "/home/me/venv/bin/tunedeck"
