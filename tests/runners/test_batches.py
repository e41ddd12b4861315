"""The batches the engine feeds: the sampler's order and the collator's padding, torch-free,
pinned against torch and against the runner's real Trainer dataloader."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tunedeck.core.config import RunConfig, load_config
from tunedeck.core.runners.batches import collate, epoch_order, first_batches
from tunedeck.core.templates import IGNORE_INDEX

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("count", "seed"), [(0, 42), (1, 42), (2, 42), (91, 42), (1000, 43), (7, 0), (200_000, 5)]
)
def test_epoch_order_is_torch_randperm_of_seed_plus_epoch(count, seed):
    import torch

    generator = torch.Generator()
    generator.manual_seed(seed)
    assert (
        list(epoch_order(count, seed - 1, epoch=1))
        == torch.randperm(count, generator=generator).tolist()
    )


def test_collate_pads_right_to_a_multiple_with_ignored_labels():
    rows = [
        {"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1], "labels": [-100, 6, 7]},
        {"input_ids": [8], "attention_mask": [1], "labels": [8]},
    ]
    batch = collate(rows, pad_token_id=2, multiple=8)
    assert batch["input_ids"] == [[5, 6, 7] + [2] * 5, [8] + [2] * 7]
    assert batch["attention_mask"][1] == [1] + [0] * 7
    assert batch["labels"][1] == [8] + [IGNORE_INDEX] * 7
    assert collate(rows, pad_token_id=2)["input_ids"][1] == [8, 2, 2]


@pytest.mark.parametrize("stage", ["sft", "pt"])
def test_the_runners_dataloader_feeds_the_previewed_batches(
    stage, tmp_path, tiny_model, shared_data
):
    """Three epochs of a small set through the real Trainer: every batch as first_batches says."""
    from tunedeck.core.runners.common import StopRequest
    from tunedeck.core.runners.encode import encode_dataset
    from tunedeck.core.runners.train import build_trainer, load_model, load_tokenizer

    dataset = {"sft": "alpaca_en_demo", "pt": "c4_demo"}[stage]
    config = RunConfig(
        model_name_or_path=str(tiny_model),
        stage=stage,
        dataset=dataset,
        dataset_dir=str(shared_data),
        template="default",
        cutoff_len=64,
        max_samples=7,
        per_device_train_batch_size=3,
        output_dir=str(tmp_path / "out"),
        use_cpu=True,
    )
    tokenizer = load_tokenizer(config)
    data = encode_dataset(config, tokenizer)
    trainer = build_trainer(config, load_model(config, tokenizer), tokenizer, data, StopRequest())
    loader = trainer.get_train_dataloader()
    fed = []
    for epoch in range(3):
        loader.set_epoch(epoch)
        fed += [{k: v.tolist() for k, v in batch.items()} for batch in loader]
    expected = first_batches(data.train, config, tokenizer.pad_token_id, len(fed))
    assert len(expected) == len(fed) == 3 * -(-len(data.train) // 3)
    assert [b.features for b in expected] == fed


def test_preview_batch_prints_the_first_batches_of_a_config(tmp_path, tiny_model, shared_data):
    keys = {
        "model_name_or_path": str(tiny_model),
        "stage": "sft",
        "dataset": "alpaca_en_demo",
        "dataset_dir": str(shared_data),
        "template": "default",
        "cutoff_len": 64,
        "max_samples": 10,
        "per_device_train_batch_size": 2,
        "output_dir": str(tmp_path / "out"),
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(keys))
    command = [sys.executable, "-m", "tunedeck.tui", "data", "preview", str(path), "--batch", "2"]
    done = subprocess.run([*command, "--json"], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    batches = json.loads(done.stdout)["batches"]
    order = list(epoch_order(10, 42))
    assert [[r["example"] for r in b["rows"]] for b in batches] == [order[0:2], order[2:4]]
    first = batches[0]
    assert len(first["input_ids"][0]) % 8 == 0
    assert [r["trained"] for r in first["rows"]] == [
        sum(1 for label in row[1:] if label != IGNORE_INDEX) for row in first["labels"]
    ]
    text = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    assert (
        text.returncode == 0
        and "batch 2" in text.stdout
        and f"example {order[0]:>6}" in text.stdout
    )
    config = load_config(path)
    assert config.per_device_train_batch_size == 2
