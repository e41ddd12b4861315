"""Token-for-token equality with LLaMA-Factory 0.9.5's preprocessing on the demo datasets.

The golden files were written by make_golden.py with the reference package and the committed
fixture tokenizer; here our converter + templates must reproduce every id and label.
"""

from __future__ import annotations

import datetime
import json

import pytest

from tunedeck.core.datasets import get_row, load_dataset_info
from tunedeck.core.templates import TemplateError, get_template, load_tokenizer, render
from tunedeck.core.templates.tools import describe_tools, format_calls, parse_calls

from .conftest import GOLDEN_DATE, GOLDEN_DIR, REFERENCE, TOKENIZER_DIR, digest, expand_labels

NOT_TEMPLATES = {"reference_templates", "tool_formats"}
GOLDEN_FILES = sorted(p for p in GOLDEN_DIR.glob("*.json") if p.stem not in NOT_TEMPLATES)


def _case_id(path):
    return path.stem


@pytest.fixture(scope="module")
def data_info(shared_data):
    return load_dataset_info(shared_data)


def test_golden_files_cover_every_reference_template():
    names = {p.stem for p in GOLDEN_FILES}
    assert len(REFERENCE["templates"]) == 121
    assert {*REFERENCE["templates"], "hf"} <= names


def test_multimodal_goldens_ran_their_own_plugin():
    # made through the template's own plugin (with a stand-in processor: no media in the rows)
    for name, media in REFERENCE["media"].items():
        golden = json.loads((GOLDEN_DIR / f"{name}.json").read_text())
        assert golden["media_plugin"] == media["plugin"]
        assert get_template(name).media.plugin == media["plugin"]


def test_every_tool_format_matches_the_reference_texts():
    doc = json.loads((GOLDEN_DIR / "tool_formats.json").read_text())
    today = datetime.date.fromisoformat(doc["date"])
    calls_texts = [json.dumps(calls, ensure_ascii=False) for calls in doc["calls"]]
    for name, want in doc["formats"].items():
        for tools, expected in zip(doc["tools"], want["describe"], strict=True):
            got = _outcome(describe_tools, name, json.dumps(tools), today=today)
            assert got == _expected(expected), name
        for text, expected in zip(calls_texts, want["calls"], strict=True):
            got = _outcome(lambda fmt, t: format_calls(fmt, parse_calls(t)), name, text)
            assert got == _expected(expected), name


def _outcome(produce, *args, **kwargs):
    """The text made, or {"error": ...} where the format refuses (as the reference raises)."""
    try:
        return produce(*args, **kwargs)
    except TemplateError:
        return {"error": "refused"}


def _expected(value):
    return {"error": "refused"} if isinstance(value, dict) else value


@pytest.mark.slow
@pytest.mark.parametrize("golden_path", GOLDEN_FILES, ids=_case_id)
def test_ids_and_labels_match_reference(golden_path, data_info):
    golden = json.loads(golden_path.read_text())
    template = golden["template"]
    rows_cache: dict[tuple[str, int], object] = {}
    failures = []
    for case in golden["cases"]:
        options = case["options"]
        tokenizer = load_tokenizer(TOKENIZER_DIR)  # fresh: fix-ups are per template
        if golden.get("added_tokens"):
            tokenizer.add_special_tokens({"additional_special_tokens": golden["added_tokens"]})
        assert tokenizer.eos_token_id is not None
        spec = data_info.get(case["dataset"])
        for index, expected in enumerate(case["rows"]):
            key = (case["dataset"], index)
            if key not in rows_cache:
                rows_cache[key] = get_row(spec, data_info.data_dir, index).conversation
            rendered = render(
                rows_cache[key],
                template,
                tokenizer=tokenizer,
                cutoff_len=case["cutoff_len"],
                train_on_prompt=options.get("train_on_prompt", False),
                mask_history=options.get("mask_history", False),
                enable_thinking=options.get("enable_thinking", True),
                today=GOLDEN_DATE,
            )
            assert tokenizer.eos_token_id == case["eos_token_id"]
            sides = [(rendered, expected)]
            if "rejected" in expected:
                sides.append((rendered.rejected, expected["rejected"]))
            for got, want in sides:
                where = f"{case['dataset']}[{index}] cutoff={case['cutoff_len']} {options}"
                if "input_ids" in want and got.input_ids != want["input_ids"]:
                    failures.append(
                        f"{where}: ids differ\n got {got.input_ids}\nwant {want['input_ids']}"
                    )
                elif len(got.input_ids) != want["length"] or digest(got.input_ids) != want["sha1"]:
                    failures.append(
                        f"{where}: ids differ (len {len(got.input_ids)} vs {want['length']})"
                    )
                elif got.labels != expand_labels(want["labels"], got.input_ids):
                    failures.append(f"{where}: labels differ")
    assert not failures, f"{len(failures)} mismatches, first: " + "\n".join(failures[:3])
