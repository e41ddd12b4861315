"""The Preview screen: a row rendered by a template, token counts from the helper process."""

from __future__ import annotations

from pilot_tools import EXAMPLE_DATA, TOKENIZER, screen_text, wait_until
from textual.widgets import Input, Select, Static

from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.widgets.histogram import Histogram


def _status(app) -> str:
    return str(app.screen.query_one("#preview-status", Static).render())


async def _open_preview(pilot, app) -> None:
    await pilot.press("2")
    await wait_until(pilot, lambda: app.current_mode == "preview", "preview screen")
    await wait_until(pilot, lambda: "sample 1/" in _status(app), "first sample rendered")


async def test_preview_renders_a_sample_with_the_chosen_template_and_steps_through_rows():
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_preview(pilot, app)
        assert "Human: What colour is the sky on a clear day?" in screen_text(app)
        app.screen.query_one("#preview-template", Select).value = "llama3"
        await wait_until(pilot, lambda: "llama3" in _status(app), "llama3 rendering")
        assert "<|start_header_id|>user<|end_header_id|>" in screen_text(app)
        await pilot.press("right_square_bracket")
        await wait_until(pilot, lambda: "sample 2/32" in _status(app), "second sample")
        await pilot.press("left_square_bracket")
        await wait_until(pilot, lambda: "sample 1/32" in _status(app), "back to the first")
        histogram = app.screen.query_one(Histogram)
        await wait_until(pilot, lambda: len(histogram.values) == 32, "length histogram")
        assert "32 rows" in screen_text(app)


async def test_a_tokenizer_gives_token_counts_and_shows_what_cutoff_len_cut():
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_preview(pilot, app)
        screen = app.screen
        screen.query_one("#preview-cutoff", Input).value = "16"
        tokenizer = screen.query_one("#preview-tokenizer", Input)
        tokenizer.value = str(TOKENIZER)
        tokenizer.focus()
        await pilot.press("enter")
        await wait_until(
            pilot,
            lambda: "tokens / cutoff 16" in _status(app),
            "token count from the helper",
            timeout=120,
        )
        assert "cut 24 tokens" in _status(app)
        assert "truncated by cutoff_len" in screen_text(app)
        histogram = screen.query_one(Histogram)
        await wait_until(
            pilot,
            lambda: histogram.unit == "tokens" and histogram.values,
            "token length histogram",
            timeout=120,
        )
        assert "over cutoff 16" in screen_text(app)
