"""What is left of a job's tree is reachable: after its main process is SIGKILLed alone, cancel
ends the children still running under the supervisor; an agent that never answers is ended on
the box after the client gives up."""

from __future__ import annotations

import dataclasses
import os
import shlex
import signal
import sys

import pytest
from jobs_helpers import alive, cli, on_host, wait_for

from tunedeck.core.errors import HostError
from tunedeck.core.jobs import JobRegistry, cancel, ssh
from tunedeck.core.jobs.procs import all_processes


def _children(pid: int) -> list[int]:
    return [p.pid for p in all_processes() if p.ppid == pid]


def _running(job_id: str):
    job = JobRegistry().get(job_id)
    return job if job.pid and _children(job.pid) else None


def test_cancel_after_the_main_process_was_killed_ends_its_leftover_children():
    job_id = cli("run", "-q", "--", "sh", "-c", "sleep 300 & wait").stdout.strip()
    job = wait_for(lambda: _running(job_id), what="the job's sleep child")
    (child,) = _children(job.pid)
    os.kill(job.pid, signal.SIGKILL)
    ended = wait_for(
        lambda: (j := JobRegistry().get(job_id)).state.is_final and j, what="the recorded end"
    )
    assert ended.signal == signal.SIGKILL
    assert alive(child)  # the sleep goes on under the supervisor
    result = cancel(job_id, grace=5)
    assert child in result.leftovers and result.signal == "SIGTERM"
    assert not result.survivors
    wait_for(lambda: not alive(child), what="the leftover child to be gone")
    again = cancel(job_id, grace=5)
    assert again.signal is None and not again.leftovers


def test_runs_cancel_says_it_ended_what_an_ended_job_left_running():
    job_id = cli("run", "-q", "--", "sh", "-c", "sleep 300 & wait").stdout.strip()
    job = wait_for(lambda: _running(job_id), what="the job's sleep child")
    (child,) = _children(job.pid)
    os.kill(job.pid, signal.SIGKILL)
    wait_for(lambda: JobRegistry().get(job_id).state.is_final, what="the recorded end")
    said = cli("runs", "cancel", job_id, "--grace", "5").stdout
    assert f"ended what its tree left running: {child}" in said
    wait_for(lambda: not alive(child), what="the leftover child to be gone")


STUCK = "import time; time.sleep(600)  # tunedeck-stuck-agent"


def _stuck_on_box(host) -> list[str]:
    """Pids of the stuck agent, as the box itself sees them (its own pid namespace)."""
    done = on_host(host, "sh", "-c", "grep -l tunedeck-stuck[-]agent /proc/[0-9]*/cmdline; true")
    return [line.split("/")[2] for line in done.stdout.split()]


def test_an_agent_that_never_answers_is_ended_on_the_box_after_the_give_up(loop_host, monkeypatch):
    stuck = dataclasses.replace(loop_host, command=f"{sys.executable} -c {shlex.quote(STUCK)}")
    monkeypatch.setattr(ssh, "HELLO_TIMEOUT", 3.0)
    backend = ssh.SshBackend(stuck)
    with pytest.raises(HostError):
        backend.check()
    backend.close()
    wait_for(lambda: not _stuck_on_box(loop_host), what="the stuck agent to end on the box")
