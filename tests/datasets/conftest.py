"""Helpers for dataset tests: build a data dir from rows, run the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def make_data(tmp_path: Path) -> Callable[..., Path]:
    """make_data(info, files={"name.json": rows-or-text}) -> a data dir with dataset_info.json."""

    def build(info: Any, files: dict[str, Any] | None = None) -> Path:
        data = tmp_path / "data"
        data.mkdir(exist_ok=True)
        text = info if isinstance(info, str) else json.dumps(info, indent=2)
        (data / "dataset_info.json").write_text(text)
        for name, content in (files or {}).items():
            target = data / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            elif isinstance(content, str):
                target.write_text(content)
            elif name.endswith(".jsonl"):
                target.write_text("".join(json.dumps(row) + "\n" for row in content))
            else:
                target.write_text(json.dumps(content, indent=2))
        return data

    return build


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The real `tunedeck` command in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "tunedeck.tui", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


@pytest.fixture
def cli() -> Callable[..., subprocess.CompletedProcess]:
    return run_cli
