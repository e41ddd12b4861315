"""The app process never imports torch or transformers, whatever screen is used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.mark.slow
def test_driving_every_screen_imports_no_torch_or_transformers(tunedeck_home):
    env = {**os.environ, "PYTHONPATH": str(HERE), "TUNEDECK_HOME": str(tunedeck_home)}
    done = subprocess.run(
        [sys.executable, str(HERE / "drive_every_screen.py")],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["heavy"] == []
