"""Fixtures for template tests: the committed fixture tokenizer and the demo data specs."""

from __future__ import annotations

import datetime
import hashlib
import json
from pathlib import Path

import pytest

from tunedeck.core.templates import IGNORE_INDEX

HERE = Path(__file__).resolve().parent
TOKENIZER_DIR = HERE.parent / "fixtures" / "tokenizer"
GOLDEN_DIR = HERE / "golden"
GOLDEN_DATE = datetime.date(2025, 1, 15)  # the date make_golden.py pins for llama3 tool prompts
# every template name LLaMA-Factory 0.9.5 registers, and the media of the multimodal ones
REFERENCE = json.loads((GOLDEN_DIR / "reference_templates.json").read_text())


def digest(ids) -> str:
    return hashlib.sha1(",".join(map(str, ids)).encode()).hexdigest()


def expand_labels(runs, input_ids) -> list[int]:
    labels: list[int] = []
    for code, length in runs:
        start = len(labels)
        if code == "m":
            labels += [IGNORE_INDEX] * length
        elif code == "c":
            labels += input_ids[start : start + length]
        else:
            labels += [int(code[2:])] * length
    return labels


@pytest.fixture(scope="session")
def tokenizer_dir() -> Path:
    return TOKENIZER_DIR
