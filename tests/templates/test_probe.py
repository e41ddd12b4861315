"""The template check: a probe conversation rendered by a tunedeck template and by the
tokenizer's own chat_template (real tokenizers with real models' templates, offline)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tunedeck.core.templates.probe import (
    first_difference,
    has_chat_template,
    probe_messages,
    probe_template_dir,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LLAMA3 = FIXTURES / "tokenizer_llama3"  # Meta-Llama-3-8B-Instruct's chat_template
QWEN2 = FIXTURES / "tokenizer_qwen2"  # Qwen2-7B-Instruct's chat_template
GEMMA2 = FIXTURES / "tokenizer_gemma2"  # gemma-2-9b-it's chat_template: no system prompt
DEMO = FIXTURES / "tokenizer"  # the demo model's own template: no registered one matches
REPO = FIXTURES.parents[1]


def test_the_probe_holds_a_system_prompt_and_two_turns():
    roles = [m["role"] for m in probe_messages()]
    assert roles == ["system", "user", "assistant", "user", "assistant"]


def test_llama3_matches_the_llama3_chat_template_in_text_and_ids():
    probe = probe_template_dir(LLAMA3, "llama3")
    assert probe.matches is True and probe.difference is None and probe.summary() == ""


def test_qwen_matches_the_qwen2_chat_template():
    assert probe_template_dir(QWEN2, "qwen").matches is True


def test_a_mismatch_names_the_first_differing_piece_and_the_template_that_matches():
    probe = probe_template_dir(LLAMA3, "default")
    assert probe.matches is False
    difference = probe.difference
    assert difference.unit == "text" and difference.at == 0
    assert difference.ours.startswith("System: You are a carefu")
    assert difference.theirs.startswith("<|begin_of_text|><|start")
    assert probe.suggestion == "llama3"
    assert "character 0" in probe.summary() and probe.advice() == "use template: llama3"


def test_a_difference_later_in_the_text_shows_a_window_around_it():
    probe = probe_template_dir(QWEN2, "llama3")
    assert probe.matches is False and probe.suggestion == "qwen"
    difference = probe.difference
    assert difference.at == 2  # both begin with "<|"
    assert difference.ours.startswith("<|start_header_id|>system")
    assert difference.theirs.startswith("<|im_start|>system\nYou are")


def test_a_chat_template_that_refuses_a_system_prompt_is_probed_without_one():
    assert probe_template_dir(GEMMA2, "gemma").matches is True
    probe = probe_template_dir(GEMMA2, "default")
    assert probe.matches is False and probe.suggestion == "gemma"
    assert probe.difference.theirs.startswith("<bos><start_of_turn>user")


def test_gemma2_ends_training_text_with_eos_where_the_chat_template_does_not():
    probe = probe_template_dir(GEMMA2, "gemma2")  # efficient_eos: LLaMA-Factory appends eos
    assert probe.matches is False
    difference = probe.difference
    assert difference.ours == difference.theirs + "<eos>"
    assert difference.theirs.endswith("_of_turn>\n")


def test_no_registered_template_matching_suggests_hf():
    probe = probe_template_dir(DEMO, "default")
    assert probe.matches is False and probe.suggestion == "hf"
    assert probe_template_dir(DEMO, "hf").matches is True


def test_a_tokenizer_without_chat_template_is_not_compared(tmp_path):
    shutil.copy(DEMO / "tokenizer.json", tmp_path / "tokenizer.json")
    config = json.loads((DEMO / "tokenizer_config.json").read_text())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    assert not has_chat_template(tmp_path) and has_chat_template(DEMO)
    probe = probe_template_dir(tmp_path, "llama3")
    assert probe.matches is None and "no chat_template" in probe.reason


def test_first_difference_of_equal_and_prefix_sequences():
    assert first_difference("abc", "abc") is None
    assert first_difference("abc", "abcd").at == 3
    assert first_difference([1, 2, 3], [1, 5, 3], unit="tokens").ours == [1, 2, 3]


# -- the faces: data preview -------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tunedeck.tui", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"COLUMNS": "200", **__import__("os").environ},
    )


DATA = REPO / "examples" / "workspace" / "data"


def test_data_preview_warns_of_a_template_that_does_not_match():
    result = cli(
        "data", "preview", "demo_alpaca", "--dir", str(DATA), "-t", "default",
        "--tokenizer", str(LLAMA3),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "warning: template 'default' differs from the tokenizer's chat_template" in result.stderr
    assert "hint: use template: llama3" in result.stderr


def test_data_preview_json_carries_the_warning_and_none_when_it_matches():
    args = ["data", "preview", "demo_alpaca", "--dir", str(DATA), "--json"]
    wrong = json.loads(cli(*args, "-t", "default", "--tokenizer", str(LLAMA3)).stdout)
    [warning] = wrong["warnings"]
    assert warning["key"] == "template" and warning["suggestion"] == "llama3"
    assert warning["difference"]["theirs"].startswith("<|begin_of_text|>")
    right = json.loads(cli(*args, "-t", "llama3", "--tokenizer", str(LLAMA3)).stdout)
    assert right["warnings"] == []
