"""Every template rendered on one fixed conversation, pinned by strings written from the
format definitions; segments say where text comes from and what is trained on."""

from __future__ import annotations

import json

import pytest

from tunedeck.core.datasets.conversation import Conversation, Message, Role
from tunedeck.core.errors import TemplateError
from tunedeck.core.templates import TEMPLATES, get_template, load_tokenizer, render

from .conftest import GOLDEN_DATE, TOKENIZER_DIR

CONVERSATION = Conversation(
    prompt=(
        Message(Role.USER, "Hi"),
        Message(Role.ASSISTANT, "Hello!"),
        Message(Role.USER, "2+2?"),
    ),
    response=(Message(Role.ASSISTANT, "4"),),
    system="Be brief.",
)

IM = (
    "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
    "<|im_start|>assistant\n4<|im_end|>\n"
)
THINK = "<think>\n\n</think>\n\n"
GEMMA = (
    "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
    "Hello!<end_of_turn>\n<start_of_turn>user\n2+2?<end_of_turn>\n<start_of_turn>model\n"
    "4<end_of_turn>\n"
)
EXPECTED = {
    "default": "System: Be brief.<eos>\nHuman: Hi<eos>\nAssistant:Hello!<eos>\n"
    "Human: 2+2?<eos>\nAssistant:4<eos>\n",
    "empty": "Be brief.HiHello!2+2?4",
    "alpaca": "Be brief.### Instruction:\nHi\n\n### Response:\nHello!<eos>\n\n"
    "### Instruction:\n2+2?\n\n### Response:\n4<eos>\n\n",
    "vicuna": "Be brief.USER: Hi ASSISTANT:Hello!<eos>USER: 2+2? ASSISTANT:4<eos>",
    "llama2": "<bos>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]Hello!<eos>"
    "<bos>[INST] 2+2? [/INST]4<eos>",
    "llama3": "<bos><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|>",
    "llama4": "<bos><|header_start|>system<|header_end|>\n\nBe brief.<|eot|>"
    "<|header_start|>user<|header_end|>\n\nHi<|eot|>"
    "<|header_start|>assistant<|header_end|>\n\nHello!<|eot|>"
    "<|header_start|>user<|header_end|>\n\n2+2?<|eot|>"
    "<|header_start|>assistant<|header_end|>\n\n4<|eot|>",
    "mistral": "<bos>[INST] Be brief.\n\nHi[/INST] Hello!<eos>[INST] 2+2?[/INST] 4<eos>",
    "qwen": IM,
    "qwen3": IM.replace("assistant\nHello", "assistant\n" + THINK + "Hello").replace(
        "assistant\n4", "assistant\n" + THINK + "4"
    ),
    "qwen3_nothink": IM,
    "chatml": IM,
    "yi": IM,
    "smollm2": IM,
    "intern2": "<bos>" + IM,
    "gemma": GEMMA,
    "gemma2": GEMMA + "<eos>",
    "gemma3": GEMMA,
    "phi": "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n"
    "<|user|>\n2+2?<|end|>\n<|assistant|>\n4<|end|>\n",
    "phi4": "<|im_start|>system<|im_sep|>Be brief.<|im_end|><|im_start|>user<|im_sep|>Hi"
    "<|im_end|><|im_start|>assistant<|im_sep|>Hello!<|im_end|><|im_start|>user<|im_sep|>"
    "2+2?<|im_end|><|im_start|>assistant<|im_sep|>4<|im_end|>",
    "deepseek": "<bos>Be brief.\n\nUser: Hi\n\nAssistant:Hello!<eos>User: 2+2?\n\nAssistant:4<eos>",
    "deepseek3": "<bos>Be brief.<｜User｜>Hi<｜Assistant｜>Hello!<eos><｜User｜>2+2?<｜Assistant｜>4<eos>",
    "deepseekr1": "<bos>Be brief.<｜User｜>Hi<｜Assistant｜>" + THINK + "Hello!<eos>"
    "<｜User｜>2+2?<｜Assistant｜>" + THINK + "4<eos>",
    "glm4": "[gMASK]<sop><|system|>\nBe brief.<|user|>\nHi<|assistant|>\nHello!<|user|>\n"
    "2+2?<|assistant|>\n4<eos>",
    "zephyr": "<|system|>\nBe brief.<eos><|user|>\nHi<eos><|assistant|>\nHello!<eos>"
    "<|user|>\n2+2?<eos><|assistant|>\n4<eos>",
    "cohere": "<bos><|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>Be brief.<|END_OF_TURN_TOKEN|>"
    "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>Hi<|END_OF_TURN_TOKEN|>"
    "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>Hello!<eos>"
    "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>2+2?<|END_OF_TURN_TOKEN|>"
    "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>4<eos>",
    "olmo": "<eos>Be brief.<|user|>\nHi<|assistant|>\nHello!<eos><|user|>\n2+2?<|assistant|>\n4<eos>",
    "baichuan2": "Be brief.<reserved_106>Hi<reserved_107>Hello!<reserved_106>2+2?<reserved_107>4<eos>",
    "falcon": "Be brief.User: Hi\nFalcon:Hello!\nUser: 2+2?\nFalcon:4\n<eos>",
    "openchat": "<bos>Be brief.GPT4 Correct User: Hi<eos>GPT4 Correct Assistant:Hello!<eos>"
    "GPT4 Correct User: 2+2?<eos>GPT4 Correct Assistant:4<eos>",
    "solar": "### System:\nBe brief.\n\n### User:\nHi\n\n### Assistant:\nHello!"
    "### User:\n2+2?\n\n### Assistant:\n4<eos>",
    "starchat": "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>Hello!<|end|>\n"
    "<|user|>\n2+2?<|end|>\n<|assistant|>4<|end|>\n",
}


