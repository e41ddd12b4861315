"""The Datasets screen on real data folders: entries, validation badges, issues, rows.

Each step settles the app (its workers and the messages they post) before asserting.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pilot_tools import EXAMPLE_DATA, Posted, screen_text, settle
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Static, TabbedContent

from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.messages import PreviewDataset, ReportsReady, SampleRendered


def _validated(app) -> bool:
    screen = app.screen
    info = getattr(screen, "info", None)
    return info is not None and len(screen.reports) == len(info.specs)


async def test_example_workspace_lists_every_entry_with_kind_rows_and_badge():
    posted = Posted()
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(120, 40), message_hook=posted) as pilot:
        await settle(pilot)
        assert _validated(app)
        reported = {report.name: report for m in posted.of(ReportsReady) for report in m.reports}
        assert set(reported) == set(app.screen.info.specs)
        text = screen_text(app)
        for name, kind in (
            ("demo_alpaca", "sft"),
            ("demo_sharegpt", "sft"),
            ("demo_preference", "ranking"),
            ("demo_kto", "kto"),
            ("demo_pretrain", "pretrain"),
        ):
            line = next(line for line in text.splitlines() if f" {name} " in line)
            assert kind in line and "✓" in line
        assert "5 checked · 0 errors" in text


async def test_enter_on_an_issue_opens_that_row(broken_workspace: Path):
    app = TunedeckApp(broken_workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert screen.reports["broken_rows"].status == "error"
        await _select_dataset(pilot, app, "broken_rows")
        await pilot.press("i")
        await settle(pilot)
        issues = screen.query_one("#issues-table", DataTable)
        assert issues.row_count > 0
        assert "broken_rows.json:3" in screen_text(app)
        issues.focus()
        await pilot.press("enter")
        await settle(pilot)
        header = screen.query_one("#row-header", Static)
        assert "row 3" in str(header.render())
        assert screen.query_one("#dataset-detail", TabbedContent).active == "tab-rows"
        assert "Say three." in screen_text(app)


async def test_rows_browse_in_normalised_and_raw_form():
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        header = screen.query_one("#row-header", Static)
        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert "row 2" in str(header.render())
        assert "normalised" in str(header.render())
        assert "user" in screen_text(app) and "assistant" in screen_text(app)
        await pilot.press("r")
        await settle(pilot)
        assert "raw" in str(header.render())
        assert '"instruction":' in screen_text(app)


async def test_missing_dataset_info_is_shown_in_the_app(tmp_path: Path):
    app = TunedeckApp(tmp_path / "nowhere")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, failures=True)
        status = app.screen.query_one("#datasets-status", Static)
        assert "no dataset_info.json" in str(status.render())
        assert "Cannot open this data folder" in screen_text(app)
        await pilot.press("3")  # screen keys still work: no hidden text field took the focus
        await settle(pilot)
        assert app.current_mode == "runs"


async def test_p_opens_the_preview_of_the_selected_dataset():
    posted = Posted()
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(120, 40), message_hook=posted) as pilot:
        await settle(pilot)
        await _select_dataset(pilot, app, "demo_sharegpt")
        await pilot.press("p")
        await settle(pilot)
        assert app.current_mode == "preview"
        assert posted.last(PreviewDataset).dataset == "demo_sharegpt"
        assert posted.last(SampleRendered).request.dataset == "demo_sharegpt"
        status = app.screen.query_one("#preview-status", Static)
        assert "sample 1" in str(status.render())
        assert "demo_sharegpt" in screen_text(app)


async def _select_dataset(pilot, app, name: str) -> None:
    table = app.screen.query_one("#datasets-table", DataTable)
    table.move_cursor(row=table.get_row_index(name))
    await settle(pilot)
    assert app.screen.selected == name


@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
async def test_a_misspelt_spec_key_is_a_warning_with_a_did_you_mean(flawed_workspace, size):
    app = TunedeckApp(flawed_workspace)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        screen = app.screen
        report = screen.reports["typo_entry"]
        assert report.status == "warning" and report.issue_count == 1
        assert "1 warnings" in str(screen.query_one("#datasets-status", Static).render())
        await _select_dataset(pilot, app, "typo_entry")
        await pilot.press("i")
        await settle(pilot)
        issues = screen.query_one("#issues-table", DataTable)
        assert issues.row_count == 1
        assert "did you mean 'columns'?" in _issue_detail(app)


@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
async def test_an_unreadable_row_shows_its_whole_message_severity_and_text(flawed_workspace, size):
    app = TunedeckApp(flawed_workspace)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await _select_dataset(pilot, app, "bad_lines")
        await pilot.press("i")
        await settle(pilot)
        screen = app.screen
        issues = screen.query_one("#issues-table", DataTable)
        assert str(issues.get_cell_at(Coordinate(0, 0))) == "error"
        detail = _issue_detail(app)
        assert "invalid JSON on line 3: unexpected character, expected a JSON value" in detail
        assert "error" in detail and "row_unreadable" in detail
        issues.focus()
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
        row = " ".join(str(screen.query_one("#row-text", Static).render()).split())
        assert '"output": unquoted words here}' in row
        assert "null" not in row


def _issue_detail(app) -> str:
    """The wrapped text under the issues table, as one line (wrapping undone)."""
    return " ".join(str(app.screen.query_one("#issue-detail", Static).render()).split())
