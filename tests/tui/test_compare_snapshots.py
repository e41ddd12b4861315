"""What the Compare screen looks like: three runs' curves overlaid with a legend, final metrics
and the config keys that differ, at 80x24 and 120x40 (pytest-textual-snapshot).

Regenerate after a deliberate change: pytest tests/tui/test_compare_snapshots.py --snapshot-update
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
import yaml
from pilot_tools import REPO, wait_until

from tunedeck.core.jobs import JobRegistry
from tunedeck.core.jobs.model import Job, JobState
from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.screens.compare import CompareScreen

SIZES = [(80, 24), (120, 40)]


def _run(
    folder: Path, job_id: str, name: str, at: float, decay: float, config: dict | None, **fields
) -> Job:
    folder.mkdir(parents=True)
    lines = []
    for step in range(1, 121):
        row = {
            "current_steps": step,
            "total_steps": 120,
            "loss": round(0.5 + 2.5 * math.exp(-step / decay), 4),
        }
        if config is not None:
            row["total_tokens"] = step * 2048
        lines.append(json.dumps(row))
        if step % 30 == 0:
            lines.append(
                json.dumps(
                    {
                        "current_steps": step,
                        "eval_loss": round(0.7 + 2.4 * math.exp(-step / decay), 4),
                    }
                )
            )
    (folder / "trainer_log.jsonl").write_text("\n".join(lines) + "\n")
    now = time.time() - 3600
    return Job(
        id=job_id,
        name=name,
        argv=("tunedeck", "train", "cfg.yaml"),
        kind="train",
        output_dir=str(folder),
        config=yaml.safe_dump(config) if config is not None else None,
        state=JobState.SUCCEEDED,
        created_at=now + at,
        started_at=now + at,
        ended_at=now + at + 600 + at,
        exit_code=0,
        progress=1.0,
        **fields,
    )


@pytest.fixture
def compared(tmp_path, monkeypatch) -> list[str]:
    monkeypatch.chdir(REPO)  # relative paths on screen are the same on every machine
    base = {"model_name_or_path": "models/qwen3-4b", "dataset": "alpaca_en_demo"}
    jobs = [
        _run(
            tmp_path / "a",
            "lr1aaa",
            "qwen-lr1e-4",
            0,
            20,
            {**base, "learning_rate": 1e-4, "output_dir": "saves/lr1e-4"},
        ),
        _run(
            tmp_path / "b",
            "lr4bbb",
            "qwen-lr4e-4",
            10,
            35,
            {**base, "learning_rate": 4e-4, "lora_rank": 16, "output_dir": "saves/lr4e-4"},
        ),
        _run(tmp_path / "c", "cli0cc", "llama3-cli", 20, 50, None, origin="llamafactory"),
    ]
    registry = JobRegistry()
    for job in jobs:
        registry.add(job)
    registry.close()
    return [job.id for job in jobs]


def _compare_shown(keys: tuple[str, ...] = ()):
    async def run_before(pilot) -> None:
        app = pilot.app
        await pilot.press("3")
        await wait_until(pilot, lambda: len(getattr(app.screen, "jobs", {})) == 3, "runs listed")
        app.screen.query_one("#jobs-table").focus()
        await pilot.press("space", "space", "space", "c")
        await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen), "compare shown")
        await wait_until(pilot, lambda: app.screen.comparison is not None, "runs read")
        for key in keys:
            await pilot.press(key)
        await pilot.pause(0.2)

    return run_before


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_compare_snapshot(snap_compare, compared, size):
    app = TunedeckApp(Path("examples/workspace/data"))
    assert snap_compare(app, terminal_size=size, run_before=_compare_shown())


def test_compare_snapshot_eval_loss_by_tokens(snap_compare, compared):
    app = TunedeckApp(Path("examples/workspace/data"))
    assert snap_compare(app, terminal_size=(120, 40), run_before=_compare_shown(("t", "e")))
