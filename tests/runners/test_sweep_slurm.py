"""A sweep on a Slurm cluster is one job array: a real slurmctld + slurmd, the tiny model."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from slurm_cluster import slurm_cluster  # noqa: F401 - fixture
from train_helpers import REPO, read_log

from tunedeck.core.config import load_config
from tunedeck.core.jobs import JobState
from tunedeck.core.jobs.slurm import SlurmBackend
from tunedeck.core.runners.sweep import launch_sweep, parse_sweeps

pytestmark = pytest.mark.slow

CONFIG = REPO / "examples" / "workspace" / "configs" / "tiny_lora_sft.yaml"
DATA = REPO / "examples" / "workspace" / "data"


def _wait_all(backend, jobs, timeout: float = 600):
    deadline = time.monotonic() + timeout
    while True:
        current = backend.status([job.id for job in jobs])
        if all(job.state.is_final for job in current):
            return current
        states = [f"{j.name} {j.state.value} {j.scheduler_state} {j.reason}" for j in current]
        assert time.monotonic() < deadline, f"still waiting: {states}"
        time.sleep(1)


def test_a_sweep_of_four_is_one_slurm_job_array_and_every_point_trains(
    slurm_cluster,  # noqa: F811 - the fixture imported above
    tiny_model,
    tmp_path,
):
    out = tmp_path / "grid"
    overrides = [f"model_name_or_path={tiny_model}", f"dataset_dir={DATA}", f"output_dir={out}"]
    overrides += ["max_steps=1", "logging_steps=1"]
    config = load_config(CONFIG, overrides)
    backend = SlurmBackend("cluster", env=slurm_cluster.env)
    sweeps = parse_sweeps(["lora_rank=2,4", "learning_rate=1e-3,2e-3"])
    jobs = launch_sweep(
        "train",
        config,
        sweeps,
        host="cluster",
        config_path=CONFIG,
        overrides=overrides,
        name="tiny",
        backend=backend,
    )
    labels = ["r2-lr1e-3", "r2-lr2e-3", "r4-lr1e-3", "r4-lr2e-3"]
    assert [job.name for job in jobs] == [f"tiny-{label}" for label in labels]
    array_id = jobs[0].scheduler_id.split("_")[0]
    assert [job.scheduler_id for job in jobs] == [f"{array_id}_{k}" for k in range(4)]
    assert {job.group for job in jobs} == {jobs[0].group} and jobs[0].group
    assert [job.group_index for job in jobs] == [0, 1, 2, 3]

    ended = _wait_all(backend, jobs)
    assert [job.state for job in ended] == [JobState.SUCCEEDED] * 4, [j.message for j in ended]
    for job, label in zip(ended, labels, strict=True):
        folder = Path(job.output_dir)
        assert folder == out / label
        assert [r["current_steps"] for r in read_log(folder)] == [1]
        adapter = json.loads((folder / "adapter_config.json").read_text())
        assert adapter["r"] == int(label[1])