def test_pinned_renderings_name_registered_templates():
    # the first templates are pinned here by hand; every template is pinned by the goldens
    assert set(EXPECTED) <= set(TEMPLATES) - {"hf"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_template_renders_fixed_conversation_exactly(name):
    # without a tokenizer bos/eos show as <bos>/<eos>, or as the stop word that replaces eos
    eos = get_template(name).stop_words[0] if get_template(name).replace_eos else "<eos>"
    assert render(CONVERSATION, name).text == EXPECTED[name].replace("<eos>", eos)


def test_only_the_answers_are_trainable_and_data_is_told_from_template_text():
    segments = render(CONVERSATION, "qwen").segments
    trained = [s.text for s in segments if s.trainable]
    assert trained == ["Hello!", "<|im_end|>\n", "4", "<|im_end|>\n"]
    data = [s.text for s in segments if s.source == "data"]
    assert data == ["Be brief.", "Hi", "Hello!", "2+2?", "4"]
    assert [s.role for s in segments if s.source == "data"] == [
        "system", "user", "assistant", "user", "assistant"
    ]  # fmt: skip


def test_mask_history_trains_on_the_last_answer_only():
    segments = render(CONVERSATION, "llama3", mask_history=True).segments
    assert "".join(s.text for s in segments if s.trainable) == "4<|eot_id|>"


def test_train_on_prompt_trains_on_everything():
    assert all(s.trainable for s in render(CONVERSATION, "qwen", train_on_prompt=True).segments)


def test_default_system_is_template_text():
    conv = Conversation(
        prompt=(Message(Role.USER, "Hi"),), response=(Message(Role.ASSISTANT, "Yo"),)
    )
    system = [s for s in render(conv, "qwen").segments if "You are Qwen" in s.text]
    assert len(system) == 1 and system[0].source == "template" and not system[0].trainable


def test_thinking_off_puts_an_empty_thought_in_the_masked_prompt():
    segments = render(CONVERSATION, "qwen3", enable_thinking=False).segments
    thoughts = [s for s in segments if s.text == THINK]
    assert thoughts and not any(s.trainable for s in thoughts)


def test_existing_thoughts_are_kept_on_the_last_turn_and_dropped_from_history():
    conv = Conversation(
        prompt=(
            Message(Role.USER, "a"),
            Message(Role.ASSISTANT, "<think>\nold\n</think>\n\nA"),
            Message(Role.USER, "b"),
        ),
        response=(Message(Role.ASSISTANT, "<think>\nnew\n</think>\n\nB"),),
    )
    text = render(conv, "qwen3", mask_history=True).text
    assert "old" not in text and "<think>\nnew\n</think>\n\nB" in text


TOOLS = json.dumps(
    [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": "City name"}},
                "required": ["city"],
            },
        }
    ]
)
TOOL_CONVERSATION = Conversation(
    prompt=(
        Message(Role.USER, "Weather in Paris?"),
        Message(Role.FUNCTION, '{"name": "get_weather", "arguments": {"city": "Paris"}}'),
        Message(Role.OBSERVATION, '{"temp": 21}'),
    ),
    response=(Message(Role.ASSISTANT, "21 degrees."),),
    tools=TOOLS,
)


