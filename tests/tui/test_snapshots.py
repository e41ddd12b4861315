"""What each screen looks like at 80x24 and 120x40 (pytest-textual-snapshot).

Regenerate after a deliberate change: pytest tests/tui/test_snapshots.py --snapshot-update
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pilot_tools import REPO, wait_until

from tunedeck.tui.app import TunedeckApp

SIZES = [(80, 24), (120, 40)]


def _datasets_ready(app) -> bool:
    screen = app.screen
    info = getattr(screen, "info", None)
    return (
        info is not None
        and len(screen.reports) == len(info.specs)
        and screen.selected in screen.stats
        and not screen.query_one("#validate-progress").display
    )


async def _settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.1)


def _ready(mode: str):
    async def run_before(pilot) -> None:
        app = pilot.app
        await wait_until(pilot, lambda: _datasets_ready(app), "datasets validated")
        if mode != "datasets":
            await pilot.press(
                str(["datasets", "preview", "runs", "launch", "hosts"].index(mode) + 1)
            )
            await wait_until(pilot, lambda: app.current_mode == mode, mode)
        if mode == "preview":
            from tunedeck.tui.widgets.histogram import Histogram

            histogram = app.screen.query_one(Histogram)
            await wait_until(pilot, lambda: bool(histogram.values), "histogram")
        if mode == "launch":
            await wait_until(pilot, lambda: app.screen.check is not None, "config checked")
        if mode == "hosts":
            await wait_until(
                pilot, lambda: app.screen.status.get("local") is not None, "local host probed"
            )
        if mode == "runs":
            await wait_until(
                pilot,
                lambda: "no runs yet" in str(app.screen.query_one("#job-detail").render()),
                "empty run list",
            )
        await _settle(pilot)

    return run_before


@pytest.fixture
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)  # relative paths on screen are the same on every machine


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("mode", ["datasets", "preview", "runs", "launch", "hosts"])
def test_screen_snapshot(snap_compare, in_repo, mode, size):
    app = TunedeckApp(Path("examples/workspace/data"))
    assert snap_compare(app, terminal_size=size, run_before=_ready(mode))
