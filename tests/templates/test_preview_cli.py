"""`tunedeck data preview` and `data lengths` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from .conftest import TOKENIZER_DIR


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "tunedeck.tui", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_preview_json_has_segments_ids_and_labels(shared_data):
    result = _cli(
        "data", "preview", "glaive_toolcall_en_demo", "--dir", str(shared_data), "--template",
        "qwen", "--tokenizer", str(TOKENIZER_DIR), "--cutoff-len", "64", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["dataset"] == "glaive_toolcall_en_demo" and doc["index"] == 0
    assert doc["template"] == "qwen"
    assert {"role", "text", "trainable"} <= set(doc["segments"][0])
    assert len(doc["input_ids"]) == len(doc["labels"]) == 64
    assert doc["truncated"]["kept_tokens"] == 64


def test_preview_without_tokenizer_has_no_ids(shared_data):
    result = _cli(
        "data", "preview", "identity", "--dir", str(shared_data), "-t", "llama3", "--json"
    )
    doc = json.loads(result.stdout)
    assert "input_ids" not in doc and doc["truncated"] is None
    assert any(s["trainable"] for s in doc["segments"])


def test_human_preview_shows_legend_token_count_and_truncation(shared_data):
    result = _cli(
        "data", "preview", "alpaca_en_demo", "--dir", str(shared_data), "-t", "alpaca",
        "--tokenizer", str(TOKENIZER_DIR), "--cutoff-len", "32", "--index", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "legend:" in result.stdout and "data, trained" in result.stdout
    assert "tokens 32 / cutoff_len 32" in result.stdout
    assert "truncated:" in result.stdout


def test_unknown_template_exits_non_zero_with_suggestion(shared_data):
    result = _cli("data", "preview", "identity", "--dir", str(shared_data), "-t", "lama3")
    assert result.returncode == 1
    assert "unknown template 'lama3'" in result.stderr and "llama3" in result.stderr


def test_lengths_reports_distribution_and_truncated_rows(shared_data):
    result = _cli(
        "data", "lengths", "alpaca_en_demo", "--dir", str(shared_data), "-t", "qwen",
        "--tokenizer", str(TOKENIZER_DIR), "--cutoff-len", "256", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["rows"] > 0 and doc["min"] <= doc["median"] <= doc["p95"] <= doc["max"]
    assert 0 < doc["truncated_rows"] < doc["rows"]
    assert sum(b["rows"] for b in doc["histogram"]) == doc["rows"]
