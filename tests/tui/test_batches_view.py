"""The Batches view: a run config's first training batches, from the real sidecar, on the
example workspace's tiny model; Enter opens a row in Preview."""

from __future__ import annotations

from pathlib import Path

import pytest
from pilot_tools import EXAMPLE_DATA, REPO, settle, settle_until, wait_until
from textual.widgets import DataTable, Input, Static

from tunedeck.core.config import load_config
from tunedeck.core.runners.batch_sources import example_sources
from tunedeck.core.runners.batches import preview_batches
from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.screens import batches as batches_view
from tunedeck.tui.screens.batches import BatchesScreen

CONFIG = "examples/workspace/configs/tiny_lora_sft.yaml"
SIZES = [(80, 24), (120, 40)]


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    """The example configs name their model and data relative to the repository."""
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(batches_view, "_remembered", [])


def _status(app) -> str:
    return str(app.screen.query_one("#batches-status", Static).render())


def _cells(app) -> list[list[str]]:
    table = app.screen.query_one("#batches-table", DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


async def _open_batches(pilot, app, config: str) -> BatchesScreen:
    """From Preview: b, then the config typed into the view's field and Enter."""
    await pilot.press("2")
    await wait_until(pilot, lambda: app.current_mode == "preview", "preview")
    await settle(pilot)
    app.screen.set_focus(None)
    await pilot.press("b")
    await wait_until(pilot, lambda: isinstance(app.screen, BatchesScreen), "batches view")
    screen = app.screen
    assert screen.focused is screen.query_one("#batches-config", Input)
    await pilot.press(*config, "enter")
    return screen


async def test_b_on_preview_shows_the_engines_batches_and_enter_opens_that_row():
    expected = preview_batches(load_config(CONFIG), 4)
    sources = example_sources(load_config(CONFIG))
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open_batches(pilot, app, CONFIG)
        await settle_until(pilot, lambda: screen.preview is not None, "batches shown")
        shown = _cells(app)
        assert len(shown) == sum(len(b.rows) for b in expected) == 16
        rows = [row for batch in expected for row in batch.rows]
        for cells, row in zip(shown, rows, strict=True):
            source = sources[row.example]
            assert cells[1:] == [
                source.dataset,
                str(source.row + 1),
                str(row.tokens),
                str(row.trained),
                str(row.padded - row.tokens),
            ]
        assert shown[0][0] == f"1  4×{expected[0].rows[0].padded}"
        assert shown[4][0] == f"2  4×{expected[1].rows[0].padded}" and shown[1][0] == ""
        assert "4 batches · template default" in _status(app) and "cutoff 256" in _status(app)

        await pilot.press("down", "down", "enter")
        wanted = sources[expected[0].rows[2].example]
        await wait_until(pilot, lambda: app.current_mode == "preview", "back in preview")
        preview = app.screen
        status = preview.query_one("#preview-status", Static)
        await wait_until(
            pilot, lambda: "tokens / cutoff 256" in str(status.render()), "the row", timeout=120
        )
        assert preview.index == wanted.row
        assert f"sample {wanted.row + 1}/32" in str(status.render())
        assert preview.query_one("#preview-tokenizer", Input).value == str(
            load_config(CONFIG).model_name_or_path
        )
        # the row Preview renders has the tokens the engine's batch gave it
        assert f"{expected[0].rows[2].tokens} tokens / cutoff" in str(status.render())


async def test_a_config_that_is_not_there_is_said_in_place_and_the_view_stays():
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open_batches(pilot, app, "no/such/run.yaml")
        await settle_until(pilot, lambda: screen.error is not None, "error shown", failures=True)
        assert app.screen is screen
        assert "no/such/run.yaml: config file not found" in _status(app)
        assert _cells(app) == []
        await pilot.press("enter")  # Enter again only retries: still said, no crash
        await settle_until(pilot, lambda: screen.error is not None, "error again", failures=True)
        assert "config file not found" in _status(app)


async def test_a_dpo_config_is_refused_in_place_with_why(tmp_path: Path):
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open_batches(pilot, app, "examples/workspace/configs/tiny_lora_dpo.yaml")
        await settle_until(pilot, lambda: screen.error is not None, "error shown", failures=True)
        assert "batches are shown for sft and pt runs, not dpo" in _status(app)


async def test_ctrl_b_on_launch_shows_the_forms_base_yaml_and_preview_offers_it_next():
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        await wait_until(pilot, lambda: app.current_mode == "launch", "launch")
        await settle(pilot)
        field = app.screen.query_one("#train-config", Input)
        field.value = CONFIG
        app.screen.set_focus(None)
        await pilot.press("ctrl+b")
        await wait_until(pilot, lambda: isinstance(app.screen, BatchesScreen), "batches view")
        screen = app.screen
        assert screen.query_one("#batches-config", Input).value == CONFIG
        await settle_until(pilot, lambda: screen.preview is not None, "batches shown")
        assert len(_cells(app)) == 16
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen.MODE == "launch", "launch again")

        await pilot.press("2")
        await wait_until(pilot, lambda: app.current_mode == "preview", "preview")
        app.screen.set_focus(None)
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, BatchesScreen), "batches view")
        assert app.screen.query_one("#batches-config", Input).value == CONFIG


def _batches_ready(config: str):
    async def run_before(pilot) -> None:
        app = pilot.app
        await pilot.press("2")
        await wait_until(pilot, lambda: app.current_mode == "preview", "preview")
        batches_view.remember_config(config)
        app.screen.set_focus(None)
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, BatchesScreen), "batches view")
        screen = app.screen
        await wait_until(pilot, lambda: screen.preview is not None, "batches", timeout=120)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause(0.1)

    return run_before


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_batches_view_snapshot(snap_compare, size):
    app = TunedeckApp(Path("examples/workspace/data"))
    assert snap_compare(app, terminal_size=size, run_before=_batches_ready(CONFIG))
