"""`tunedeck train` as a job: on a host over a real loopback sshd, followed, detached, Ctrl-C."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from train_helpers import REPO, read_log

from tunedeck.core.config import load_config
from tunedeck.core.runners.launch import remote_runner_argv

pytestmark = pytest.mark.slow

CONFIG = "examples/workspace/configs/tiny_lora_sft.yaml"
RELATIVE_OUTPUT = Path("examples/workspace/output/tiny_lora_sft")
JOB_STARTED = re.compile(r"job (\w+) started")


def tunedeck(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tunedeck.tui", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def job_record(job_id: str) -> dict:
    done = tunedeck("runs", "show", job_id, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def wait_final(job_id: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        record = job_record(job_id)
        if record["state"] in ("succeeded", "failed", "cancelled", "lost"):
            return record
        assert time.monotonic() < deadline, f"job {job_id} still {record['state']}"
        time.sleep(1)


@pytest.fixture
def remote_workspace(loop_host, tiny_model) -> Path:
    """The host's workdir holding the example data and the tiny model at the example's paths."""
    workdir = Path(loop_host.workdir)
    shutil.copytree(REPO / "examples" / "workspace" / "data", workdir / "examples/workspace/data")
    (workdir / "examples/workspace/models").mkdir(parents=True)
    (workdir / "examples/workspace/models/tiny").symlink_to(tiny_model)
    return workdir


def test_detached_train_on_a_host_runs_there_and_is_found_again(loop_host, remote_workspace):
    started = tunedeck(
        "train", CONFIG, "max_steps=3", "logging_steps=1", "--host", loop_host.name, "--detach"
    )
    assert started.returncode == 0, started.stderr
    job_id = JOB_STARTED.search(started.stderr).group(1)

    record = wait_final(job_id)
    assert (record["state"], record["exit_code"], record["host"]) == ("succeeded", 0, "loop")
    remote_output = remote_workspace / RELATIVE_OUTPUT  # relative paths are the host's
    assert record["output_dir"] == str(remote_output)
    losses = [r["loss"] for r in read_log(remote_output) if "loss" in r]
    assert len(losses) == 3 and all(math.isfinite(loss) for loss in losses)
    assert (remote_output / "adapter_model.safetensors").is_file()

    logs = tunedeck("runs", "logs", job_id)
    assert logs.returncode == 0, logs.stderr
    assert "step 3/3" in logs.stdout and "[done]" in logs.stdout


def test_train_on_a_host_follows_the_log_and_ends_with_the_job_state(loop_host, remote_workspace):
    done = tunedeck("train", CONFIG, "max_steps=2", "logging_steps=1", "--host", loop_host.name)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "step 1/2" in done.stdout and "step 2/2" in done.stdout and "[done]" in done.stdout
    assert re.search(r"job \w+ succeeded \(exit 0\)", done.stderr), done.stderr


def test_ctrl_c_while_following_detaches_and_the_job_keeps_running(loop_host, remote_workspace):
    cli = subprocess.Popen(
        [sys.executable, "-m", "tunedeck.tui", "train", CONFIG, "--host", loop_host.name]
        + ["max_steps=100000", "save_steps=100000", "logging_steps=1"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,  # its own group, like a terminal's foreground job
    )
    job_id = None
    for line in cli.stdout:  # read until the run is training: a progress line arrived
        job_id = job_id or (m.group(1) if (m := JOB_STARTED.search(line)) else None)
        if line.startswith("step "):
            break
    assert job_id, "the CLI never said which job it started"
    os.killpg(cli.pid, signal.SIGINT)  # Ctrl-C: the CLI and its ssh child get SIGINT
    rest, _ = cli.communicate(timeout=60)
    assert cli.returncode == 0, rest
    assert f"detached: job {job_id} keeps running" in rest
    assert "Traceback" not in rest

    time.sleep(2)
    assert job_record(job_id)["state"] == "running"
    cancelled = tunedeck("runs", "cancel", job_id, "--grace", "60", "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    record = wait_final(job_id)
    assert record["state"] == "cancelled" and record["exit_code"] == 143, record


def test_remote_runner_argv_carries_the_whole_config_as_overrides():
    config = load_config(
        REPO / CONFIG,
        ["learning_rate=1e-5", "output_dir=/tmp/out dir/ü'$(x)`y`;z", "lora_target=q_proj,v_proj"],
        check_files=False,
    )
    argv = remote_runner_argv(
        "/opt/venv/bin/python", "tunedeck.core.runners.train", config.changed()
    )
    assert argv[:4] == ["/opt/venv/bin/python", "-m", "tunedeck.core.runners.train", "-"]
    assert load_config(None, argv[4:], check_files=False) == config
