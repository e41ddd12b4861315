"""The Datasets and Runs screens under each shipped theme at 120x40: every badge and job state
is drawn in the theme's own colours (pytest-textual-snapshot).

Regenerate after a deliberate change: pytest tests/tui/test_theme_snapshots.py --snapshot-update
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from pilot_tools import REPO, settle, settle_until, wait_until

from tunedeck.core.jobs import JobRegistry, procs
from tunedeck.core.jobs.model import Job, JobState
from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.settings import save_theme

THEMES = ["tunedeck-dark", "tunedeck-light", "tunedeck-contrast"]
SIZE = (120, 40)
DATA = Path("examples/workspace/data")
FAILED_LOG = "step 1/4 ...\nTraceback (most recent call last):\nRuntimeError: CUDA out of memory\n"


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """A working directory where the data folder and the logs have the same relative paths on
    every machine (what the screens print stays the same). The data folder is the example one
    plus an entry of each other badge: a warning, an error and a hub dataset."""
    data = tmp_path / DATA
    shutil.copytree(REPO / DATA, data)
    (data / "typo.json").write_text(json.dumps([{"instruction": "a", "output": "b"}]))
    (data / "bad.jsonl").write_text('{"instruction": "one", "output": "1"}\n{"instruction": \n')
    info = json.loads((data / "dataset_info.json").read_text())
    info["typo_entry"] = {"file_name": "typo.json", "colums": {"prompt": "instruction"}}
    info["bad_lines"] = {"file_name": "bad.jsonl"}
    info["hub_entry"] = {"hf_hub_url": "someone/some-dataset"}
    (data / "dataset_info.json").write_text(json.dumps(info, indent=2))
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "failed.log").write_text(FAILED_LOG)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def one_job_per_state(workdir) -> list[Job]:
    """Local jobs in every state; the running one is this test process (alive throughout)."""
    now = time.time()
    me = os.getpid()

    def job(number: int, state: JobState, **fields) -> Job:
        return Job(
            id=f"job00{number}",
            name=f"{state.value}-run",
            argv=("tunedeck", "train", f"{state.value}.yaml"),
            kind="train",
            state=state,
            created_at=now - number,
            **fields,
        )

    jobs = [
        job(1, JobState.FAILED, exit_code=1, log_path="logs/failed.log", ended_at=now),
        job(2, JobState.RUNNING, pid=me, pid_start=procs.start_time(me), started_at=now),
        job(3, JobState.QUEUED),
        job(4, JobState.SUCCEEDED, exit_code=0, progress=1.0, last_loss=0.4211),
        job(5, JobState.CANCELLED, progress=0.35, last_loss=1.2034, signal=15),
        job(6, JobState.LOST, message="the job's processes vanished"),
    ]
    registry = JobRegistry()
    for each in jobs:
        registry.put(each)
    registry.close()
    return jobs


def _datasets_ready(app) -> bool:
    screen = app.screen
    info = getattr(screen, "info", None)
    return (
        info is not None
        and len(screen.reports) == len(info.specs)
        and screen.selected in screen.stats
        and not screen.query_one("#validate-progress").display
    )


def _ready(mode: str, jobs: int = 0):
    async def run_before(pilot) -> None:
        app = pilot.app
        await settle_until(pilot, lambda: _datasets_ready(app), "datasets validated")
        await settle(pilot)
        if mode == "runs":  # the log view follows its file for good: wait, do not settle
            await pilot.press("3")
            await wait_until(
                pilot,
                lambda: app.current_mode == "runs" and len(app.screen.jobs) == jobs,
                "every job listed",
            )
            await wait_until(pilot, lambda: "RuntimeError" in _log_text(app), "the log shown")
        await pilot.pause(0.1)

    return run_before


def _log_text(app) -> str:
    from tunedeck.tui.widgets.log_view import LogView

    view = app.screen.query_one("#job-log", LogView)
    return "".join(line.text for line in view.window)


@pytest.mark.parametrize("theme", THEMES)
def test_datasets_in_each_theme(snap_compare, workdir, theme):
    save_theme(theme)
    assert snap_compare(TunedeckApp(DATA), terminal_size=SIZE, run_before=_ready("datasets"))


@pytest.mark.parametrize("theme", THEMES)
def test_runs_in_each_theme(snap_compare, one_job_per_state, theme):
    save_theme(theme)
    app = TunedeckApp(DATA)
    ready = _ready("runs", jobs=len(one_job_per_state))
    assert snap_compare(app, terminal_size=SIZE, run_before=ready)
