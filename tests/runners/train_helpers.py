"""Helpers for the training runner tests: run the real runner process, read its progress files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TRAIN_MODULE = "tunedeck.core.runners.train"


def run_train(args: list[str], *, timeout: float = 240) -> subprocess.CompletedProcess:
    """The training runner as a real process, from the repository root."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", TRAIN_MODULE, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def read_log(output_dir: Path) -> list[dict]:
    path = output_dir / "trainer_log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_status(output_dir: Path) -> dict:
    return json.loads((output_dir / "run_status.json").read_text())
