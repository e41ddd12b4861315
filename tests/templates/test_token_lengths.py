"""`token_lengths` (what `data lengths` counts) equals the length `render` gives before cutoff."""

from __future__ import annotations

import pytest

from tunedeck.core.datasets import iter_conversations, load_dataset_info
from tunedeck.core.templates import NO_CUTOFF, load_tokenizer, render, text_lengths, token_lengths

from .conftest import TOKENIZER_DIR

DATASETS = [
    "alpaca_en_demo",
    "identity",
    "glaive_toolcall_en_demo",
    "dpo_en_demo",
    "kto_en_demo",
    "c4_demo",
]
TEMPLATES = ["qwen", "llama3", "qwen3", "deepseekr1", "gemma2", "mistral", "default", "glm4", "hf"]
ROWS = 40  # per dataset: enough to cover tools, multi-turn, ranking, KTO and plain-text rows


@pytest.fixture(scope="module")
def demo_rows(shared_data):
    info = load_dataset_info(shared_data)
    rows = []
    for name in DATASETS:
        for n, conv in enumerate(iter_conversations(info.get(name), info.data_dir)):
            if n >= ROWS:
                break
            rows.append(conv)
    return rows


def _rendered_lengths(rows, template, tokenizer, **options):
    return [
        len(render(conv, template, tokenizer=tokenizer, cutoff_len=NO_CUTOFF, **options).input_ids)
        for conv in rows
    ]


@pytest.mark.parametrize("template", TEMPLATES)
def test_lengths_equal_rendered_ids_before_cutoff(template, demo_rows):
    tokenizer = load_tokenizer(TOKENIZER_DIR, template)
    expected = _rendered_lengths(demo_rows, template, tokenizer)
    counted = list(token_lengths(demo_rows, template, tokenizer, batch_size=7))
    assert counted == expected


def test_lengths_equal_rendered_ids_with_thinking_off(demo_rows):
    tokenizer = load_tokenizer(TOKENIZER_DIR, "qwen3")
    expected = _rendered_lengths(demo_rows, "qwen3", tokenizer, enable_thinking=False)
    counted = list(token_lengths(demo_rows, "qwen3", tokenizer, enable_thinking=False))
    assert counted == expected


@pytest.mark.parametrize("template", ["qwen3", "deepseekr1", "qwen"])
def test_lengths_equal_rendered_ids_with_history_masked(template, demo_rows):
    tokenizer = load_tokenizer(TOKENIZER_DIR, template)
    expected = _rendered_lengths(demo_rows, template, tokenizer, mask_history=True)
    counted = list(token_lengths(demo_rows, template, tokenizer, mask_history=True))
    assert counted == expected


def test_text_lengths_are_the_rendered_characters_before_cutoff(demo_rows):
    expected = [len(render(conv, "llama3", cutoff_len=NO_CUTOFF).text) for conv in demo_rows]
    assert list(text_lengths(iter(demo_rows), "llama3")) == expected
    masked = [len(render(c, "qwen3", mask_history=True).text) for c in demo_rows]
    assert list(text_lengths(demo_rows, "qwen3", mask_history=True)) == masked
    assert masked != list(text_lengths(demo_rows, "qwen3"))


def test_lengths_are_the_same_through_a_tokenizer_that_overrides_its_call(demo_rows):
    tokenizer = load_tokenizer(TOKENIZER_DIR, "llama3")
    plain = list(token_lengths(demo_rows, "llama3", tokenizer))

    class Wrapped(type(tokenizer)):
        def __call__(self, *args, **kwargs):
            return super().__call__(*args, **kwargs)

    tokenizer.__class__ = Wrapped
    assert list(token_lengths(demo_rows, "llama3", tokenizer, batch_size=5)) == plain


def test_lengths_stream_rows_in_order_and_stop_early(demo_rows):
    tokenizer = load_tokenizer(TOKENIZER_DIR, "qwen")
    expected = _rendered_lengths(demo_rows[:3], "qwen", tokenizer)
    stream = token_lengths(iter(demo_rows), "qwen", tokenizer, batch_size=2)
    assert [next(stream) for _ in range(3)] == expected
    stream.close()
