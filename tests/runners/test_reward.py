"""Reward-model training (stage rm): the pairwise loss, the batch layout, a real run that saves
the adapter and its value head, and a continued run that starts from the saved head."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from train_helpers import read_log, read_status, run_train

from tunedeck.core.config import load_config
from tunedeck.core.runners.reward import (
    VALUE_HEAD_FILE,
    RewardModel,
    pairwise_features,
    pairwise_loss,
)


def _rm_config(tmp_path: Path, tiny_model: Path, shared_data: Path, **keys) -> Path:
    document = {
        "stage": "rm",
        "model_name_or_path": str(tiny_model),
        "dataset_dir": str(shared_data),
        "dataset": "dpo_en_demo",
        "template": "default",
        "cutoff_len": 128,
        "per_device_train_batch_size": 2,
        "max_steps": 2,
        "logging_steps": 1,
        "output_dir": str(tmp_path / "rm"),
        "overwrite_output_dir": True,
        **keys,
    }
    path = tmp_path / "rm.yaml"
    path.write_text(json.dumps(document))
    return path


def test_pairwise_loss_scores_each_rows_last_real_token():
    values = torch.tensor([[0.1, 2.0, 9.0], [0.5, 0.7, 1.5], [0.0, -1.0, 9.0], [3.0, 1.0, 0.5]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 1, 0], [1, 1, 1]])
    loss, chosen, rejected = pairwise_loss(values, mask)
    assert chosen.tolist() == [2.0, 1.5] and rejected.tolist() == [-1.0, 0.5]
    expected = -(math.log(1 / (1 + math.exp(-3.0))) + math.log(1 / (1 + math.exp(-1.0)))) / 2
    assert loss.item() == pytest.approx(expected)


def test_a_batch_is_its_chosen_answers_then_its_rejected_ones():
    examples = [
        {"prompt_ids": [1, 2], "chosen_ids": [3], "rejected_ids": [4, 5]},
        {"prompt_ids": [6], "chosen_ids": [7, 8], "rejected_ids": [9]},
    ]
    rows = [f["input_ids"] for f in pairwise_features(examples)]
    assert rows == [[1, 2, 3], [6, 7, 8], [1, 2, 4, 5], [6, 9]]


def test_stage_rm_is_accepted_with_a_ranking_dataset(tmp_path, tiny_model, shared_data):
    config = load_config(_rm_config(tmp_path, tiny_model, shared_data))
    assert config.stage == "rm"


@pytest.mark.slow
def test_rm_trains_and_saves_its_value_head_beside_the_adapter(tmp_path, tiny_model, shared_data):
    path = _rm_config(tmp_path, tiny_model, shared_data, save_steps=1)
    out = tmp_path / "rm"
    result = run_train([str(path)])
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_status(out)["phase"] == "done"
    losses = [line["loss"] for line in read_log(out) if "loss" in line]
    assert len(losses) == 2 and all(math.isfinite(x) and x > 0 for x in losses)
    assert (out / "adapter_model.safetensors").is_file()
    assert (out / "checkpoint-1" / VALUE_HEAD_FILE).is_file()
    from safetensors.torch import load_file

    head = load_file(str(out / VALUE_HEAD_FILE))
    assert sorted(head) == ["v_head.summary.bias", "v_head.summary.weight"]
    hidden = json.loads((tiny_model / "config.json").read_text())["hidden_size"]
    assert head["v_head.summary.weight"].shape == (1, hidden)

    from tunedeck.core.runners.train import load_model, load_tokenizer

    continued = load_config(path, [f"adapter_name_or_path={out}"])
    model = load_model(continued, load_tokenizer(continued))
    assert isinstance(model, RewardModel)
    assert model.v_head.summary.weight.detach().equal(head["v_head.summary.weight"])
    assert any(p.requires_grad for n, p in model.named_parameters() if "lora_" in n)
