"""LLaMA-Factory keys that transformers / trl / peft already serve reach them: report_to,
deepspeed, ddp_timeout and enable_liger_kernel in the TrainingArguments the runner builds,
flash_attn as the loaded model's attn_implementation, enable_thinking in the encoded labels.
A key whose package is missing here is refused before anything loads, naming the key."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tunedeck.core.config import RunConfig, load_config
from tunedeck.core.errors import TunedeckError
from tunedeck.core.runners.train import (
    build_trainer,
    load_model,
    load_tokenizer,
    model_arguments,
    require_packages,
    training_arguments,
)

ZERO3 = {"zero_optimization": {"stage": 3}, "train_micro_batch_size_per_gpu": "auto"}
PASSED_KEYS = {
    "report_to": "tensorboard,wandb",
    "ddp_timeout": 7200,
    "enable_liger_kernel": True,
    "flash_attn": "sdpa",
    "enable_thinking": False,
}


@pytest.fixture()
def one_row(tmp_path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    rows = [{"instruction": "Name a colour.", "input": "", "output": "Blue."}]
    (folder / "one.json").write_text(json.dumps(rows))
    (folder / "dataset_info.json").write_text(json.dumps({"one": {"file_name": "one.json"}}))
    return folder


def _config(tiny_model: Path, data: Path, out: Path, **keys) -> RunConfig:
    base = {
        "model_name_or_path": str(tiny_model),
        "dataset": "one",
        "dataset_dir": str(data),
        "template": "qwen3",
        "output_dir": str(out),
        "max_steps": 1,
    }
    return RunConfig(**{**base, **keys})


def test_the_keys_are_read_without_a_no_effect_warning(tmp_path, tiny_model, one_row):
    keys = {**PASSED_KEYS, "deepspeed": ZERO3}
    path = tmp_path / "run.yaml"
    base = _config(tiny_model, one_row, tmp_path / "out").changed()
    path.write_text(json.dumps({**base, **keys}))
    config = load_config(path)
    assert config.deepspeed == ZERO3
    assert all(getattr(config, key) == value for key, value in PASSED_KEYS.items())


def test_training_arguments_carry_report_to_ddp_timeout_and_liger(tmp_path, tiny_model, one_row):
    from transformers import TrainingArguments

    config = _config(tiny_model, one_row, tmp_path / "out", **PASSED_KEYS, stage="sft")
    arguments = TrainingArguments(**training_arguments(config, has_eval=False))
    assert arguments.report_to == ["tensorboard", "wandb"]
    assert arguments.ddp_timeout == 7200
    assert arguments.use_liger_kernel and arguments.liger_kernel_config is None
    rm = _config(tiny_model, one_row, tmp_path / "out", enable_liger_kernel=True, stage="rm")
    kept_logits = TrainingArguments(**training_arguments(rm, has_eval=False))
    assert kept_logits.liger_kernel_config == {"fused_linear_cross_entropy": False}
    none = _config(tiny_model, one_row, tmp_path / "out")
    assert TrainingArguments(**training_arguments(none, has_eval=False)).report_to == []


def test_an_unknown_integration_is_refused_at_report_to(tmp_path, tiny_model, one_row):
    config = _config(tiny_model, one_row, tmp_path / "out", report_to="tensorbored")
    with pytest.raises(TunedeckError, match="report_to"):
        training_arguments(config, has_eval=False)


@pytest.mark.parametrize("given", [ZERO3, "ds_z2.json", json.dumps(ZERO3)])
def test_deepspeed_reaches_training_arguments_as_a_file_or_a_mapping(
    tmp_path, tiny_model, one_row, given
):
    config = _config(tiny_model, one_row, tmp_path / "out", deepspeed=given)
    expected = ZERO3 if isinstance(given, dict) or given.startswith("{") else given
    assert training_arguments(config, has_eval=False)["deepspeed"] == expected


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is not None, reason="deepspeed here")
def test_deepspeed_without_its_package_is_refused_at_the_key(tmp_path, tiny_model, one_row):
    config = _config(tiny_model, one_row, tmp_path / "out", deepspeed=ZERO3)
    with pytest.raises(TunedeckError, match="deepspeed") as caught:
        require_packages(config)
    assert "pip install deepspeed" in (caught.value.hint or "")


@pytest.mark.parametrize(
    ("key", "value", "package"),
    [
        ("enable_liger_kernel", True, "liger_kernel"),
        ("report_to", "tensorboard", "tensorboard"),
        ("report_to", "wandb", "wandb"),
        ("report_to", "mlflow", "mlflow"),
        ("report_to", "trackio", "trackio"),
    ],
)
def test_a_missing_package_is_refused_naming_the_key(
    tmp_path, tiny_model, one_row, key, value, package
):
    if importlib.util.find_spec(package) is not None:
        pytest.skip(f"{package} is installed here")
    config = _config(tiny_model, one_row, tmp_path / "out", **{key: value})
    with pytest.raises(TunedeckError, match=key):
        require_packages(config)


@pytest.mark.parametrize(
    ("flash_attn", "implementation"),
    [("disabled", "eager"), ("sdpa", "sdpa"), ("fa2", "flash_attention_2")],
)
def test_flash_attn_is_the_models_attn_implementation(
    tmp_path, tiny_model, one_row, flash_attn, implementation
):
    config = _config(tiny_model, one_row, tmp_path / "out", flash_attn=flash_attn)
    assert model_arguments(config)["attn_implementation"] == implementation
    if implementation == "flash_attention_2":
        return  # needs the flash-attn package and a GPU to load
    model = load_model(config, load_tokenizer(config))
    assert model.config._attn_implementation == implementation


def test_flash_attn_auto_leaves_the_models_default(tmp_path, tiny_model, one_row):
    config = _config(tiny_model, one_row, tmp_path / "out")
    assert "attn_implementation" not in model_arguments(config)


def test_enable_thinking_false_moves_the_empty_thought_out_of_the_trained_labels(
    tmp_path, tiny_model, one_row
):
    from tunedeck.core.runners.encode import encode_dataset

    trained = {}
    for thinking in (True, False):
        config = _config(tiny_model, one_row, tmp_path / "out", enable_thinking=thinking)
        tokenizer = load_tokenizer(config)
        example = encode_dataset(config, tokenizer).train[0]
        labels = [t for t in example["labels"] if t != -100]
        trained[thinking] = tokenizer.decode(labels)
    assert trained[True].startswith("<think>") and "Blue." in trained[True]
    assert trained[False].startswith("Blue.")


def test_the_built_trainer_has_the_arguments_the_runner_made(tmp_path, tiny_model, one_row):
    from tunedeck.core.runners.common import StopRequest
    from tunedeck.core.runners.encode import encode_dataset

    config = _config(tiny_model, one_row, tmp_path / "out", ddp_timeout=900, flash_attn="disabled")
    tokenizer = load_tokenizer(config)
    model = load_model(config, tokenizer)
    data = encode_dataset(config, tokenizer)
    trainer = build_trainer(config, model, tokenizer, data, StopRequest(str(tmp_path / "out")))
    assert trainer.args.ddp_timeout == 900 and trainer.args.report_to == []
    assert trainer.model.config._attn_implementation == "eager"
