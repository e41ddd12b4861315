"""One converter class per formatting, found in a table by the entry's formatting name."""

from __future__ import annotations

import pytest

from tunedeck.core.datasets import (
    CONVERTERS,
    AlpacaConverter,
    OpenaiConverter,
    SharegptConverter,
    converter_for,
    spec_from_entry,
)
from tunedeck.core.datasets.convert import Converter, register


@pytest.mark.parametrize(
    ("formatting", "cls"),
    [("alpaca", AlpacaConverter), ("sharegpt", SharegptConverter), ("openai", OpenaiConverter)],
)
def test_each_formatting_has_its_converter(formatting, cls):
    spec = spec_from_entry("d", {"file_name": "d.json", "formatting": formatting})
    assert CONVERTERS[formatting] is cls
    assert type(converter_for(spec)) is cls


def test_a_formatting_is_registered_once():
    with pytest.raises(ValueError, match="already registered"):
        register("alpaca")(type("Again", (Converter,), {}))
    assert CONVERTERS["alpaca"] is AlpacaConverter


def test_openai_tool_calls_and_results_become_function_and_observation_turns():
    spec = spec_from_entry("d", {"file_name": "d.json", "formatting": "openai"})
    row = {
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "w"}}]},
            {"role": "tool", "content": "sun"},
            {"role": "tool", "content": "wind"},
            {"role": "assistant", "content": "sunny and windy"},
        ]
    }
    conversation, problems = converter_for(spec).convert(row)
    assert problems == []
    roles = [message.role.value for message in conversation.prompt + conversation.response]
    assert roles == ["user", "function", "observation", "assistant"]
    assert conversation.prompt[1].content == '[{"name": "w"}]'
    assert conversation.prompt[2].content == "sun\n</tool_response>\n<tool_response>\nwind"


def test_sharegpt_without_openai_rules_refuses_a_null_content():
    spec = spec_from_entry("d", {"file_name": "d.json", "formatting": "sharegpt"})
    row = {"conversations": [{"from": "human", "value": None}, {"from": "gpt", "value": "a"}]}
    problems = converter_for(spec).problems(row)
    assert [(p.code, p.column) for p in problems] == [("wrong_type", "conversations[0]")]
