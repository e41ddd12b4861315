"""The one path that starts a runner job: interpreter, snapshot, argv, command line, submit."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time

import pytest
import yaml
from train_helpers import REPO

from tunedeck.core.config import load_config
from tunedeck.core.jobs import JobRegistry, get_backend
from tunedeck.core.runners.launch import launch_run, rerun_command

pytestmark = pytest.mark.slow

CONFIG = "examples/workspace/configs/tiny_lora_sft.yaml"
DATA = REPO / "examples" / "workspace" / "data"


def short_run(tiny_model, output_dir) -> list[str]:
    """Overrides that make the example config a one-step run on the tiny model."""
    return [
        f"model_name_or_path={tiny_model}",
        f"dataset_dir={DATA}",
        f"output_dir={output_dir}",
        "max_steps=1",
        "logging_steps=1",
    ]


def wait_final(job, backend, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while True:
        (record,) = backend.status([job.id])
        if record.state.is_final:
            return record
        assert time.monotonic() < deadline, f"job {job.id} still {record.state.value}"
        time.sleep(0.5)


def test_a_local_run_uses_this_python_and_a_snapshot_and_records_the_users_command(
    tiny_model, tmp_path
):
    overrides = short_run(tiny_model, tmp_path / "out")
    config = load_config(REPO / CONFIG, overrides)
    backend = get_backend(None)
    try:
        job = launch_run(
            "train", config, config_path=CONFIG, overrides=overrides, name="tiny", cwd=str(REPO)
        )
        assert job.argv[:3] == (sys.executable, "-m", "tunedeck.core.runners.train")
        assert load_config(job.argv[3]) == config  # the snapshot is the whole config
        assert yaml.safe_load(job.config) == config.changed()
        assert (job.name, job.kind, job.cwd) == ("tiny", "train", str(REPO))
        assert job.output_dir == str(tmp_path / "out")
        assert job.command_line == shlex.join(["tunedeck", "train", CONFIG, *overrides])
        assert JobRegistry().get(job.id).command_line == job.command_line
        record = wait_final(job, backend)
    finally:
        backend.close()
    assert (record.state.value, record.exit_code) == ("succeeded", 0)


def test_a_run_without_a_config_file_can_be_rerun_from_its_command_line(tiny_model, tmp_path):
    config = load_config(
        REPO / CONFIG, short_run(tiny_model, tmp_path / "out ü"), check_files=False
    )
    backend = get_backend(None)
    try:
        job = launch_run("train", config, backend=backend)
        snapshot = job.argv[3]
        assert job.command_line == shlex.join(["tunedeck", "train", snapshot])
        assert job.name == "out ü"
        assert wait_final(job, backend).state.value == "succeeded"

        argv = shlex.split(job.command_line)
        assert argv[0] == "tunedeck"
        again = subprocess.run(
            [sys.executable, "-m", "tunedeck.tui", *argv[1:], "--detach"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert again.returncode == 0, again.stderr
        rerun = JobRegistry().find(re.search(r"job (\w+) started", again.stderr).group(1))
        assert rerun.id != job.id and rerun.config == job.config
        assert wait_final(rerun, backend).state.value == "succeeded"
    finally:
        backend.close()


def test_a_run_on_a_host_uses_the_hosts_python_and_carries_every_setting(
    loop_host, tiny_model, tmp_path
):
    overrides = short_run(tiny_model, tmp_path / "remote-out")
    config = load_config(REPO / CONFIG, overrides, check_files=False)
    backend = get_backend(loop_host.name)
    try:
        host_python = backend.check()["python"]
        job = launch_run(
            "train",
            config,
            host=loop_host.name,
            config_path=CONFIG,
            overrides=overrides,
            backend=backend,
        )
        assert job.host == "loop"
        assert job.argv[:4] == (host_python, "-m", "tunedeck.core.runners.train", "-")
        assert load_config(None, job.argv[4:], check_files=False) == config
        assert job.command_line == shlex.join(
            ["tunedeck", "train", CONFIG, *overrides, "--host", "loop"]
        )
        record = wait_final(job, backend)
    finally:
        backend.close()
    assert (record.state.value, record.exit_code) == ("succeeded", 0)
    assert record.command_line == job.command_line  # kept through the host's own registry


def test_a_quantize_run_starts_the_export_runner(tmp_path):
    config = load_config(
        None,
        [f"model_name_or_path={tmp_path / 'no-model'}", f"export_dir={tmp_path / 'q'}"],
        purpose="export",
        check_files=False,
    )
    backend = get_backend(None)
    try:
        job = launch_run("quantize", config, backend=backend)
        assert job.argv[1:3] == ("-m", "tunedeck.core.runners.quantize")
        assert (job.kind, job.name, job.output_dir) == ("quantize", "q", str(tmp_path / "q"))
        assert job.command_line == shlex.join(["tunedeck", "quantize", job.argv[3]])
        assert wait_final(job, backend).state.value == "failed"  # there is no model to export
    finally:
        backend.close()


def test_the_command_line_quotes_what_a_shell_would_split():
    line = rerun_command("quantize", "my run.yaml", ["export_dir=out/a b", "x=$(y)"], "gpu-1")
    assert shlex.split(line) == [
        "tunedeck",
        "quantize",
        "my run.yaml",
        "export_dir=out/a b",
        "x=$(y)",
        "--host",
        "gpu-1",
    ]
