"""Training under a real Slurm: cancel with a checkpoint, a time limit requeued and resumed to the
end, a sweep as one job array, and `train --dry-run` (the tiny demo model, on the CPU)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from jobs_helpers import cli, wait_for
from slurm_cluster import CLUSTER_NAME

from tunedeck.core.config import load_config
from tunedeck.core.jobs import Job, JobState, get_backend
from tunedeck.core.jobs.backend import Resources
from tunedeck.core.jobs.hosts import add_host
from tunedeck.core.jobs.slurm import SIGNAL_LEAD_ENV
from tunedeck.core.locations import state_dir
from tunedeck.core.runners.launch import launch_run

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "examples" / "workspace" / "data"
# A requeued job started again in the second Slurm revoked its first credential is killed
# ("Job credential revoked"): Slurm's own hold avoids it, and so does a start 2 s on.
RESTART_SOON = "StartTime=now+2"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """The demo model, built once by the real `tunedeck demo model` command."""
    folder = tmp_path_factory.mktemp("tiny-model") / "tiny"
    command = [sys.executable, "-m", "tunedeck.tui", "demo", "model", str(folder)]
    subprocess.run(command, check=True, capture_output=True, cwd=REPO)
    return folder


def train_config_file(tmp_path: Path, tiny_model: Path, **keys) -> Path:
    """A tiny LoRA SFT config with absolute paths (the login node is this machine)."""
    doc = {
        "model_name_or_path": str(tiny_model),
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "lora",
        "lora_rank": 4,
        "lora_target": "all",
        "dataset": "demo_alpaca",
        "dataset_dir": str(DATA),
        "template": "default",
        "cutoff_len": 128,
        "max_samples": 32,
        "output_dir": str(tmp_path / "out"),
        "logging_steps": 1,
        "save_steps": 100000,
        "overwrite_output_dir": True,
        "per_device_train_batch_size": 2,
        "learning_rate": 1.0e-3,
        "use_cpu": True,
        **keys,
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def final(backend, job: Job, timeout: float) -> Job:
    return wait_for(
        lambda: next((j for j in backend.status([job.id]) if j.state.is_final), None),
        timeout=timeout,
        interval=1.0,
        what=f"Slurm job {job.scheduler_id} to end",
    )


def logged_steps(out: Path) -> list[int]:
    lines = (out / "trainer_log.jsonl").read_text().splitlines()
    return [json.loads(line)["current_steps"] for line in lines if line.strip()]


def test_cancel_sends_term_and_the_runner_saves_a_checkpoint(slurm_host, tiny_model, tmp_path):
    config = load_config(train_config_file(tmp_path, tiny_model, max_steps=100000))
    out = Path(config.output_dir)
    backend = get_backend(CLUSTER_NAME)
    job = launch_run("train", config, host=CLUSTER_NAME, backend=backend, name="to-cancel")
    assert job.scheduler_id and job.script_path
    wait_for(
        lambda: (out / "trainer_log.jsonl").exists() and len(logged_steps(out)) >= 2,
        timeout=300,
        interval=0.5,
        what="two logged steps",
    )
    result = backend.cancel(job, grace=120)
    assert result.signal == "SIGTERM" and result.job.state == JobState.CANCELLED
    assert result.job.exit_code == 143, result.job
    checkpoints = sorted(out.glob("checkpoint-*"))
    assert checkpoints, "the runner saved no checkpoint on SIGTERM"
    status = json.loads((out / "run_status.json").read_text())
    assert status["phase"] == "cancelled" and "checkpoint saved" in status["message"]
    assert int(checkpoints[-1].name.split("-")[1]) == status["current_steps"]
    backend.close()


@pytest.mark.timeout(900)
def test_time_limit_stops_with_a_checkpoint_then_requeues_and_resumes_to_completion(
    slurm_host, slurm_cluster, tiny_model, tmp_path
):
    # The runner is told 90 s before its limit. Once it trains it is frozen (SIGSTOP) and its
    # limit brought within those 90 s (and beyond 30, Slurm's check interval): Slurm's own
    # signal comes at its next check and waits, pending, on the frozen runner, which is then
    # let go. Freezing stands in for a long run; the steps are enough that the runner, a few ms
    # a step, is still training when it is frozen, even on a loaded machine.
    add_host(replace(slurm_host, env={**slurm_host.env, SIGNAL_LEAD_ENV: "90"}))
    steps = 300
    config = load_config(train_config_file(tmp_path, tiny_model, max_steps=steps))
    out = Path(config.output_dir)
    backend = get_backend(CLUSTER_NAME)
    resources = Resources(time="30", requeue=True)
    job = launch_run("train", config, host=CLUSTER_NAME, backend=backend, resources=resources)
    sid = job.scheduler_id
    wait_for(
        lambda: (out / "trainer_log.jsonl").exists() and len(logged_steps(out)) >= 2,
        timeout=300,
        interval=0.1,
        what="two logged steps",
    )
    runner = runner_pid(sid)
    os.kill(runner, signal.SIGSTOP)
    try:
        elapsed = _seconds(slurm_cluster.run("squeue", "-h", "-j", sid, "-o", "%M").stdout)
        limit = math.ceil((elapsed + 30) / 60)  # 30 to 90 s left: inside the signal's lead
        slurm_cluster.run("scontrol", "update", f"JobId={sid}", f"TimeLimit={limit}")
        wait_for(lambda: term_pending(runner), timeout=120, interval=0.5, what="Slurm's TERM")
    finally:
        os.kill(runner, signal.SIGCONT)
    wait_for(
        lambda: "requeued to resume" in backend.read_log(job).data.decode(),
        timeout=120,
        interval=0.5,
        what="the job to requeue itself",
    )
    wait_until_pending(slurm_cluster, sid)
    assert backend.status([job.id])[0].state is JobState.QUEUED
    assert len(list(out.glob("checkpoint-*"))) == 1, "no checkpoint saved at the signal"
    # Its time back for the rest; Slurm would hold a requeued job two minutes (BeginTime).
    slurm_cluster.run("scontrol", "update", f"JobId={sid}", "TimeLimit=30", RESTART_SOON)
    ended = final(backend, job, timeout=600)
    log = backend.read_log(ended).data.decode()
    assert (ended.state, ended.scheduler_state, ended.exit_code) == (
        JobState.SUCCEEDED,
        "COMPLETED",
        0,
    ), (ended, log[-2000:])
    assert "restart 1: resuming from the last checkpoint" in log
    status = json.loads((out / "run_status.json").read_text())
    assert status["phase"] == "done" and status["current_steps"] == steps
    assert logged_steps(out) == list(range(1, steps + 1))  # each step's loss logged once
    backend.close()


def wait_until_pending(slurm_cluster, scheduler_id: str) -> None:
    """Until a requeued job's first run has wholly ended (squeue shows COMPLETING till then):
    starting it again before that would race its own clean-up on the node."""
    wait_for(
        lambda: (
            slurm_cluster.run("squeue", "-h", "-j", scheduler_id, "-o", "%T").stdout.strip()
            == "PENDING"
        ),
        timeout=120,
        interval=0.5,
        what=f"Slurm job {scheduler_id} pending again",
    )


def runner_pid(scheduler_id: str) -> int:
    """The training runner of Slurm job `scheduler_id` (by its environment), on this machine."""
    for proc in Path("/proc").iterdir():
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"tunedeck.core.runners.train" in cmdline and (
            f"SLURM_JOB_ID={scheduler_id}".encode() in environ
        ):
            return int(proc.name)
    raise AssertionError(f"no runner process of Slurm job {scheduler_id}")


def term_pending(pid: int) -> bool:
    """Whether a TERM waits, undelivered, on the (stopped) process `pid`."""
    fields = dict(
        line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    mask = int(fields["ShdPnd"], 16) | int(fields["SigPnd"], 16)
    return bool(mask & (1 << (signal.SIGTERM - 1)))


@pytest.mark.timeout(900)
def test_a_term_to_every_process_saves_one_checkpoint_then_the_job_requeues_and_resumes(
    slurm_local_host, slurm_cluster, tiny_model, tmp_path
):
    # What a preemption does to a job: TERM to the batch script and to every process of it
    # (the runner gets it from Slurm and once more from the script).
    steps = 300  # still training when the TERM lands, even on a loaded machine
    config = load_config(train_config_file(tmp_path, tiny_model, max_steps=steps))
    out = Path(config.output_dir)
    backend = get_backend(CLUSTER_NAME)
    resources = Resources(requeue=True)
    job = launch_run("train", config, host=CLUSTER_NAME, backend=backend, resources=resources)
    sid = job.scheduler_id
    wait_for(
        lambda: (out / "trainer_log.jsonl").exists() and len(logged_steps(out)) >= 2,
        timeout=300,
        interval=0.1,
        what="two logged steps",
    )
    slurm_cluster.run("scancel", "--signal=TERM", "--full", sid)
    wait_for(
        lambda: "requeued to resume" in backend.read_log(job).data.decode(),
        timeout=120,
        interval=0.5,
        what="the job to requeue itself",
    )
    first_run = backend.read_log(job).data.decode()
    assert "stopped at once" not in first_run, first_run[-2000:]
    assert len(list(out.glob("checkpoint-*"))) == 1, first_run[-2000:]
    wait_until_pending(slurm_cluster, sid)
    slurm_cluster.run("scontrol", "update", f"JobId={sid}", RESTART_SOON)
    ended = final(backend, job, timeout=600)
    log = backend.read_log(ended).data.decode()
    assert (ended.state, ended.exit_code) == (JobState.SUCCEEDED, 0), (ended, log[-2000:])
    assert "restart 1: resuming from the last checkpoint" in log
    assert logged_steps(out) == list(range(1, steps + 1))
    backend.close()


def test_in_a_slurm_job_a_second_term_soon_after_the_first_still_ends_with_one_checkpoint(
    tiny_model, tmp_path
):
    # Preempted, the runner gets TERM from Slurm and again from the batch script's trap.
    config = train_config_file(tmp_path, tiny_model, max_steps=100000)
    out = tmp_path / "out"
    log = tmp_path / "runner.log"
    env = {**os.environ, "SLURM_JOB_ID": "4242"}
    argv = [sys.executable, "-m", "tunedeck.core.runners.train", str(config)]
    with open(log, "wb") as sink:
        runner = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for(
            lambda: (out / "trainer_log.jsonl").exists() and len(logged_steps(out)) >= 2,
            timeout=300,
            interval=0.1,
            what="two logged steps",
        )
        runner.send_signal(signal.SIGTERM)
        time.sleep(0.05)  # apart (not one pending signal), as close as a preemption sends them
        runner.send_signal(signal.SIGTERM)
        # 143, or the second TERM landing after the stop while the interpreter shuts down: the
        # batch script's shell sees 143 for both, and the stop below is what counts.
        code = runner.wait(timeout=300)
        assert code in (143, -signal.SIGTERM), log.read_text()[-2000:]
        assert "stopped at once" not in log.read_text()
    finally:
        runner.kill()
    status = json.loads((out / "run_status.json").read_text())
    assert status["phase"] == "cancelled" and "checkpoint saved" in status["message"], status
    assert len(list(out.glob("checkpoint-*"))) == 1


def _seconds(elapsed: str) -> int:
    """squeue's %M ("M:SS", "H:MM:SS", "D-H:MM:SS") in seconds."""
    days, _, clock = elapsed.strip().rpartition("-")
    total = 0
    for part in clock.split(":"):
        total = total * 60 + int(part)
    return total + int(days or 0) * 86400


