"""Fixtures for the runner tests: one tiny model per session, built offline into a temp dir."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from reference_venv import reference_python  # noqa: F401 - fixture
from sshd_server import box_account, loop_host, remote_box, remote_home, sshd  # noqa: F401 - fixtures

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """The demo model, built once by the real `tunedeck demo model` command."""
    folder = tmp_path_factory.mktemp("tiny-model") / "tiny"
    subprocess.run(
        [sys.executable, "-m", "tunedeck.tui", "demo", "model", str(folder)],
        check=True,
        capture_output=True,
        cwd=REPO,
    )
    return folder


@pytest.fixture()
def memorisable_data(tmp_path) -> Path:
    """A data folder with one alpaca row repeated: a model can learn it in a few dozen steps."""
    folder = tmp_path / "data"
    folder.mkdir()
    rows = [
        {"instruction": "Say the colour of the sky.", "input": "", "output": "blue blue blue"}
    ] * 8
    (folder / "sky.json").write_text(json.dumps(rows))
    info = {"sky": {"file_name": "sky.json"}}
    (folder / "dataset_info.json").write_text(json.dumps(info))
    return folder