def test_qwen_tools_and_calls_use_its_xml_tags():
    text = render(TOOL_CONVERSATION, "qwen").text
    assert '<tools>\n{"type": "function", "function": {"name": "get_weather"' in text
    assert (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' in text
    )
    assert '<tool_response>\n{"temp": 21}\n</tool_response>' in text


def test_default_tool_format_lists_arguments_and_actions():
    text = render(TOOL_CONVERSATION, "default").text
    assert "> Tool Name: get_weather\nTool Description: Weather for a city\n" in text
    assert "  - city (string, required): City name\n" in text
    assert 'Action: get_weather\nAction Input: {"city": "Paris"}' in text


def test_glm4_and_llama3_tool_formats():
    glm = render(TOOL_CONVERSATION, "glm4").text
    assert '# 可用工具\n\n## get_weather\n\n{\n    "name": "get_weather"' in glm
    assert '<|assistant|>get_weather\n{"city": "Paris"}<|observation|>' in glm
    llama = render(TOOL_CONVERSATION, "llama3", today=GOLDEN_DATE).text
    assert "Today Date: 15 Jan 2025\n\n" in llama
    assert '{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>' in llama
    assert '<|start_header_id|>ipython<|end_header_id|>\n\n{"temp": 21}' in llama


def test_ranking_rows_render_chosen_with_rejected_alongside():
    conv = Conversation(
        prompt=(Message(Role.USER, "Q"),),
        response=(Message(Role.ASSISTANT, "good"), Message(Role.ASSISTANT, "bad")),
    )
    rendered = render(conv, "chatml")
    assert rendered.kind == "ranking" and "good" in rendered.text
    assert "bad" in rendered.rejected.text and "good" not in rendered.rejected.text


def test_kto_rows_render_the_kept_answer():
    conv = Conversation(
        prompt=(Message(Role.USER, "Q"),),
        response=(Message(Role.ASSISTANT, ""), Message(Role.ASSISTANT, "meh")),
        kto_tag=False,
    )
    rendered = render(conv, "qwen")
    assert rendered.kind == "kto" and rendered.text.endswith("meh<|im_end|>\n")


def test_unknown_template_suggests_close_names():
    with pytest.raises(TemplateError) as info:
        get_template("qwen33")
    assert "qwen3" in (info.value.hint or "")


def test_bad_function_json_is_a_template_error():
    conv = Conversation(
        prompt=(
            Message(Role.USER, "x"),
            Message(Role.FUNCTION, "not json"),
            Message(Role.OBSERVATION, "y"),
        ),
        response=(Message(Role.ASSISTANT, "z"),),
    )
    with pytest.raises(TemplateError):
        render(conv, "qwen")


def test_truncation_reports_what_cutoff_removed():
    tokenizer = load_tokenizer(TOKENIZER_DIR)
    rendered = render(CONVERSATION, "qwen", tokenizer=tokenizer, cutoff_len=20)
    assert len(rendered.input_ids) == 20 == len(rendered.labels)
    cut = rendered.truncated
    assert cut.kept_tokens == 20 and cut.original_tokens > 20
    assert sum(p["removed_tokens"] for p in cut.parts) == cut.original_tokens - 20
    assert render(CONVERSATION, "qwen", tokenizer=tokenizer).truncated is None


def test_tokenizer_fix_ups_replace_eos_and_add_stop_words():
    tokenizer = load_tokenizer(TOKENIZER_DIR, "llama3")
    assert tokenizer.eos_token == "<|eot_id|>"
    assert tokenizer.convert_tokens_to_ids("<|eom_id|>") is not None
    rendered = render(CONVERSATION, "llama3", tokenizer=tokenizer)
    assert rendered.input_ids[-1] == tokenizer.eos_token_id


def test_hf_template_uses_the_tokenizers_chat_template():
    tokenizer = load_tokenizer(TOKENIZER_DIR)
    text = render(CONVERSATION, None, tokenizer=tokenizer).text
    assert text == (
        "<s>system\nBe brief.</s>\n<s>user\nHi</s>\n<s>assistant\nHello!</s>\n"
        "<s>user\n2+2?</s>\n<s>assistant\n4</s>\n"
    )
