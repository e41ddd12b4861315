"""The Preview screen: a row rendered by a template, token counts from the sidecar process.

Each step settles the app (its workers and the messages they post) before asserting.
"""

from __future__ import annotations

import pytest
from pilot_tools import EXAMPLE_DATA, TOKENIZER, Posted, screen_text, settle
from rich.text import Text
from textual.widgets import Input, Select, Static

from tunedeck.core.datasets import get_row, load_dataset_info
from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.messages import LengthsMeasured, SampleRendered
from tunedeck.tui.widgets.histogram import Histogram


def _status(app) -> str:
    return str(app.screen.query_one("#preview-status", Static).render())


def _body(app) -> Text:
    content = app.screen.query_one("#preview-text", Static).content
    assert isinstance(content, Text)
    return content


def _trained_text(body: Text) -> str:
    """The characters drawn as trained (underlined), up to the list of what was cut."""
    end = body.plain.find("truncated by cutoff_len")
    end = len(body.plain) if end < 0 else end
    return "".join(
        body.plain[span.start : min(span.end, end)]
        for span in body.spans
        if span.start < end and "underline" in str(span.style)
    )


async def _open_preview(pilot, app) -> None:
    await pilot.press("2")
    await settle(pilot)
    assert app.current_mode == "preview"
    assert "sample 1/" in _status(app)


async def _use_tokenizer(pilot, app, cutoff: str) -> None:
    screen = app.screen
    screen.query_one("#preview-cutoff", Input).value = cutoff
    tokenizer = screen.query_one("#preview-tokenizer", Input)
    tokenizer.value = str(TOKENIZER)
    tokenizer.focus()
    await pilot.press("enter")
    await settle(pilot)


async def test_preview_renders_a_sample_with_the_chosen_template_and_steps_through_rows():
    posted = Posted()
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(120, 40), message_hook=posted) as pilot:
        await _open_preview(pilot, app)
        assert "Human: What colour is the sky on a clear day?" in screen_text(app)
        app.screen.query_one("#preview-template", Select).value = "llama3"
        await settle(pilot)
        assert "llama3" in _status(app)
        assert "<|start_header_id|>user<|end_header_id|>" in screen_text(app)
        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert "sample 2/32" in _status(app)
        await pilot.press("left_square_bracket")
        await settle(pilot)
        assert "sample 1/32" in _status(app)
        histogram = app.screen.query_one(Histogram)
        assert len(histogram.values) == 32
        assert posted.last(LengthsMeasured).unit == "chars"
        assert "32 rows" in screen_text(app)


async def test_a_tokenizer_gives_token_counts_and_shows_what_cutoff_len_cut():
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_preview(pilot, app)
        await _use_tokenizer(pilot, app, "16")
        assert "tokens / cutoff 16" in _status(app)
        assert "cut 24 tokens" in _status(app)
        assert "truncated by cutoff_len" in screen_text(app)
        histogram = app.screen.query_one(Histogram)
        assert histogram.unit == "tokens" and histogram.values
        assert "over cutoff 16" in screen_text(app)


@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
async def test_tokens_cut_by_cutoff_len_are_not_drawn_as_trained(size):
    posted = Posted()
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=size, message_hook=posted) as pilot:
        await _open_preview(pilot, app)
        await _use_tokenizer(pilot, app, "12")
        rendered = posted.last(SampleRendered).sample.rendered
        parts = {part["part"]: part["removed_text"] for part in rendered.truncated.parts}
        assert set(parts) == {"prompt", "response"}, "cutoff 12 cuts both sides of sample 1"
        body = _body(app)
        main = body.plain[: body.plain.index("truncated by cutoff_len")]
        trained = _trained_text(body)
        assert trained.strip(), "what is kept of the answer is drawn as trained"
        assert parts["response"].strip() not in trained
        for removed in parts.values():
            assert removed.strip() not in main
            assert removed in body.plain[len(main) :]  # listed as cut instead


async def test_a_tokenizer_shows_the_token_ids_and_which_are_trained():
    posted = Posted()
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(120, 40), message_hook=posted) as pilot:
        await _open_preview(pilot, app)
        await _use_tokenizer(pilot, app, "2048")
        rendered = posted.last(SampleRendered).sample.rendered
        body = _body(app)
        ids = rendered.input_ids
        assert f"input_ids ({len(ids):,})" in body.plain
        assert " ".join(map(str, ids)) in body.plain
        assert "add a tokenizer" not in _status(app)


@pytest.mark.parametrize("tokenizer", [False, True])
async def test_a_ranking_row_shows_the_rejected_answer_too(tokenizer):
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(80, 24)) as pilot:
        await _open_preview(pilot, app)
        app.screen.query_one("#preview-dataset", Select).value = "demo_preference"
        await settle(pilot)
        if tokenizer:
            await _use_tokenizer(pilot, app, "2048")
        assert "ranking" in _status(app)
        info = load_dataset_info(EXAMPLE_DATA)
        chosen, rejected = get_row(
            info.get("demo_preference"), info.data_dir, 0
        ).conversation.response
        plain = _body(app).plain
        assert "rejected" in plain
        assert chosen.content in plain and rejected.content in plain
        assert plain.index(chosen.content) < plain.index(rejected.content)
