"""A full disk, on a real 2 MiB tmpfs holding TUNEDECK_HOME: a job that fills it ends failed
saying so, `run` refuses to start (nothing recorded), and read-only commands keep working."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from jobs_helpers import cli, wait_for


@pytest.fixture
def small_disk(tmp_path, monkeypatch):
    if os.geteuid() != 0:
        pytest.fail("mounting a small tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    monkeypatch.setenv("TUNEDECK_HOME", str(mount / "home"))
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def _fill(path, name: str = "filler") -> None:
    for block in ("64k", "4k", "512"):
        subprocess.run(
            ["dd", "if=/dev/zero", f"of={path}/{name}-{block}", f"bs={block}"], capture_output=True
        )


def _jobs() -> list[dict]:
    return json.loads(cli("runs", "--json").stdout)


def _final(job_id: str) -> dict:
    def ended():
        job = next(j for j in _jobs() if j["id"] == job_id)
        return job if job["state"] not in ("queued", "running") else None

    return wait_for(ended, timeout=60, what=f"job {job_id} to end")


def test_job_that_fills_the_disk_fails_saying_so(small_disk):
    fill = f"dd if=/dev/zero of={small_disk}/big bs=64k; exit 1"
    job_id = cli("run", "-q", "-n", "fill", "--", "sh", "-c", fill).stdout.strip()
    job = _final(job_id)
    assert job["state"] == "failed", job
    assert job["message"] and f"no space left on {small_disk}" in job["message"], job
    assert not list((small_disk / "home" / "state" / "logs").glob("*.reserve"))


def test_run_refuses_on_a_full_disk_and_read_only_commands_work(small_disk):
    first = cli("run", "-q", "-n", "before", "--", "true").stdout.strip()
    _final(first)
    _fill(small_disk)
    done = cli("run", "-n", "after", "--", "true", check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"no space left on {small_disk}" in done.stderr and "Traceback" not in done.stderr
    assert "started 'after'" not in done.stderr + done.stdout
    assert [j["id"] for j in _jobs()] == [first]  # nothing recorded
    assert first in cli("runs").stdout
    assert cli("runs", "show", first).returncode == 0
    assert cli("runs", "logs", first).returncode == 0
    assert cli("hosts").returncode == 0
