"""Token-for-token equality with LLaMA-Factory 0.9.5's preprocessing on the demo datasets.

The golden files were written by make_golden.py with the reference package and the committed
fixture tokenizer; here our converter + templates must reproduce every id and label.
"""

from __future__ import annotations

import json

import pytest

from tunedeck.core.datasets import get_row, load_dataset_info
from tunedeck.core.templates import load_tokenizer, render

from .conftest import GOLDEN_DATE, GOLDEN_DIR, TOKENIZER_DIR, digest, expand_labels

GOLDEN_FILES = sorted(GOLDEN_DIR.glob("*.json"))


def _case_id(path):
    return path.stem


@pytest.fixture(scope="module")
def data_info(shared_data):
    return load_dataset_info(shared_data)


def test_golden_files_cover_every_required_template():
    names = {p.stem for p in GOLDEN_FILES}
    required = {
        "default", "empty", "alpaca", "vicuna", "llama2", "llama3", "llama4", "mistral", "qwen",
        "qwen3", "qwen3_nothink", "chatml", "gemma", "gemma2", "gemma3", "phi", "phi4",
        "deepseek", "deepseek3", "deepseekr1", "yi", "glm4", "zephyr", "cohere", "olmo",
        "intern2", "falcon", "openchat", "solar", "starchat", "smollm2", "hf",
    }  # fmt: skip
    assert required <= names


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
