"""Runs outlive the app: a local run and a run over ssh keep going when the app watching them in a
real terminal is killed with SIGKILL; a fresh CLI finds them running, then finished."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tunedeck.core.jobs import submit

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_DATA = REPO / "examples" / "workspace" / "data"
FINAL_STATES = ("succeeded", "failed", "cancelled", "lost")

# Says it started, then waits for its release file (at most 5 minutes) and exits with the given code.
GATED_JOB = """
import os, sys, time
release, code = sys.argv[1], int(sys.argv[2])
print("started", flush=True)
deadline = time.monotonic() + 300
while not os.path.exists(release) and time.monotonic() < deadline:
    time.sleep(0.1)
print("released", flush=True)
sys.exit(code)
"""


def tunedeck(*args: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tunedeck.tui", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TUNEDECK_HOME": str(home)},
    )


def job_record(job_id: str, home: Path) -> dict:
    shown = tunedeck("runs", "show", job_id, "--json", home=home)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def wait_final(job_id: str, home: Path, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        record = job_record(job_id, home)
        if record["state"] in FINAL_STATES:
            return record
        assert time.monotonic() < deadline, f"job {job_id} still {record['state']}"
        time.sleep(0.5)


def tmux(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["tmux", *args], capture_output=True, text=True, check=check, env={**os.environ, "TMUX": ""}
    )


def wait_for_screen(session: str, *needles: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = tmux("capture-pane", "-p", "-t", session).stdout
        if all(needle in screen for needle in needles):
            return screen
        time.sleep(0.2)
    raise AssertionError(f"never saw {needles} on screen:\n{screen}")


def wait_gone(pid: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while os.path.exists(f"/proc/{pid}"):
        assert time.monotonic() < deadline, f"process {pid} still there"
        time.sleep(0.05)


@pytest.mark.slow
def test_local_and_remote_runs_survive_the_app_being_killed(loop_host, tunedeck_home, tmp_path):
    assert shutil.which("tmux"), "tmux is needed (make sysdeps installs it)"
    release = tmp_path / "release"
    gated = [sys.executable, "-c", GATED_JOB, str(release)]
    local = submit([*gated, "0"], name="local-gated")
    remote = submit([*gated, "3"], name="remote-gated", host=loop_host.name)
    assert (local.host, remote.host) == ("local", "loop")

    session = f"tunedeck-kill-{uuid.uuid4().hex[:8]}"
    app = shlex.join(
        [
            "env",
            f"TUNEDECK_HOME={tunedeck_home}",
            "TERM=xterm-256color",
            sys.executable,
            "-m",
            "tunedeck.tui",
            "tui",
            str(EXAMPLE_DATA),
        ]
    )
    tmux(
        "new-session", "-d", "-s", session, "-x", "140", "-y", "40", "-c", str(REPO), f"exec {app}"
    )
    try:
        wait_for_screen(session, "1 Datasets")
        tmux("send-keys", "-t", session, "3")
        screen = wait_for_screen(session, local.id, remote.id)
        assert "loop" in screen and "running" in screen
        pid = int(tmux("list-panes", "-t", session, "-F", "#{pane_pid}").stdout.split()[0])
        assert "tunedeck.tui" in Path(f"/proc/{pid}/cmdline").read_text()
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid)
    finally:
        tmux("kill-session", "-t", session, check=False)

    try:
        for job in (local, remote):
            record = job_record(job.id, tunedeck_home)
            assert (record["state"], record["host"]) == ("running", job.host)
        release.touch()
        finished = {job.id: wait_final(job.id, tunedeck_home) for job in (local, remote)}
    finally:
        release.touch()  # never leave the runs waiting
    assert (finished[local.id]["state"], finished[local.id]["exit_code"]) == ("succeeded", 0)
    assert (finished[remote.id]["state"], finished[remote.id]["exit_code"]) == ("failed", 3)
    logs = tunedeck("runs", "logs", remote.id, home=tunedeck_home)
    assert logs.stdout.splitlines() == ["started", "released"]
