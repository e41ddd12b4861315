"""The whole round trip to a GPU box over the loopback sshd, as a new user makes it: from a
"laptop" folder holding a data folder and a YAML, set the box up, train there (what the run reads
is sent), bring the results back byte-identical, and launch again sending no data."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pilot_tools import EXAMPLE_DATA
from runners.conftest import tiny_model  # noqa: F401 - fixture
from sshd_server import (  # noqa: F401 - fixtures
    box_account,
    fresh_account,
    fresh_host,
    remote_box,
    remote_home,
    sshd,
)

pytestmark = pytest.mark.slow

STEPS = 2
JOB_STARTED = re.compile(r"job (\w+) started")
NOTHING_SENT = re.compile(r"synced: 0 files, 0 B\b")
PULLED = ("adapter_model.safetensors", "trainer_log.jsonl")


def tunedeck(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tunedeck.tui", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def laptop(tmp_path, tiny_model) -> Path:  # noqa: F811 - the fixture imported above
    """A user's folder: a data folder, a local model and a YAML naming them by relative path."""
    folder = tmp_path / "laptop"
    shutil.copytree(EXAMPLE_DATA, folder / "data")
    shutil.copytree(tiny_model, folder / "models" / "tiny")
    (folder / "run.yaml").write_text(
        "model_name_or_path: models/tiny\nstage: sft\ndo_train: true\nfinetuning_type: lora\n"
        "lora_rank: 8\nlora_target: all\ndataset: demo_alpaca\ndataset_dir: data\n"
        "template: default\ncutoff_len: 64\nmax_samples: 8\noutput_dir: out/round-trip\n"
        f"max_steps: {STEPS}\nlogging_steps: 1\nsave_steps: 100\noverwrite_output_dir: true\n"
        "per_device_train_batch_size: 2\n"
    )
    return folder


def test_setup_makes_a_fresh_account_pass_hosts_check(fresh_host, laptop):  # noqa: F811
    """The base install is real: a venv on the fresh box with this tunedeck, its command kept."""
    before = tunedeck("hosts", "check", fresh_host.name, cwd=laptop)
    assert before.returncode != 0  # nobody prepared this box

    done = tunedeck("hosts", "setup", fresh_host.name, "--extras", "", "--json", cwd=laptop)
    assert done.returncode == 0, done.stderr[-3000:]
    checked = tunedeck("hosts", "check", fresh_host.name, "--json", cwd=laptop)
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert json.loads(checked.stdout)["agent"]["version"]

    again = tunedeck("hosts", "setup", fresh_host.name, "--extras", "", "--json", cwd=laptop)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout)["changed"] is False


def test_train_on_a_box_syncs_pulls_back_byte_identical_and_resends_nothing(
    remote_box,  # noqa: F811
    laptop,
):
    """The training leg runs on the box account (its venv has torch; a fresh base install has
    not): nothing of the laptop's is there before the launch."""
    first = tunedeck("train", "run.yaml", "--host", remote_box.name, cwd=laptop)
    assert first.returncode == 0, first.stderr[-3000:]
    assert re.search(r"job \w+ succeeded \(exit 0\)", first.stderr), first.stderr[-3000:]
    assert re.search(r"synced: [1-9]\d* files?, ", first.stderr), first.stderr[-3000:]
    job_id = JOB_STARTED.search(first.stderr).group(1)
    host_output = Path(_record(job_id, laptop)["output_dir"])

    pulled = tunedeck("runs", "pull", job_id, cwd=laptop)
    assert pulled.returncode == 0, pulled.stderr[-3000:]
    dest = laptop / _record(job_id, laptop)["name"]
    assert _record(job_id, laptop)["pulled_to"] == str(dest)
    for name in PULLED:  # the box's files read as root: byte for byte the same
        assert sha256(dest / name) == sha256(host_output / name), name

    second = tunedeck("train", "run.yaml", "--host", remote_box.name, cwd=laptop)
    assert second.returncode == 0, second.stderr[-3000:]
    assert NOTHING_SENT.search(second.stderr), second.stderr[-3000:]


def _record(job_id: str, cwd: Path) -> dict:
    shown = tunedeck("runs", "show", job_id, "--json", cwd=cwd)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)
