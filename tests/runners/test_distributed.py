"""Multi-node training under Slurm: torchrun_lines in a real sbatch on a cluster of two nodes."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from slurm_cluster import free_port
from slurm_nodes import slurm_two_nodes  # noqa: F401 - fixture
from train_helpers import REPO, TRAIN_MODULE, read_log, read_status

from tunedeck.core.config import load_config
from tunedeck.core.jobs import JobState
from tunedeck.core.jobs.backend import Resources
from tunedeck.core.jobs.slurm import SlurmBackend
from tunedeck.core.runners.distributed import torchrun_lines
from tunedeck.core.runners.launch import launch_run
from tunedeck.core.runners.sweep import launch_sweep, parse_sweeps

CONFIG = REPO / "examples" / "workspace" / "configs" / "tiny_lora_sft.yaml"
DATA = REPO / "examples" / "workspace" / "data"
RANK_LINE = re.compile(r"rank (\d+) of (\d+): node rank (\d+), local rank (\d+) on (\S+)")
FINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")


def test_each_node_runs_one_torchrun_agent_with_its_slurm_node_rank():
    lines = torchrun_lines(["/venv/python", "-m", "some.runner", "cfg one.yaml"], 2, 4, port=29511)
    assert lines[0] == 'MASTER_NODE="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)"'
    (srun_line,) = [line for line in lines if line.startswith("setsid -w srun ")]
    assert srun_line.endswith(" &") and lines[-1] == 'wait "$SRUN_PID"'
    srun = shlex.split(srun_line)[2:-1]
    assert srun[:6] == ["srun", "--nodes", "2", "--ntasks-per-node", "1", "--kill-on-bad-exit=1"]
    assert srun[6:8] == ["bash", "-c"]
    agent = srun[8]
    assert agent.startswith("exec /venv/python -m torch.distributed.run --nnodes 2 ")
    assert "--nproc-per-node 4" in agent and '--node-rank "$SLURM_NODEID"' in agent
    assert '--rdzv-backend c10d --rdzv-endpoint "$MASTER_ADDR:$MASTER_PORT"' in agent
    assert "export MASTER_PORT=29511" in lines
    assert agent.endswith('-m some.runner "$@"')
    assert srun[9:] == ["torchrun", "cfg one.yaml"]  # $0, then the runner's own arguments
    checked = subprocess.run(["bash", "-n"], input="\n".join(lines), text=True, capture_output=True)
    assert checked.returncode == 0, checked.stderr


def test_an_array_task_passes_its_own_arguments_through_the_shell(tmp_path):
    lines = torchrun_lines(["/venv/python", "-m", "some.runner"], 2, 1, shell_args='"${ARGV[@]:3}"')
    assert any(line.endswith(' torchrun "${ARGV[@]:3}" &') for line in lines)
    # what each node's bash receives, with srun and the agent replaced by echoes of their argv
    script = tmp_path / "expand.sh"
    body = [line.replace("exec /venv/python", "printf %s\\| /venv/python") for line in lines]
    srun = "setsid -w srun --nodes 2 --ntasks-per-node 1 --kill-on-bad-exit=1"
    body = [line.replace(srun, "") for line in body]
    script.write_text(
        "scontrol() { echo 'NodeAddr=10.0.0.7 '; }\n"
        "export SLURM_NODEID=1 SLURM_JOB_ID=42\nARGV=(py -m mod 'cfg one.yaml' lr=1)\n"
        + "\n".join(body)
    )
    shown = subprocess.run(["bash", str(script)], capture_output=True, text=True).stdout
    assert shown.endswith("-m|some.runner|cfg one.yaml|lr=1|")
    assert (
        "--node-rank|1|" in shown and "--rdzv-endpoint|10.0.0.7:29542|" in shown
    )  # 29500 + job 42


def test_a_runner_argv_without_a_module_is_refused():
    with pytest.raises(ValueError, match="python, '-m', module"):
        torchrun_lines(["train.py", "cfg.yaml"], 2, 1)


def _wait_final(cluster, job_id: str, timeout: float = 600) -> str:
    deadline = time.monotonic() + timeout
    while True:
        shown = cluster.run("scontrol", "show", "job", "-o", job_id).stdout
        state = re.search(r"JobState=(\w+)", shown)
        if state and state.group(1) in FINAL:
            return shown
        assert time.monotonic() < deadline, f"Slurm job {job_id} not finished: {shown}"
        time.sleep(1)


@pytest.mark.slow
def test_two_slurm_nodes_train_one_run_and_only_rank_zero_logs_each_step(
    slurm_two_nodes,  # noqa: F811 - the fixture imported above
    tiny_model,
    tmp_path,
):
    out = tmp_path / "two-nodes"
    runner = [sys.executable, "-m", TRAIN_MODULE, str(CONFIG), f"model_name_or_path={tiny_model}"]
    runner += [f"dataset_dir={DATA}", f"output_dir={out}", "max_steps=3", "logging_steps=1"]
    job_out = tmp_path / "job.out"
    script = tmp_path / "job.sh"
    body = torchrun_lines(runner, nodes=2, procs_per_node=1, port=free_port())
    header = ["#!/bin/bash", "#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1"]
    header += [f"#SBATCH --output={job_out}", f"cd {shlex.quote(str(REPO))}"]
    script.write_text("\n".join(header + body) + "\n")

    submitted = slurm_two_nodes.run("sbatch", "--parsable", str(script))
    assert submitted.returncode == 0, submitted.stderr
    shown = _wait_final(slurm_two_nodes, submitted.stdout.strip().split(";")[0])
    text = job_out.read_text()
    assert "JobState=COMPLETED" in shown, text[-4000:]
    assert "NodeList=n[1-2]" in shown and "NumNodes=2" in shown

    ranks = sorted(RANK_LINE.findall(text))
    # one rank per node, each knowing the world of two; torchrun's node rank is the global rank
    assert [(r[0], r[1], r[2], r[3]) for r in ranks] == [("0", "2", "0", "0"), ("1", "2", "1", "0")]
    assert {r[4] for r in ranks} == {"n1", "n2"}

    log = read_log(out)
    assert [r["current_steps"] for r in log] == [1, 2, 3]  # the loss once per step
    assert all("loss" in r for r in log)
    assert log[-1]["epoch"] == pytest.approx(0.75)  # 8 rows a step: 4 on each of two ranks
    assert read_status(out)["phase"] == "done"
    assert text.count("[done]") == 1 and text.count("step 3/3") == 1
    assert (out / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_a_two_node_training_job_through_the_slurm_backend_succeeds_with_one_log(
    slurm_two_nodes,  # noqa: F811 - the fixture imported above
    tiny_model,
    tmp_path,
):
    out = tmp_path / "job-two-nodes"
    overrides = [f"model_name_or_path={tiny_model}", f"dataset_dir={DATA}", f"output_dir={out}"]
    overrides += ["max_steps=2", "logging_steps=1"]
    config = load_config(CONFIG, overrides)
    backend = SlurmBackend("cluster2", env=slurm_two_nodes.env)
    job = launch_run(
        "train",
        config,
        host="cluster2",
        config_path=CONFIG,
        overrides=overrides,
        backend=backend,
        resources=Resources(nodes=2),
    )
    deadline = time.monotonic() + 600
    while not (job := backend.status([job.id])[0]).state.is_final:
        assert time.monotonic() < deadline, f"job still {job.state.value} {job.reason}"
        time.sleep(1)
    text = backend.read_log(job).data.decode()
    assert (job.state, job.exit_code) == (JobState.SUCCEEDED, 0), text[-4000:]
    assert "--nnodes 2" in Path(job.script_path).read_text()
    assert {r[4] for r in RANK_LINE.findall(text)} == {"n1", "n2"}
    assert [r["current_steps"] for r in read_log(out)] == [1, 2]
    assert read_status(out)["phase"] == "done"


@pytest.mark.slow
def test_a_sweep_of_two_node_runs_is_one_array_whose_tasks_train_their_own_point(
    slurm_two_nodes,  # noqa: F811 - the fixture imported above
    tiny_model,
    tmp_path,
):
    out = tmp_path / "grid"
    overrides = [f"model_name_or_path={tiny_model}", f"dataset_dir={DATA}", f"output_dir={out}"]
    overrides += ["max_steps=1", "logging_steps=1"]
    config = load_config(CONFIG, overrides)
    backend = SlurmBackend("cluster2", env=slurm_two_nodes.env)
    jobs = launch_sweep(
        "train",
        config,
        parse_sweeps(["lora_rank=2,4"]),
        host="cluster2",
        config_path=CONFIG,
        overrides=overrides,
        backend=backend,
        resources=Resources(nodes=2),
    )
    deadline = time.monotonic() + 600
    while not all(job.state.is_final for job in jobs):
        assert time.monotonic() < deadline, [f"{j.state.value} {j.reason}" for j in jobs]
        time.sleep(1)
        jobs = backend.status([job.id for job in jobs])
    for job, rank in zip(jobs, (2, 4), strict=True):
        text = backend.read_log(job).data.decode()
        assert (job.state, job.exit_code) == (JobState.SUCCEEDED, 0), text[-3000:]
        assert {r[4] for r in RANK_LINE.findall(text)} == {"n1", "n2"}
        assert Path(job.output_dir) == out / f"r{rank}"
        assert [r["current_steps"] for r in read_log(out / f"r{rank}")] == [1]
        assert f'"r": {rank}' in (out / f"r{rank}" / "adapter_config.json").read_text()


@pytest.mark.slow
def test_cancelling_a_two_node_job_stops_every_rank_after_a_checkpoint(
    slurm_two_nodes,  # noqa: F811 - the fixture imported above
    tiny_model,
    tmp_path,
):
    out = tmp_path / "cancel-two-nodes"
    overrides = [f"model_name_or_path={tiny_model}", f"dataset_dir={DATA}", f"output_dir={out}"]
    overrides += ["max_steps=5000", "logging_steps=1", "save_steps=100000"]
    config = load_config(CONFIG, overrides)
    backend = SlurmBackend("cluster2", env=slurm_two_nodes.env)
    job = launch_run(
        "train", config, host="cluster2", backend=backend, resources=Resources(nodes=2)
    )
    deadline = time.monotonic() + 600
    while len(read_log(out) if (out / "trainer_log.jsonl").exists() else []) < 2:
        assert time.monotonic() < deadline, backend.read_log(job).data.decode()[-3000:]
        assert not backend.status([job.id])[0].state.is_final, backend.read_log(job).data.decode()
        time.sleep(0.5)

    result = backend.cancel(job, grace=90)
    text = backend.read_log(job).data.decode()
    assert (result.job.state, result.signal) == (JobState.CANCELLED, "SIGTERM"), text[-3000:]
    status = read_status(out)
    assert status["phase"] == "cancelled" and "checkpoint saved" in status["message"], text[-3000:]
    step = status["current_steps"]
    assert (out / f"checkpoint-{step}").is_dir(), sorted(p.name for p in out.iterdir())
    assert text.count("SIGTERM received: stopping after this step") == 1  # rank 0 alone says it
