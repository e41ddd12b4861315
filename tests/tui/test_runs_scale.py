"""The Runs screen over 10,000 runs: the newest listed, all on `a`, and no redraw when idle."""

from __future__ import annotations

import time

import pytest
from pilot_tools import EXAMPLE_DATA, screen_text, settle, settle_until
from textual.widgets import DataTable

from tunedeck.core.jobs import JobRegistry
from tunedeck.core.jobs.model import Job, JobState
from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.screens.runs import RECENT_RUNS

RUNS = 10_000
ENDINGS = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@pytest.fixture
def many_runs() -> list[str]:
    """A registry of 10,000 ended runs written through JobRegistry; their ids, oldest first."""
    registry = JobRegistry()
    start = time.time() - RUNS
    ids = []
    for number in range(RUNS):
        job = Job(
            id=f"r{number:05d}",
            name=f"sweep-{number:05d}",
            argv=("true",),
            state=ENDINGS[number % 3],
            created_at=start + number,
            exit_code=0,
            progress=1.0,
            last_loss=1.0 / (number + 1),
        )
        ids.append(registry.add(job).id)
    registry.close()
    return ids


class CellCounter:
    """Counts what a DataTable is sent: rows added and cells updated."""

    def __init__(self, table: DataTable) -> None:
        self.added: list[str] = []
        self.updated: list[tuple[str, str]] = []
        add_row, update_cell = table.add_row, table.update_cell

        def counting_add_row(*cells, key=None, **kwargs):
            self.added.append(key)
            return add_row(*cells, key=key, **kwargs)

        def counting_update_cell(row_key, column_key, value, **kwargs):
            self.updated.append((str(row_key), str(column_key)))
            return update_cell(row_key, column_key, value, **kwargs)

        table.add_row, table.update_cell = counting_add_row, counting_update_cell

    def reset(self) -> None:
        self.added.clear()
        self.updated.clear()


async def test_ten_thousand_runs_list_the_newest_and_an_idle_refresh_sends_no_cell(many_runs):
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("3")
        await settle_until(
            pilot, lambda: app.current_mode == "runs" and app.screen.jobs, "the runs listed"
        )
        screen = app.screen
        table = screen.query_one("#jobs-table", DataTable)
        assert table.row_count == RECENT_RUNS
        await settle_until(pilot, lambda: "sweep-09999" in screen_text(app), "the rows drawn")
        shown = screen_text(app)
        assert "sweep-09999" in shown and "sweep-09998" in shown  # the newest first
        assert f"{RECENT_RUNS} of 10,000 runs" in shown
        assert str(table.coordinate_to_cell_key((0, 0)).row_key.value) == many_runs[-1]

        counter = CellCounter(table)
        for _ in range(3):  # refreshes with nothing changed: the table is sent nothing
            screen.refresh_jobs()
            await settle(pilot)
        assert counter.added == [] and counter.updated == []
        assert table.row_count == RECENT_RUNS

        registry = JobRegistry()
        registry.set(many_runs[-1], last_loss=0.25)  # one run changes: one cell is sent
        registry.close()
        screen.refresh_jobs()
        await settle(pilot)
        assert counter.updated == [(many_runs[-1], "loss")] and counter.added == []
        assert "0.2500" in screen_text(app)


async def test_a_lists_every_run_and_slash_filters_them(many_runs):
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("3")
        await settle_until(
            pilot, lambda: app.current_mode == "runs" and app.screen.jobs, "the runs listed"
        )
        screen = app.screen
        table = screen.query_one("#jobs-table", DataTable)
        await pilot.press("a")
        await settle_until(pilot, lambda: table.row_count == RUNS, "every run listed")
        assert "10,000 of 10,000 runs" in screen_text(app)
        counter = CellCounter(table)
        screen.refresh_jobs()
        await settle(pilot)
        assert counter.added == [] and counter.updated == []

        await pilot.press("slash", *"sweep-0042")
        await settle(pilot)
        names = {str(table.get_row_at(i)[1]) for i in range(table.row_count)}
        assert names == {f"sweep-0042{d}" for d in range(10)}
        assert "10 of 10,000 runs matching sweep-0042" in screen_text(app)
        await pilot.press("enter", "a")  # back to the newest only, the filter kept
        await settle_until(pilot, lambda: table.row_count == 0, "none of the newest match")
