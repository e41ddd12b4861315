"""A real preemption (Slurm's partition_prio, PreemptMode=REQUEUE): a run in a low partition is
preempted by a job of a higher one. Slurm signals a batch job's processes when the grace time
ends (only job steps hear at its start): the runner saves a checkpoint in KillWait's time, then
Slurm requeues the run and it resumes from that checkpoint to the end; without requeue it ends
with its checkpoint and `runs resume` goes on from it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from jobs_helpers import cli_json, wait_for
from slurm_cluster import (
    CLUSTER_NAME,
    SlurmCluster,
    SlurmNode,
    add_login_host,
    free_port,
    start_cluster,
    stop_cluster,
    write_slurm_conf,
)
from test_slurm_training import (
    RESTART_SOON,
    final,
    logged_steps,
    tiny_model,  # noqa: F401 - fixture
    train_config_file,
    wait_until_pending,
)

from tunedeck.core.config import load_config
from tunedeck.core.jobs import JobState, get_backend
from tunedeck.core.jobs.backend import Resources
from tunedeck.core.jobs.hosts import Host
from tunedeck.core.runners.launch import launch_run

pytestmark = pytest.mark.slow

LOW, URGENT = "low", "urgent"
# Many steps (a few ms each): still training when the preemption comes, even on a loaded box.
STEPS = 3000


@pytest.fixture(scope="module")
def preempting_cluster(tmp_path_factory) -> Iterator[SlurmCluster]:
    """One node, a low partition whose jobs a job of the urgent one preempts (PreemptMode=REQUEUE;
    5 s of grace, then TERM and KillWait's 5 s)."""
    if os.geteuid() != 0:
        pytest.fail("the Slurm fixture starts slurmd, which needs root")
    root = Path(tmp_path_factory.mktemp("slurm-preempt"))
    nodes = [SlurmNode(name="node1", port=free_port())]
    conf = write_slurm_conf(
        root,
        nodes,
        extra=["PreemptType=preempt/partition_prio", "PreemptMode=REQUEUE"],
        partitions=[f"{LOW} PriorityTier=1 GraceTime=5", f"{URGENT} PriorityTier=10"],
    )
    cluster = start_cluster(conf, nodes, LOW)
    yield cluster
    stop_cluster(cluster)


@pytest.fixture
def low_host(preempting_cluster) -> Host:
    return add_login_host(preempting_cluster)  # its partition: low


def train_then_preempt(cluster: SlurmCluster, model: Path, tmp_path: Path, requeue: bool):
    """A run in the low partition; once it has logged two steps, a job of the urgent partition
    that needs the whole node. (backend, job, output folder)"""
    backend = get_backend(CLUSTER_NAME)
    config = load_config(train_config_file(tmp_path, model, max_steps=STEPS))
    out = Path(config.output_dir)
    resources = Resources(requeue=requeue, cpus_per_task=2)
    job = launch_run("train", config, host=CLUSTER_NAME, backend=backend, resources=resources)
    wait_for(
        lambda: (out / "trainer_log.jsonl").exists() and len(logged_steps(out)) >= 2,
        timeout=300,
        interval=0.1,
        what="two logged steps",
    )
    argv = ["sbatch", "--parsable", "-p", URGENT, "-c", "2", "-o", str(tmp_path / "urgent.out")]
    done = cluster.run(*argv, "--wrap", "sleep 3")
    assert done.returncode == 0, done.stderr
    return backend, job, out


@pytest.mark.timeout(900)
def test_a_preempted_run_saves_a_checkpoint_is_requeued_and_resumes_to_the_end(
    preempting_cluster,
    low_host,
    tiny_model,  # noqa: F811
    tmp_path,
):
    backend, job, out = train_then_preempt(preempting_cluster, tiny_model, tmp_path, True)
    wait_until_pending(preempting_cluster, job.scheduler_id)
    first_run = backend.read_log(job).data.decode()
    assert "DUE TO PREEMPTION" in first_run and "requeued to resume" in first_run, first_run[-2000:]
    assert "refused" not in first_run, first_run[-2000:]
    (saved,) = out.glob("checkpoint-*")
    assert backend.status([job.id])[0].state is JobState.QUEUED
    preempting_cluster.run("scontrol", "update", f"JobId={job.scheduler_id}", RESTART_SOON)
    ended = final(backend, job, timeout=600)
    log = backend.read_log(ended).data.decode()
    assert (ended.state, ended.exit_code) == (JobState.SUCCEEDED, 0), (ended, log[-2000:])
    assert "restart 1: resuming from the last checkpoint" in log
    assert logged_steps(out) == list(range(1, STEPS + 1))  # resumed at the checkpoint: once each
    assert int(saved.name.split("-")[1]) < STEPS
    backend.close()


@pytest.mark.timeout(600)
def test_a_preempted_run_without_requeue_ends_with_its_checkpoint_and_resumes_from_it(
    preempting_cluster,
    low_host,
    tiny_model,  # noqa: F811
    tmp_path,
):
    backend, job, out = train_then_preempt(preempting_cluster, tiny_model, tmp_path, False)
    ended = final(backend, job, timeout=300)
    assert (ended.state, ended.scheduler_state, ended.exit_code) == (
        JobState.FAILED,
        "PREEMPTED",
        143,
    ), ended
    assert ended.message == (
        "preempted by a higher-priority job; checkpoint saved:"
        f" `tunedeck runs resume {job.id}` goes on from it"
    )
    (saved,) = out.glob("checkpoint-*")
    status = json.loads((out / "run_status.json").read_text())
    assert status["phase"] == "cancelled" and status["current_steps"] == int(
        saved.name.split("-")[1]
    )
    backend.close()
    again = cli_json("runs", "resume", job.id)  # what the message says
    wait_for(
        lambda: cli_json("runs", "show", again["id"])["state"] == "succeeded",
        timeout=300,
        interval=1.0,
        what="the resumed run to finish",
    )
    assert logged_steps(out) == list(range(1, STEPS + 1))
