"""A run's data encoding (rows -> trainer examples) for every stage, without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tunedeck.core.config import RunConfig
from tunedeck.core.datasets import (
    Conversation,
    Message,
    Role,
    iter_conversations,
    load_dataset_info,
)
from tunedeck.core.runners.encode import (
    PREPROCESSING_BATCH,
    chunk_examples,
    data_cutoff,
    encode_conversation,
    encode_dataset,
    greedy_knapsack,
    interleave_order,
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
    return RunConfig(
        **{"template": TEMPLATE, "dataset_dir": str(data_dir), "max_samples": 40, **keys}
    )


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


def test_packed_pretraining_drops_the_last_partial_block(shared_data, tokenizer):
    """c4_demo at cutoff 128: floor(stream / 128) full blocks (LLaMA-Factory's count), the stream
    kept in order up to the dropped remainder."""
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
    assert len(blocks) == len(whole) // 128 and len(whole) % 128
    assert {len(b["input_ids"]) for b in blocks} == {128}
    assert [i for block in blocks for i in block["input_ids"]] == whole[: len(blocks) * 128]
    assert all(b["labels"] == b["input_ids"] for b in blocks)


def test_packing_never_crosses_a_chunk_of_a_thousand_rows(tmp_path, tokenizer):
    """1500 rows: the first 1000 and the last 500 are packed apart, each dropping its remainder."""
    texts = [{"text": f"row {n} says hello"} for n in range(PREPROCESSING_BATCH + 500)]
    folder = _data_folder(tmp_path, texts, {"columns": {"prompt": "text"}})
    config = RunConfig(
        template=TEMPLATE, dataset_dir=str(folder), dataset="d", stage="pt", cutoff_len=64
    )
    ids = [_pt_ids(row["text"], tokenizer) for row in texts]
    first = sum(len(i) for i in ids[:PREPROCESSING_BATCH]) // 64
    second = sum(len(i) for i in ids[PREPROCESSING_BATCH:]) // 64
    assert len(encode_dataset(config, tokenizer).train) == first + second
    assert first + second < sum(len(i) for i in ids) // 64 + 1


def test_pretraining_labels_ignore_pad_ids(tokenizer):
    pad = tokenizer.pad_token_id
    block = chunk_examples([[5, pad, 6, 7]], 4, tokenizer)[0]
    assert block["labels"] == [5, IGNORE_INDEX, 6, 7]


def test_max_samples_counts_rows_before_invalid_ones_are_dropped(tmp_path, tokenizer):
    rows = [{"instruction": "", "input": "", "output": ""}] + [
        {"instruction": f"q{n}", "output": f"a{n}"} for n in range(5)
    ]
    folder = _data_folder(tmp_path, rows)
    config = _config(folder, stage="sft", dataset="d", max_samples=3)
    assert len(encode_dataset(config, tokenizer).train) == 2


def test_a_row_truncated_to_its_prompt_is_kept_as_llamafactory_keeps_it(tmp_path, tokenizer):
    rows = [{"instruction": "a long question " * 40, "output": "yes"}]
    config = _config(_data_folder(tmp_path, rows), stage="sft", dataset="d", cutoff_len=4)
    (example,) = encode_dataset(config, tokenizer).train
    assert len(example["input_ids"]) == 4
    assert example["labels"] == [IGNORE_INDEX] * 4


def test_val_size_splits_rows_by_the_seeded_permutation_before_encoding(tmp_path, tokenizer):
    """Dataset.train_test_split(test_size, seed): the permutation's head is held out, its tail
    (in that order) is trained on."""
    import numpy

    rows = [{"instruction": f"q{n}", "output": f"a{n}"} for n in range(20)]
    config = _config(_data_folder(tmp_path, rows), stage="sft", dataset="d", val_size=0.15)
    data = encode_dataset(config, tokenizer)
    order = [int(i) for i in numpy.random.default_rng(config.seed).permutation(20)]
    answers = [tokenizer.decode(e["input_ids"]) for e in data.train]
    assert len(data.eval) == 3 and len(data.train) == 17
    assert [f"a{n}" in text for n, text in zip(order[3:], answers, strict=True)] == [True] * 17


def test_interleaving_alternates_or_draws_by_probability():
    assert interleave_order([2, 3], None, 42, "interleave_under") == [0, 2, 1, 3]
    assert interleave_order([2, 3], None, 42, "interleave_over") == [0, 2, 1, 3, 0, 4]
    drawn = interleave_order([3, 50], [0.5, 0.5], 42, "interleave_under")
    assert drawn[-1] == 2 and sum(1 for i in drawn if i < 3) == 3


def test_packing_sets_aside_one_token_of_cutoff_len():
    assert data_cutoff(RunConfig(stage="pt", cutoff_len=128)) == 128
    assert data_cutoff(RunConfig(stage="pt", cutoff_len=128, packing=True)) == 127
    assert data_cutoff(RunConfig(stage="sft", cutoff_len=128, packing=True)) == 127


def test_sft_packing_fills_knapsacks_and_pads_each_to_cutoff_plus_one():
    examples = [
        {"input_ids": [n] * size, "attention_mask": [1] * size, "labels": [n] * size}
        for n, size in enumerate([3, 4, 2, 7], start=1)
    ]
    packed = pack_examples(examples, 6, pad_token_id=0)
    # 7 > 6 is dropped; the knapsack takes the longest that fits first: [4, 2], then [3]
    assert [p["input_ids"] for p in packed] == [[2] * 4 + [3] * 2 + [0], [1] * 3 + [0] * 4]
    assert packed[0]["position_ids"] == [0, 1, 2, 3, 0, 1, 0]
    assert packed[0]["labels"][-1] == IGNORE_INDEX and packed[0]["attention_mask"] == [1] * 7
    assert greedy_knapsack([5, 1, 3, 2, 4], 6) == [[5, 1], [4, 2], [3]]


def test_neat_packing_numbers_each_packed_example_and_leaves_padding_unattended():
    examples = [
        {"input_ids": [n] * size, "attention_mask": [1] * size, "labels": [n] * size}
        for n, size in enumerate([3, 2], start=1)
    ]
    (pack,) = pack_examples(examples, 6, pad_token_id=0, neat=True)
    assert pack["input_ids"] == [1, 1, 1, 2, 2, 0, 0]
    assert pack["attention_mask"] == [1, 1, 1, 2, 2, 0, 0]
    assert RunConfig(neat_packing=True).effective_packing


def _data_folder(tmp_path: Path, rows: list[dict], extra: dict | None = None) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "d.json").write_text(json.dumps(rows))
    entry = {"file_name": "d.json", **(extra or {})}
    (folder / "dataset_info.json").write_text(json.dumps({"d": entry}))
    return folder


def _pt_ids(text: str, tokenizer) -> list[int]:
    conversation = Conversation(prompt=(Message(Role.USER, text),), response=())
    return render(
        conversation, TEMPLATE, tokenizer=tokenizer, stage="pt", cutoff_len=NO_CUTOFF
    ).input_ids
