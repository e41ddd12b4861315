"""Calibration text from every local dataset entry, plain or through a template, and packed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tunedeck.core.datasets import load_dataset_info
from tunedeck.core.errors import UsageError
from tunedeck.core.templates import load_tokenizer
from tunedeck.core.templates.text_export import export_text

from .conftest import TOKENIZER_DIR


def _local_names(shared_data):
    info = load_dataset_info(shared_data)
    return [name for name, spec in info.specs.items() if spec.is_local]


def _cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "tunedeck.tui", *args], capture_output=True, text=True, cwd=cwd
    )


@pytest.mark.slow
def test_to_text_succeeds_on_every_local_entry_and_packs_to_n_tokens(shared_data, tmp_path):
    tokenizer = load_tokenizer(TOKENIZER_DIR)
    names = _local_names(shared_data)
    assert len(names) >= 10
    for name in names:
        out = tmp_path / f"{name}.jsonl"
        result = _cli(
            "data", "to-text", name, "--dir", str(shared_data), "-o", str(out),
            "--tokenizer", str(TOKENIZER_DIR), "--pack-to", "256",
        )  # fmt: skip
        assert result.returncode == 0, f"{name}: {result.stderr}"
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert rows and all(isinstance(r["text"], str) and r["text"] for r in rows)
        counts = [len(tokenizer(r["text"], add_special_tokens=False)["input_ids"]) for r in rows]
        assert all(n >= 256 for n in counts[:-1]), name
        assert not any("<image>" in r["text"] or "<video>" in r["text"] for r in rows)


def test_sft_rows_become_text_through_a_template(shared_data):
    info = load_dataset_info(shared_data)
    rows = export_text(info.get("identity"), info.data_dir, template="qwen")
    assert rows[0]["text"].startswith("<|im_start|>system\nYou are Qwen")
    assert len(rows) == 91 or len(rows) > 50


def test_ranking_and_kto_plain_text_use_the_chosen_or_labelled_answer(shared_data):
    info = load_dataset_info(shared_data)
    dpo = export_text(info.get("dpo_en_demo"), info.data_dir)
    raw = json.loads((shared_data / "dpo_en_demo.json").read_text())[0]
    assert raw["chosen"]["value"] in dpo[0]["text"]
    assert raw["rejected"]["value"] not in dpo[0]["text"]
    kto = export_text(info.get("kto_en_demo"), info.data_dir)
    assert all(r["text"] for r in kto)


def test_multimodal_rows_lose_their_media_placeholders(shared_data):
    info = load_dataset_info(shared_data)
    rows = export_text(info.get("mllm_demo"), info.data_dir, template="qwen")
    assert rows and not any("<image>" in r["text"] for r in rows)


def test_sampling_is_deterministic_for_a_seed(shared_data):
    info = load_dataset_info(shared_data)
    spec = info.get("alpaca_en_demo")
    tok = load_tokenizer(TOKENIZER_DIR)
    first = export_text(spec, info.data_dir, tokenizer=tok, pack_to=128, samples=5, seed=3)
    again = export_text(spec, info.data_dir, tokenizer=tok, pack_to=128, samples=5, seed=3)
    other = export_text(spec, info.data_dir, tokenizer=tok, pack_to=128, samples=5, seed=4)
    assert first == again and first != other and len(first) == 5


def test_packing_without_a_tokenizer_is_a_usage_error(shared_data, tmp_path):
    result = _cli(
        "data", "to-text", "identity", "--dir", str(shared_data), "-o", str(tmp_path / "x.jsonl"),
        "--pack-to", "64",
    )  # fmt: skip
    assert result.returncode == 2 and "tokenizer" in result.stderr


@pytest.mark.parametrize(("option", "value"), [("pack_to", 0), ("samples", -1)])
def test_core_names_its_own_arguments_not_cli_flags(shared_data, option, value):
    info = load_dataset_info(shared_data)
    tokenizer = load_tokenizer(TOKENIZER_DIR)
    with pytest.raises(UsageError) as caught:
        export_text(info.get("identity"), info.data_dir, tokenizer=tokenizer, **{option: value})
    assert caught.value.message.startswith(f"{option} must be")
    assert "--" not in caught.value.message and "--" not in (caught.value.hint or "")


@pytest.mark.parametrize("flag", ["--pack-to", "--samples"])
def test_cli_names_the_flag_of_a_non_positive_count(shared_data, tmp_path, flag):
    result = _cli(
        "data", "to-text", "identity", "--dir", str(shared_data), "-o", str(tmp_path / "x.jsonl"),
        "--tokenizer", str(TOKENIZER_DIR), flag, "0",
    )  # fmt: skip
    assert result.returncode == 2 and flag in result.stderr
    assert not (tmp_path / "x.jsonl").exists()
