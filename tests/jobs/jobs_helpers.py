"""Helpers for the jobs tests: the real CLI in a subprocess, process checks."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time

from tunedeck.core.jobs.hosts import Host
from tunedeck.core.jobs.procs import proc_info


def cli(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `tunedeck ARGS` as a separate process (it exits before the test goes on)."""
    done = subprocess.run(
        [sys.executable, "-m", "tunedeck.tui", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
    )
    if check and done.returncode != 0:
        raise AssertionError(f"tunedeck {args} failed ({done.returncode}):\n{done.stderr}")
    return done


def cli_json(*args: str):
    return json.loads(cli(*args, "--json").stdout)


def alive(pid: int) -> bool:
    info = proc_info(pid)
    return info is not None and info.state not in ("Z", "X")


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"):
    """Poll until `predicate()` is truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def on_host(host: Host, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run `argv` on the host through its ssh: what the box itself sees (its own pid namespace)."""
    from tunedeck.core.jobs.ssh import ssh_argv

    done = subprocess.run(
        ssh_argv(host, shlex.join(argv)), capture_output=True, text=True, timeout=60
    )
    if check and done.returncode != 0:
        raise AssertionError(f"{argv} on {host.name} failed ({done.returncode}):\n{done.stderr}")
    return done


def group_on_host(host: Host, pgid: int) -> list[int]:
    """The pids of the host's processes in process group `pgid`, as the host's `ps` lists them."""
    rows = on_host(host, "ps", "-o", "pid=,pgid=", "-e").stdout.split("\n")
    pairs = [row.split() for row in rows if row.strip()]
    return [int(pid) for pid, group in pairs if int(group) == pgid]
