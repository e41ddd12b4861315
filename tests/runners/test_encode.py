"""A run's data encoding (rows -> trainer examples) for every stage, without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tunedeck.core.config import RunConfig
from tunedeck.core.datasets import iter_conversations, load_dataset_info
from tunedeck.core.runners.encode import (
    chunk_examples,
    encode_conversation,
    encode_dataset,
    pack_examples,
)
from tunedeck.core.templates import IGNORE_INDEX, NO_CUTOFF, load_tokenizer, render

REPO = Path(__file__).resolve().parents[2]
TOKENIZER_DIR = REPO / "tests" / "fixtures" / "tokenizer"
TEMPLATE = "llama3"
# one config per stage over the LLaMA-Factory demo data: sft, packed sft, packed pt, dpo, kto
STAGES = {
    "sft": {"stage": "sft", "dataset": "alpaca_en_demo", "val_size": 0.1},
    "sft-packed": {"stage": "sft", "dataset": "alpaca_en_demo", "packing": True},
    "pt": {"stage": "pt", "dataset": "c4_demo", "cutoff_len": 128},
    "dpo": {"stage": "dpo", "dataset": "dpo_en_demo"},
    "kto": {"stage": "kto", "dataset": "kto_en_demo", "cutoff_len": 256},
}

# Encodes every stage in a fresh interpreter; the tokenizer class is loaded directly, since
# AutoTokenizer pulls torch in through transformers' model configs.
TORCH_FREE_RUN = """
import json, sys
from tunedeck.core.config import RunConfig
from tunedeck.core.runners.encode import encode_dataset
from tunedeck.core.templates import resolve_template
from transformers.tokenization_utils_tokenizers import TokenizersBackend

tokenizer_dir, template, data_dir, stages = sys.argv[1:5]
tokenizer = TokenizersBackend.from_pretrained(tokenizer_dir)
resolve_template(template, tokenizer)  # the fix-ups load_tokenizer applies
out = {}
for name, keys in json.loads(stages).items():
    config = RunConfig(template=template, dataset_dir=data_dir, max_samples=40, **keys)
    data = encode_dataset(config, tokenizer)
    out[name] = [data.train, data.eval, data.tokens]
assert "torch" not in sys.modules, "encoding imported torch"
print(json.dumps(out))
"""


def _config(data_dir: Path, **keys) -> RunConfig:
    return RunConfig(template=TEMPLATE, dataset_dir=str(data_dir), max_samples=40, **keys)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(TOKENIZER_DIR, TEMPLATE)


def test_every_stage_encodes_without_torch_and_as_in_the_runner(shared_data, tokenizer):
    done = subprocess.run(
        [sys.executable, "-c", TORCH_FREE_RUN, str(TOKENIZER_DIR), TEMPLATE, str(shared_data)]
        + [json.dumps(STAGES)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    torch_free = json.loads(done.stdout)
    for name, keys in STAGES.items():
        data = encode_dataset(_config(shared_data, **keys), tokenizer)
        assert data.train, name
        assert torch_free[name] == json.loads(json.dumps([data.train, data.eval, data.tokens]))


def test_sft_examples_train_on_the_answer_as_rendered(shared_data, tokenizer):
    info = load_dataset_info(shared_data)
    conversation = next(iter_conversations(info.get("alpaca_en_demo"), info.data_dir))
    config = _config(shared_data, stage="sft", dataset="alpaca_en_demo", cutoff_len=64)
    example = encode_conversation(conversation, config, tokenizer)
    rendered = render(conversation, TEMPLATE, tokenizer=tokenizer, cutoff_len=64)
    assert example["input_ids"] == rendered.input_ids and len(example["input_ids"]) == 64
    assert example["labels"] == rendered.labels
    assert example["attention_mask"] == [1] * 64
    assert example["labels"][0] == IGNORE_INDEX and example["labels"][-1] != IGNORE_INDEX


def test_dpo_examples_share_the_prompt_and_split_chosen_from_rejected(shared_data, tokenizer):
    info = load_dataset_info(shared_data)
    conversation = next(iter_conversations(info.get("dpo_en_demo"), info.data_dir))
    config = _config(shared_data, stage="dpo", dataset="dpo_en_demo")
    example = encode_conversation(conversation, config, tokenizer)
    rendered = render(conversation, TEMPLATE, tokenizer=tokenizer, cutoff_len=config.cutoff_len)
    prompt = len(example["prompt_ids"])
    assert example["prompt_ids"] + example["chosen_ids"] == rendered.input_ids
    assert example["prompt_ids"] + example["rejected_ids"] == rendered.rejected.input_ids
    assert rendered.labels[:prompt] == [IGNORE_INDEX] * prompt


def test_kto_examples_carry_the_rows_label(shared_data, tokenizer):
    config = _config(shared_data, stage="kto", dataset="kto_en_demo")
    examples = encode_dataset(config, tokenizer).train
    assert {type(e["label"]) for e in examples} == {bool}
    assert {e["label"] for e in examples} == {True, False}
    assert all(e["prompt_ids"] and e["completion_ids"] for e in examples)


def test_packed_pretraining_text_is_cut_into_blocks_not_truncated(shared_data, tokenizer):
    info = load_dataset_info(shared_data)
    rows = list(iter_conversations(info.get("c4_demo"), info.data_dir))[:40]
    config = _config(shared_data, stage="pt", dataset="c4_demo", cutoff_len=128)
    blocks = encode_dataset(config, tokenizer).train
    whole = [
        i
        for row in rows
        for i in render(
            row, TEMPLATE, tokenizer=tokenizer, stage="pt", cutoff_len=NO_CUTOFF
        ).input_ids
    ]
    assert [i for block in blocks for i in block["input_ids"]] == whole
    assert {len(b["input_ids"]) for b in blocks[:-1]} == {128}
    assert all(b["labels"] == b["input_ids"] for b in blocks)


def test_sft_packing_fills_sequences_greedily_in_order():
    examples = [
        {"input_ids": [n] * size, "attention_mask": [1] * size, "labels": [n] * size}
        for n, size in enumerate([3, 4, 2, 7], start=1)
    ]
    packed = pack_examples(examples, 6)
    assert [p["input_ids"] for p in packed] == [[1, 1, 1], [2, 2, 2, 2, 3, 3], [4] * 6, [4]]
    assert chunk_examples(examples, 5)[0]["input_ids"] == [1, 1, 1, 2, 2]
