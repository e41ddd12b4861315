"""Every config of LLaMA-Factory's own examples through `config check`, with both engines.

engine llamafactory: every key is one of the host's LLaMA-Factory (read from its dataclasses),
and each file is accepted or refused with LLaMA-Factory's own located reason; the built-in engine
accepts a file or names, at its line, each LLaMA-Factory feature it does not serve.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from llamafactory_examples import FOLDERS, example_files, example_name, localised

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference_venv import reference_python  # noqa: E402,F401 - fixture

from tunedeck.core.config.engine_check import check_configs  # noqa: E402
from tunedeck.core.engines.llamafactory_host import all_keys, find_install  # noqa: E402

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
GPU = "GPU-only option"
PACKAGE = "package"
ACCEPTED = "accepted"
# LLaMA-Factory 0.9.5's verdict on this CPU box, file as written (model paths aside).
VERDICT_AS_WRITTEN = {
    "train_lora/qwen3_preprocess.yaml": ACCEPTED,  # preprocessing only: no bf16 in it
    "merge_lora/qwen3_full_sft.yaml": ACCEPTED,
    "merge_lora/qwen3_gptq.yaml": ACCEPTED,
    "merge_lora/qwen3_lora_sft.yaml": ACCEPTED,
    "merge_lora/qwen3vl_lora_sft.yaml": ACCEPTED,
    "extras/badam/llama3_full_sft.yaml": (PACKAGE, "use_badam"),
    "extras/nlg_eval/llama3_lora_predict.yaml": (PACKAGE, "predict_with_generate"),
    "extras/multi_tokens/tokens_cfg.yaml": ("not a run config", None),
    # transformers 5.6 (what LLaMA-Factory 0.9.5 runs on) dropped this TrainingArguments field:
    # LLaMA-Factory's own parser refuses the file, so does the check, at the key
    "extras/fp8/llama3_fp8_fsdp_sft.yaml": ("not a key", "fsdp_transformer_layer_cls_to_wrap"),
}
GPU_KEYS = {"pure_bf16": ("apollo", "galore", "mod")}  # the rest ask for bf16
# With bf16 (and pure_bf16) turned off: what LLaMA-Factory still needs here.
VERDICT_ON_CPU = {
    "train_lora/qwen3_lora_sft_ds3.yaml": "deepspeed",
    "train_full/qwen3_full_sft.yaml": "deepspeed",
    "train_full/qwen3vl_full_sft.yaml": "deepspeed",
    "extras/asft/llama2_full_asft.yaml": "deepspeed",
    "extras/asft/qwen2_full_asft.yaml": "deepspeed",
    "extras/fp8/llama3_fp8_deepspeed_sft.yaml": "deepspeed",
    "extras/adam_mini/qwen2_full_sft.yaml": "use_adam_mini",
    "extras/apollo/llama3_full_sft.yaml": "use_apollo",
    "extras/galore/llama3_full_sft.yaml": "use_galore",
    "extras/mod/llama3_full_sft.yaml": "mixture_of_depths",
}

# The built-in engine's refusals, by file (the keys named); every other file is accepted.
BUILTIN_REFUSES = {
    "train_lora/qwen3_lora_kto.yaml": {"per_device_train_batch_size"},
    "train_lora/qwen3_lora_sft_ray.yaml": {"ray_num_workers"},
    "train_full/qwen3vl_full_sft.yaml": {
        "freeze_language_model",
        "freeze_multi_modal_projector",
        "freeze_vision_tower",
    },
    "extras/adam_mini/qwen2_full_sft.yaml": {"use_adam_mini"},
    "extras/apollo/llama3_full_sft.yaml": {
        "apollo_layerwise",
        "apollo_rank",
        "apollo_scale",
        "apollo_scale_type",
        "apollo_target",
        "pure_bf16",
        "use_apollo",
    },
    "extras/asft/llama2_full_asft.yaml": {"asft_alpha", "use_asft_loss"},
    "extras/asft/qwen2_full_asft.yaml": {"asft_alpha", "use_asft_loss"},
    "extras/badam/llama3_full_sft.yaml": {
        "badam_mode",
        "badam_switch_interval",
        "badam_switch_mode",
        "badam_verbose",
        "use_badam",
    },
    "extras/dft/qwen2_full_sft.yaml": {"use_dft_loss"},
    "extras/eaft/qwen25_05b_eaft_full.yaml": {"use_eaft_loss"},
    "extras/fp8/llama3_fp8_deepspeed_sft.yaml": {
        "fp8",
        "fp8_backend",
        "fp8_enable_fsdp_float8_all_gather",
        "run_name",
    },
    "extras/fp8/llama3_fp8_fsdp_sft.yaml": {
        "fp8",
        "fp8_backend",
        "fp8_enable_fsdp_float8_all_gather",
        "fsdp",
        "fsdp_transformer_layer_cls_to_wrap",
        "run_name",
    },
    "extras/galore/llama3_full_sft.yaml": {
        "galore_layerwise",
        "galore_rank",
        "galore_scale",
        "galore_target",
        "pure_bf16",
        "use_galore",
    },
    "extras/llama_pro/llama3_freeze_sft.yaml": {"use_llama_pro"},
    "extras/loraplus/llama3_lora_sft.yaml": {"loraplus_lr_ratio"},
    "extras/mod/llama3_full_sft.yaml": {"mixture_of_depths", "pure_bf16"},
    "extras/multi_tokens/tokens_cfg.yaml": {None},
    "extras/muon/qwen2_full_sft.yaml": {"use_muon"},
    "extras/nlg_eval/llama3_lora_predict.yaml": {"predict_with_generate"},
    "extras/oft/llama3_oft_sft.yaml": {"finetuning_type", "oft_block_size", "oft_target"},
    "extras/oft/qwen2_5vl_oft_sft.yaml": {"finetuning_type", "oft_block_size", "oft_target"},
    "extras/pissa/llama3_lora_sft.yaml": {"pissa_convert", "pissa_init", "pissa_iter"},
    "extras/qoft/llama3_oft_sft_awq.yaml": {"finetuning_type", "oft_block_size", "oft_target"},
    "extras/qoft/llama3_oft_sft_bnb_npu.yaml": {"finetuning_type", "oft_block_size", "oft_target"},
    "extras/qoft/llama3_oft_sft_gptq.yaml": {"finetuning_type", "oft_block_size", "oft_target"},
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    """The demo model and a LoRA adapter of it (for the merge configs)."""
    folder = tmp_path_factory.mktemp("tiny")
    model, adapter = folder / "model", folder / "adapter"
    subprocess.run(
        [sys.executable, "-m", "tunedeck.tui", "demo", "model", str(model)],
        check=True,
        capture_output=True,
        cwd=REPO,
    )
    script = (
        "import sys; from peft import LoraConfig, get_peft_model;"
        "from transformers import AutoModelForCausalLM as M;"
        "m = get_peft_model(M.from_pretrained(sys.argv[1]), LoraConfig(r=2, target_modules=['q_proj']));"
        "m.save_pretrained(sys.argv[2])"
    )
    subprocess.run([sys.executable, "-c", script, str(model), str(adapter)], check=True)
    return model, adapter


@pytest.fixture
def examples(tmp_path, tiny, reference_python, monkeypatch) -> dict[str, Path]:  # noqa: F811
    """Each example, localised, by its name under the examples folder; LLaMA-Factory found."""
    monkeypatch.setenv("TUNEDECK_LLAMAFACTORY", str(reference_python.parent.parent))
    model, adapter = tiny
    return {example_name(p): localised(p, tmp_path, model, adapter) for p in example_files()}


def test_the_five_folders_hold_the_44_configs():
    counts = {folder: sum(1 for p in example_files() if example_name(p).startswith(folder + "/"))
              for folder in FOLDERS}  # fmt: skip
    assert counts == {
        "train_lora": 10,
        "train_qlora": 5,
        "train_full": 2,
        "merge_lora": 4,
        "extras": 23,
    }


def test_engine_llamafactory_knows_every_key_and_gives_its_own_located_verdict(examples):
    names = list(examples)
    checks = dict(
        zip(names, check_configs(examples.values(), ["engine=llamafactory"]), strict=True)
    )
    for name, check in checks.items():
        expected = VERDICT_AS_WRITTEN.get(name, GPU)
        errors = check.errors
        if expected == ACCEPTED:
            assert check.ok, (name, [str(e) for e in errors])
            continue
        assert len(errors) == 1, (name, [str(e) for e in errors])
        (error,) = errors
        assert error.location.file == str(examples[name]), name
        assert error.location.line is not None, name  # located at a line of the file
        unknown = "not a key of LLaMA-Factory" in error.message
        assert unknown == (expected[0] == "not a key"), (name, str(error))
        if expected == GPU:
            gpu_key = next(
                (k for k, v in GPU_KEYS.items() if any(f"/{d}/" in f"/{name}" for d in v)), "bf16"
            )
            assert (error.key, error.hint.startswith("a GPU-only option")) == (gpu_key, True), name
            assert "LLaMA-Factory 0.9.5 refuses it" in error.message
        elif expected[0] == PACKAGE:
            assert error.key == expected[1] and "package" in error.hint, (name, str(error))
        else:
            assert expected[0] in error.message and error.key == expected[1], (name, str(error))


def test_engine_llamafactory_on_the_cpu_accepts_what_needs_no_missing_package(examples):
    gpu_refused = [n for n in examples if VERDICT_AS_WRITTEN.get(n, GPU) == GPU]
    overrides = ["engine=llamafactory", "bf16=false", "pure_bf16=false"]
    checks = check_configs([examples[n] for n in gpu_refused], overrides)
    for name, check in zip(gpu_refused, checks, strict=True):
        needed = VERDICT_ON_CPU.get(name)
        if needed is None:
            assert check.ok, (name, [str(e) for e in check.errors])
        else:
            (error,) = check.errors
            assert (error.key, "missing on this host" in (error.hint or "")) == (needed, True), (
                name,
                str(error),
                error.hint,
            )
    accepted = {folder: 0 for folder in FOLDERS}
    for name, check in zip(gpu_refused, checks, strict=True):
        accepted[name.split("/")[0]] += check.ok
    for name in examples:
        accepted[name.split("/")[0]] += VERDICT_AS_WRITTEN.get(name) == ACCEPTED
    assert accepted == {
        "train_lora": 9,
        "train_qlora": 5,
        "train_full": 0,
        "merge_lora": 4,
        "extras": 12,
    }


def test_builtin_engine_accepts_or_names_each_feature_it_lacks(examples):
    lf_keys = all_keys(find_install())
    checks = check_configs(examples.values())
    refused = 0
    for name, check in zip(examples, checks, strict=True):
        for error in check.errors:
            refused += 1
            assert error.location.file == str(examples[name]) and error.location.line, str(error)
            if error.key is None:
                assert "not a run config" in error.message
            elif "neither the built-in engine nor LLaMA-Factory" in error.message:
                assert error.key == "fsdp_transformer_layer_cls_to_wrap"
            else:
                assert error.key in lf_keys, str(error)  # a feature, named at its key
                if error.key not in ("stage", "finetuning_type", "per_device_train_batch_size"):
                    assert "the built-in engine does not serve" in error.message, str(error)
                    assert "engine: llamafactory" in error.hint
    assert refused
    named = {
        name: {e.key for e in check.errors} for name, check in zip(examples, checks, strict=True)
    }
    assert {name: keys for name, keys in named.items() if keys} == BUILTIN_REFUSES
    accepted = {folder: 0 for folder in FOLDERS}
    for name, check in zip(examples, checks, strict=True):
        accepted[name.split("/")[0]] += check.ok
    assert accepted == {
        "train_lora": 8,
        "train_qlora": 5,
        "train_full": 1,
        "merge_lora": 4,
        "extras": 1,
    }
