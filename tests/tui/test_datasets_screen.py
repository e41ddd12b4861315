"""The Datasets screen on real data folders: entries, validation badges, issues, rows."""

from __future__ import annotations

from pathlib import Path

from pilot_tools import EXAMPLE_DATA, screen_text, wait_until
from textual.widgets import DataTable, Static, TabbedContent

from tunedeck.tui.app import TunedeckApp


def _validated(app) -> bool:
    screen = app.screen
    info = getattr(screen, "info", None)
    return info is not None and len(screen.reports) == len(info.specs)


async def test_example_workspace_lists_every_entry_with_kind_rows_and_badge():
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: _validated(app), "every dataset validated")
        await pilot.pause()
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
        await wait_until(pilot, lambda: _validated(app), "every dataset validated")
        screen = app.screen
        assert screen.reports["broken_rows"].status == "error"
        table = screen.query_one("#datasets-table", DataTable)
        table.move_cursor(row=table.get_row_index("broken_rows"))
        await wait_until(pilot, lambda: screen.selected == "broken_rows", "broken_rows selected")
        await pilot.press("i")
        issues = screen.query_one("#issues-table", DataTable)
        await wait_until(pilot, lambda: issues.row_count > 0, "issues listed")
        assert "broken_rows.json:3" in screen_text(app)
        issues.focus()
        await pilot.press("enter")
        header = screen.query_one("#row-header", Static)
        await wait_until(pilot, lambda: "row 3" in str(header.render()), "row 3 opened")
        assert screen.query_one("#dataset-detail", TabbedContent).active == "tab-rows"
        assert "Say three." in screen_text(app)


async def test_rows_browse_in_normalised_and_raw_form():
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: _validated(app), "every dataset validated")
        screen = app.screen
        header = screen.query_one("#row-header", Static)
        await pilot.press("right_square_bracket")
        await wait_until(pilot, lambda: "row 2" in str(header.render()), "row 2 shown")
        assert "normalised" in str(header.render())
        assert "user" in screen_text(app) and "assistant" in screen_text(app)
        await pilot.press("r")
        await wait_until(pilot, lambda: "raw" in str(header.render()), "raw form shown")
        assert '"instruction":' in screen_text(app)


async def test_missing_dataset_info_is_shown_in_the_app(tmp_path: Path):
    app = TunedeckApp(tmp_path / "nowhere")
    async with app.run_test(size=(80, 24)) as pilot:
        status = app.screen.query_one("#datasets-status", Static)
        await wait_until(
            pilot,
            lambda: "no dataset_info.json" in str(status.render()),
            "the missing file reported",
        )
        assert "Cannot open this data folder" in screen_text(app)
        await pilot.press("3")  # screen keys still work: no hidden text field took the focus
        await wait_until(pilot, lambda: app.current_mode == "runs", "runs screen")


async def test_p_opens_the_preview_of_the_selected_dataset():
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: _validated(app), "every dataset validated")
        table = app.screen.query_one("#datasets-table", DataTable)
        table.move_cursor(row=table.get_row_index("demo_sharegpt"))
        await wait_until(pilot, lambda: app.screen.selected == "demo_sharegpt", "selected")
        await pilot.press("p")
        await wait_until(pilot, lambda: app.current_mode == "preview", "preview shown")
        status = app.screen.query_one("#preview-status", Static)
        await wait_until(pilot, lambda: "sample 1" in str(status.render()), "sample rendered")
        assert "demo_sharegpt" in screen_text(app)