@pytest.mark.timeout(900)
def test_sweep_of_four_runs_as_one_job_array(slurm_host, tiny_model, tmp_path):
    config = train_config_file(tmp_path, tiny_model, max_steps=2)
    done = cli(
        "train", str(config), "--host", CLUSTER_NAME, "--no-sync",
        "--sweep", "learning_rate=1e-3,2e-3", "--sweep", "lora_rank=4,8",
        timeout=300,
    )  # fmt: skip
    ids = [line.split("\t")[0] for line in done.stdout.splitlines()]
    assert len(ids) == 4, done.stdout + done.stderr
    backend = get_backend(CLUSTER_NAME)
    jobs = backend.status(ids)
    array_id = jobs[0].scheduler_id.split("_")[0]
    assert [j.scheduler_id for j in jobs] == [f"{array_id}_{k}" for k in range(4)]
    assert len({j.group for j in jobs}) == 1 and [j.group_index for j in jobs] == [0, 1, 2, 3]
    for job in jobs:
        ended = final(backend, job, timeout=600)
        assert ended.state == JobState.SUCCEEDED, backend.read_log(ended).data[-2000:]
        assert logged_steps(Path(ended.output_dir)) == [1, 2]
    outputs = {Path(j.output_dir).name for j in jobs}
    assert len(outputs) == 4
    backend.close()


