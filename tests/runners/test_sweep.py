"""Sweeps: --sweep values, their grid, and one run per point, one after the other on a box."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from train_helpers import REPO, read_log

from tunedeck.core.config import load_config
from tunedeck.core.errors import ConfigError, UsageError
from tunedeck.core.jobs import JobRegistry, JobSpec, JobState, get_backend
from tunedeck.core.runners.inputs import SyncOptions
from tunedeck.core.runners.sweep import (
    grid,
    launch_sweep,
    parse_sweeps,
    point_labels,
    submit_one_after_another,
)

CONFIG = REPO / "examples" / "workspace" / "configs" / "tiny_lora_sft.yaml"
DATA = REPO / "examples" / "workspace" / "data"


def test_sweep_values_are_read_as_the_keys_types_in_the_order_given():
    sweeps = parse_sweeps(["learning_rate=1e-4,2e-4", "lora_rank=8,16"])
    assert sweeps == {"learning_rate": [1e-4, 2e-4], "lora_rank": [8, 16]}
    assert grid(sweeps) == [
        {"learning_rate": 1e-4, "lora_rank": 8},
        {"learning_rate": 1e-4, "lora_rank": 16},
        {"learning_rate": 2e-4, "lora_rank": 8},
        {"learning_rate": 2e-4, "lora_rank": 16},
    ]
    assert point_labels(grid(sweeps)) == ["lr1e-4-r8", "lr1e-4-r16", "lr2e-4-r8", "lr2e-4-r16"]


@pytest.mark.parametrize(
    ("value", "said", "hint"),
    [
        ("lerning_rate=1e-4,2e-4", "unknown key 'lerning_rate'", "did you mean 'learning_rate'?"),
        ("lora_rank=8,abc", "'abc': expected a whole number", None),
        ("lora_rank=8,0", "'0': must be >= 1", None),
        ("lora_rank=8,8", "'8' is given twice", None),
        ("lora_rank", "is not key=value", "e.g. --sweep learning_rate=1e-4,2e-4"),
        ("output_dir=a,b", "output_dir cannot be swept", None),
    ],
)
def test_a_bad_sweep_value_is_named_with_its_flag_and_key(value, said, hint):
    with pytest.raises(UsageError) as caught:
        parse_sweeps(["learning_rate=1e-4", value])
    error = caught.value
    assert said in error.message
    assert (error.location.file, error.location.column) == ("--sweep", value.partition("=")[0])
    assert str(error).startswith(f"--sweep, '{value.partition('=')[0]}': ")
    if hint:
        assert error.hint == hint


def test_the_same_key_swept_twice_is_refused():
    with pytest.raises(UsageError, match="swept twice"):
        parse_sweeps(["lora_rank=4", "lora_rank=8"])


def test_a_bad_point_submits_nothing(tiny_model, tmp_path):
    overrides = [f"model_name_or_path={tiny_model}", f"dataset_dir={DATA}"]
    overrides.append(f"output_dir={tmp_path / 'out'}")
    config = load_config(CONFIG, overrides)
    with pytest.raises(ConfigError) as caught:
        launch_sweep(
            "train", config, {"lora_rank": [8, 0]}, config_path=CONFIG, overrides=overrides
        )
    assert "sweep point 2 of 2 (lora_rank=0)" in caught.value.message
    assert caught.value.location.column == "lora_rank"
    assert JobRegistry().list() == []


def _command(tmp_path: Path, name: str, *argv: str) -> JobSpec:
    return JobSpec(argv=tuple(argv), name=name, cwd=str(tmp_path), id=JobRegistry().new_id())


def _wait(backend, job, done=lambda j: j.state.is_final, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while True:
        (current,) = backend.status([job.id])
        if done(current):
            return current
        assert time.monotonic() < deadline, f"job {job.id} still {current.state.value}"
        time.sleep(0.2)


def test_a_failed_run_does_not_stop_the_next_one(tmp_path):
    backend = get_backend(None)
    specs = [
        _command(tmp_path, "first", "sh", "-c", "exit 3"),
        _command(tmp_path, "second", "sh", "-c", "echo second-ran"),
    ]
    first, second = submit_one_after_another(backend, specs, python=sys.executable)
    second = _wait(backend, second)
    first = _wait(backend, first)
    assert (first.state, first.exit_code) == (JobState.FAILED, 3)
    assert (second.state, second.exit_code) == (JobState.SUCCEEDED, 0)
    assert second.started_at >= first.ended_at
    log = Path(second.log_path).read_text()
    assert f"job {first.id} failed: starting" in log and "second-ran" in log


def test_a_waiting_run_cancels_at_once_and_the_next_one_still_runs(tmp_path):
    backend = get_backend(None)
    specs = [
        _command(tmp_path, "long", sys.executable, "-c", "import time; time.sleep(120)"),
        _command(tmp_path, "middle", "sh", "-c", "echo middle-ran"),
        _command(tmp_path, "last", "sh", "-c", "echo last-ran"),
    ]
    long, middle, last = submit_one_after_another(backend, specs, python=sys.executable)
    middle = _wait(backend, middle, lambda j: j.state is JobState.QUEUED and j.message)
    assert middle.message == f"waiting for job {long.id}"
    last = _wait(backend, last, lambda j: j.state is JobState.QUEUED and j.message)
    assert last.message == f"waiting for job {middle.id}"
    assert backend.status([long.id])[0].state is JobState.RUNNING

    cancelled = backend.cancel(middle, grace=10)
    assert (cancelled.job.state, cancelled.signal, cancelled.survivors) == (
        JobState.CANCELLED,
        "SIGTERM",
        (),
    )
    log = Path(middle.log_path).read_text()
    assert f"SIGTERM received while waiting for job {long.id}" in log
    assert "middle-ran" not in log
    last = _wait(backend, last, lambda j: j.message == f"waiting for job {long.id}")
    assert last.state is JobState.QUEUED  # still behind the long one
    assert "last-ran" not in Path(last.log_path).read_text()

    backend.cancel(long, grace=10)
    last = _wait(backend, last)
    assert (last.state, last.exit_code) == (JobState.SUCCEEDED, 0)
    assert "last-ran" in Path(last.log_path).read_text()


@pytest.mark.slow
def test_a_sweep_of_two_trains_one_after_the_other_in_a_group(tiny_model, tmp_path):
    out = tmp_path / "sweep"
    overrides = [
        f"model_name_or_path={tiny_model}",
        f"dataset_dir={DATA}",
        f"output_dir={out}",
        "max_steps=2",
        "logging_steps=1",
    ]
    config = load_config(CONFIG, overrides)
    backend = get_backend(None)
    try:
        jobs = launch_sweep(
            "train",
            config,
            parse_sweeps(["lora_rank=4,8"]),
            config_path=CONFIG,
            overrides=overrides,
            name="tiny",
            backend=backend,
        )
        assert [j.name for j in jobs] == ["tiny-r4", "tiny-r8"]
        assert [j.output_dir for j in jobs] == [str(out / "r4"), str(out / "r8")]
        assert jobs[0].group and {j.group for j in jobs} == {jobs[0].group}
        assert [j.group_index for j in jobs] == [0, 1]
        assert "lora_rank=8" in jobs[1].command_line
        first, second = (_wait(backend, job, timeout=300) for job in jobs)
    finally:
        backend.close()
    assert [first.state, second.state] == [JobState.SUCCEEDED, JobState.SUCCEEDED]
    assert second.started_at >= first.ended_at  # the second runner started once the first ended
    assert f"job {first.id} succeeded: starting" in Path(second.log_path).read_text()
    for job, rank in ((first, 4), (second, 8)):
        assert [r["current_steps"] for r in read_log(Path(job.output_dir))] == [1, 2]
        adapter = (Path(job.output_dir) / "adapter_config.json").read_text()
        assert f'"r": {rank}' in adapter


@pytest.mark.slow
def test_a_sweep_on_a_box_over_ssh_runs_one_after_the_other_there(
    remote_box, tiny_model, tmp_path, monkeypatch
):
    data = tmp_path / "laptop" / "data"
    data.mkdir(parents=True)
    rows = [{"instruction": "Say the colour of the sky.", "input": "", "output": "blue"}] * 8
    (data / "sky.json").write_text(json.dumps(rows))
    (data / "dataset_info.json").write_text(json.dumps({"sky": {"file_name": "sky.json"}}))
    monkeypatch.chdir(data.parent)
    settings = [f"model_name_or_path={tiny_model}", "dataset=sky", "dataset_dir=data"]
    settings += ["template=default", "output_dir=out/sweep", "max_steps=1", "logging_steps=1"]
    config = load_config(None, settings, check_files=False)
    backend = get_backend(remote_box.name)
    try:
        jobs = launch_sweep(
            "train",
            config,
            parse_sweeps(["learning_rate=1e-3,2e-3"]),
            host=remote_box.name,
            name="sky",
            backend=backend,
            sync=SyncOptions(),
        )
        assert [j.host for j in jobs] == ["box", "box"]
        assert {j.group for j in jobs} == {jobs[0].group} and [j.group_index for j in jobs] == [
            0,
            1,
        ]
        first, second = (_wait(backend, job, timeout=300) for job in jobs)
        second_log = backend.read_log(second).data.decode()
    finally:
        backend.close()
    assert [first.state, second.state] == [JobState.SUCCEEDED, JobState.SUCCEEDED]
    assert second.started_at >= first.ended_at  # recorded by the box's own registry
    assert f"job {first.id} succeeded: starting" in second_log
    workdir = Path(remote_box.workdir)
    for job, label in ((first, "lr1e-3"), (second, "lr2e-3")):
        assert job.output_dir == str(workdir / "out" / "sweep" / label)
        assert [r["current_steps"] for r in read_log(Path(job.output_dir))] == [1]
