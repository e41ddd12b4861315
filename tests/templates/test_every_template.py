"""Every template name LLaMA-Factory 0.9.5 registers works in tunedeck by that name:
`data preview -t NAME` renders a demo row with trained tokens, and the multimodal ones say
what becomes of a row's media."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tunedeck.core.templates import TEMPLATES, get_template, load_tokenizer, media_note
from tunedeck.tui.cli import app

from .conftest import REFERENCE, TOKENIZER_DIR

NAMES = REFERENCE["templates"]
# tokens chatglm3 and yuan add by id; the fixture tokenizer's vocabulary lacks them
TEMPLATE_TOKENS = ["<|user|>", "<|assistant|>", "<|system|>", "<|observation|>", "[gMASK]", "sop"]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    """The fixture tokenizer with the vocabulary tokens some templates add by id."""
    folder = tmp_path_factory.mktemp("tokenizer")
    tokenizer = load_tokenizer(TOKENIZER_DIR)
    tokenizer.add_special_tokens({"additional_special_tokens": [*TEMPLATE_TOKENS, "<sep>"]})
    tokenizer.save_pretrained(str(folder))
    return folder


def _preview(*args: str) -> dict:
    result = CliRunner().invoke(app, ["data", "preview", *args, "--json"])
    assert result.exit_code == 0, (args, result.output, result.exception)
    return json.loads(result.stdout)


def test_the_reference_list_is_whole_and_every_name_is_registered():
    assert len(NAMES) == len(set(NAMES)) == 121
    assert set(NAMES) - set(TEMPLATES) == set()


@pytest.mark.parametrize("name", NAMES)
def test_preview_renders_a_tool_call_row_with_trained_tokens(name, shared_data, tokenizer_dir):
    doc = _preview(
        "glaive_toolcall_en_demo", "--dir", str(shared_data), "-t", name,
        "--tokenizer", str(tokenizer_dir),
    )  # fmt: skip
    assert doc["template"] == name
    assert any(label != -100 for label in doc["labels"]), "nothing is trained on"
    assert len(doc["input_ids"]) == len(doc["labels"]) > 0
    trained = "".join(s["text"] for s in doc["segments"] if s["trainable"])
    assert trained.strip(), "no trained text"


def test_a_multimodal_template_says_its_row_media_expand_at_training_time(shared_data):
    doc = _preview("mllm_demo", "--dir", str(shared_data), "-t", "qwen3_vl")
    notes = [w["message"] for w in doc["warnings"] if w["key"] == "media"]
    assert len(notes) == 1
    assert "qwen3_vl" in notes[0] and "<image> -> <|image_pad|>" in notes[0]
    assert "processor" in notes[0]
    assert "<image>" in "".join(s["text"] for s in doc["segments"])


def test_a_text_template_says_it_takes_no_media(shared_data):
    doc = _preview("mllm_demo", "--dir", str(shared_data), "-t", "qwen3")
    notes = [w["message"] for w in doc["warnings"] if w["key"] == "media"]
    assert notes == ["template 'qwen3' takes no image input; LLaMA-Factory refuses this row"]


def test_a_text_only_row_has_no_media_note(shared_data):
    doc = _preview("identity", "--dir", str(shared_data), "-t", "qwen3_vl")
    assert [w for w in doc["warnings"] if w["key"] == "media"] == []


def test_every_multimodal_reference_template_carries_its_media_note():
    for name, media in REFERENCE["media"].items():
        template = get_template(name)
        kinds = tuple(k for k in ("image", "video", "audio") if k in media)
        assert template.media.kinds == kinds, name
        for kind in kinds:
            assert getattr(template.media, kind) == media[kind], name
        assert "processor" in template.notes, name
    text_only = set(NAMES) - set(REFERENCE["media"])
    assert all(get_template(name).media is None for name in text_only)


def test_media_note_names_the_kinds_a_template_lacks():
    from tunedeck.core.datasets.conversation import Conversation, Message, Role

    row = Conversation(
        prompt=(Message(Role.USER, "<audio><image>what is this?"),),
        response=(Message(Role.ASSISTANT, "a cat"),),
        images=("a.jpg",),
        audios=("a.wav",),
    )
    assert media_note(row, "qwen2_vl") == (
        "template 'qwen2_vl' takes no audio input; LLaMA-Factory refuses this row"
    )
    assert "<audio> -> <|audio_pad|>" in media_note(row, "qwen3_omni")
    assert media_note(Conversation(prompt=row.prompt, response=row.response), "qwen2_vl") == ""


# templates whose behaviour came with the full list: a closing-word-only empty thought, new
# tool formats, bos/eos inside turns, raw tool tags, vocabulary tokens by id, fused systems
NEW_BEHAVIOURS = ["glm4_7", "gpt_oss", "gemma4", "seed_oss", "phi4_mini", "lfm2", "chatglm3",
                  "qwen3_5", "minimax2", "ministral3", "kimi_vl"]  # fmt: skip


@pytest.mark.parametrize("template", NEW_BEHAVIOURS)
def test_data_lengths_counts_what_preview_renders(template, shared_data, tokenizer_dir):
    from tunedeck.core.datasets import iter_conversations, load_dataset_info
    from tunedeck.core.templates import NO_CUTOFF, render, token_lengths

    info = load_dataset_info(shared_data)
    rows = []
    for name in ("glaive_toolcall_en_demo", "dpo_en_demo", "kto_en_demo", "identity"):
        rows += list(iter_conversations(info.get(name), info.data_dir))[:12]
    tokenizer = load_tokenizer(tokenizer_dir, template)
    rendered = [render(row, template, tokenizer=tokenizer, cutoff_len=NO_CUTOFF) for row in rows]
    assert list(token_lengths(rows, template, tokenizer)) == [len(r.input_ids) for r in rendered]