def test_train_dry_run_prints_the_sbatch_script_and_submits_nothing(
    slurm_host, tiny_model, tmp_path
):
    config = train_config_file(tmp_path, tiny_model, max_steps=2)
    done = cli(
        "train", str(config), "--host", CLUSTER_NAME, "--dry-run", "--time", "30",
        "--cpus-per-task", "2", "--requeue",
    )  # fmt: skip
    lines = done.stdout.splitlines()
    assert lines[0] == "#!/bin/bash"
    for line in ("#SBATCH --time=30", "#SBATCH --cpus-per-task=2", "#SBATCH --requeue"):
        assert line in lines
    assert any(
        line.strip().startswith("ARGV=(") and "tunedeck.core.runners.train" in line
        for line in lines
    )
    assert json.loads(cli("runs", "--json").stdout) == []
    assert not list((state_dir() / "runs").glob("*.yaml"))  # a preview keeps no snapshot


def test_resources_come_from_the_configs_slurm_keys_and_a_flag_wins(
    slurm_local_host, tiny_model, tmp_path
):
    keys = {"slurm_time": "45", "slurm_mem": "600M", "slurm_cpus_per_task": 1}
    config = train_config_file(tmp_path, tiny_model, max_steps=2, slurm_requeue=True, **keys)
    done = cli("train", str(config), "--host", CLUSTER_NAME, "--dry-run", "--time", "20")
    lines = done.stdout.splitlines()
    for line in ("--time=20", "--mem=600M", "--cpus-per-task=1", "--requeue"):
        assert f"#SBATCH {line}" in lines, done.stdout
    assert "#SBATCH --time=45" not in lines
    assert json.loads(cli("runs", "--json").stdout) == []


