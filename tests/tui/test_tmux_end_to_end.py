"""The real program in a real terminal (tmux): the shared LLaMA-Factory data folder, the
dataset list on screen, then a preview."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from pilot_tools import REPO

TUNEDECK = Path(sys.executable).parent / "tunedeck"


def _capture(session: str) -> str:
    return subprocess.run(
        ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True, check=True
    ).stdout


def _wait_for_screen(session: str, *needles: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = _capture(session)
        if all(needle in screen for needle in needles):
            return screen
        time.sleep(0.2)
    raise AssertionError(f"never saw {needles} on screen:\n{screen}")


@pytest.mark.slow
def test_tmux_shows_the_dataset_list_and_a_preview(shared_data, tunedeck_home):
    assert shutil.which("tmux"), "tmux is needed (make sysdeps installs it)"
    session = f"tunedeck-e2e-{uuid.uuid4().hex[:8]}"
    command = shlex.join(
        [
            "env",
            f"TUNEDECK_HOME={tunedeck_home}",
            "TERM=xterm-256color",
            str(TUNEDECK),
            "tui",
            "../shared/llamafactory-data",
        ]
    )
    subprocess.run(
        [
            "tmux",
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "120",
            "-y",
            "40",
            "-c",
            str(REPO),
            command,
        ],
        check=True,
        env={**os.environ, "TMUX": ""},
    )
    try:
        screen = _wait_for_screen(session, "identity", "alpaca_en_demo", "glaive_toolcall_en_demo")
        assert "1 Datasets" in screen and "5 Hosts" in screen
        _wait_for_screen(session, "✓  identity")  # validated
        subprocess.run(["tmux", "send-keys", "-t", session, "2"], check=True)
        screen = _wait_for_screen(session, "sample 1/91", "Human: hi")
        assert "Assistant:" in screen
        subprocess.run(["tmux", "send-keys", "-t", session, "]"], check=True)
        _wait_for_screen(session, "sample 2/91")
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            alive = subprocess.run(["tmux", "has-session", "-t", session], capture_output=True)
            if alive.returncode != 0:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the app did not quit on q")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
