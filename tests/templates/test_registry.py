"""The template registry: one template per name, quirks as fields, results as plain fields."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from tunedeck.core.datasets.conversation import Conversation, Message, Role
from tunedeck.core.templates import (
    TEMPLATES,
    DuplicateTemplateError,
    TemplateError,
    get_template,
    load_tokenizer,
    render,
    token_lengths,
)
from tunedeck.core.templates.registry import define

from .conftest import TOKENIZER_DIR

PLAIN_TEXT = Conversation(prompt=(Message(Role.USER, "Once upon a time"),), response=())
RANKING = Conversation(
    prompt=(Message(Role.USER, "Pick a colour."),),
    response=(Message(Role.ASSISTANT, "Blue."), Message(Role.ASSISTANT, "I refuse.")),
)


@pytest.fixture()
def scratch_name():
    """A template name free for the test, removed from the registry afterwards."""
    name = "scratch_for_test"
    yield name
    TEMPLATES.pop(name, None)


def test_a_name_defined_twice_is_refused_and_the_first_definition_stays():
    qwen = get_template("qwen")
    with pytest.raises(DuplicateTemplateError, match="'qwen' is already defined"):
        define("qwen", user=("{{content}}",))
    assert get_template("qwen") is qwen
    assert issubclass(DuplicateTemplateError, TemplateError)


def test_pretraining_text_ends_with_the_templates_own_eos_text(scratch_name):
    define(scratch_name, pretrain_eos="<|doc_end|>")
    assert render(PLAIN_TEXT, scratch_name).text == "Once upon a time<|doc_end|>"
    assert render(PLAIN_TEXT, "qwen3").text == "Once upon a time<|im_end|>"
    assert get_template("llama3").pretrain_eos == "<|end_of_text|>"
    assert render(PLAIN_TEXT, "llama3").text == "Once upon a time<|end_of_text|>"


def test_pretraining_eos_text_is_counted_as_it_is_rendered(scratch_name):
    define(scratch_name, pretrain_eos="<|doc_end|>")
    tokenizer = load_tokenizer(TOKENIZER_DIR, scratch_name)
    rendered = render(PLAIN_TEXT, scratch_name, tokenizer=tokenizer)
    assert rendered.text.endswith("<|doc_end|>")
    assert list(token_lengths([PLAIN_TEXT], scratch_name, tokenizer)) == [len(rendered.input_ids)]


def test_a_rendered_ranking_row_holds_only_its_declared_fields():
    tokenizer = load_tokenizer(TOKENIZER_DIR, "qwen")
    rendered = render(RANKING, "qwen", tokenizer=tokenizer)
    declared = {f.name for f in dataclasses.fields(rendered)}
    for side in (rendered, rendered.rejected):
        assert set(vars(side)) == declared
    assert rendered.rejected.text.endswith("I refuse.<|im_end|>\n")


def test_templates_load_transformers_only_for_a_tokenizer():
    code = (
        "import sys\n"
        "from tunedeck.core.templates import render, token_lengths\n"
        "from tunedeck.core.datasets.conversation import Conversation, Message, Role\n"
        "c = Conversation(prompt=(Message(Role.USER, 'hi'),), "
        "response=(Message(Role.ASSISTANT, 'yo'),))\n"
        "render(c, 'llama3')\n"
        "assert 'transformers' not in sys.modules, 'imported without a tokenizer'\n"
        "from tunedeck.core.templates import load_tokenizer\n"
        f"load_tokenizer({str(TOKENIZER_DIR)!r}, 'llama3')\n"
        "assert 'transformers' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