@pytest.mark.parametrize(
    ("key", "value", "said"),
    [
        ("slurm_time", "soon", "'soon' is not a Slurm time limit"),
        ("slurm_mem", "lots", "'lots' is not a Slurm memory size"),
        ("slurm_nodes", 0, "must be >= 1"),
    ],
)
def test_a_bad_slurm_key_is_refused_at_the_key_and_nothing_is_submitted(
    slurm_local_host, tiny_model, tmp_path, key, value, said
):
    config = train_config_file(tmp_path, tiny_model, max_steps=2, **{key: value})
    done = cli("train", str(config), "--host", CLUSTER_NAME, "--detach", check=False)
    assert done.returncode != 0 and f"'{key}'" in done.stderr and said in done.stderr, done.stderr
    assert str(config) in done.stderr
    assert json.loads(cli("runs", "--json").stdout) == []


def test_a_bad_resource_flag_is_refused_at_the_flag(slurm_local_host, tiny_model, tmp_path):
    config = train_config_file(tmp_path, tiny_model, max_steps=2, slurm_time="30")
    done = cli("train", str(config), "--host", CLUSTER_NAME, "--dry-run", "--time", "5 min",
               check=False)  # fmt: skip
    assert done.returncode != 0 and "'--time'" in done.stderr, done.stderr
    assert "'5 min' is not a Slurm time limit" in done.stderr and "#!/bin/bash" not in done.stdout
