"""`config fit`: the memory model's arithmetic on real architectures and a hand-computed one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tunedeck.core.config.fit import (
    CUDA_CONTEXT_BYTES,
    GIB,
    TrainingPlan,
    estimate_memory,
    fit_config,
    load_model_shape,
    lora_parameters,
    quantized_linear_bytes,
    suggest,
)
from tunedeck.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "tests" / "fixtures" / "model_configs"


def shape(name: str):
    return load_model_shape(MODELS / f"{name}.json")


def within(value: float, expected: float, share: float = 0.01) -> bool:
    return abs(value - expected) <= share * expected


# --- parameter counts of published models -------------------------------------------------------


def test_llama_3_8b_has_its_published_8_03b_parameters():
    assert within(shape("llama-3-8b").parameter_count(), 8.03e9)


def test_qwen3_4b_has_its_published_4_02b_parameters_with_tied_embeddings():
    assert within(shape("qwen3-4b").parameter_count(), 4.02e9)


def test_qwen3_30b_a3b_has_30_5b_parameters_of_which_3_3b_are_active():
    moe = shape("qwen3-30b-a3b")
    assert within(moe.parameter_count(), 30.5e9)
    assert within(moe.active_parameter_count(), 3.3e9, share=0.02)


# --- the tiny model, by hand --------------------------------------------------------------------
# hidden 64, intermediate 128, 4 heads of 16 (2 kv heads: k/v are 32 wide), 2 layers, vocab 1000.
# linear per layer: q 64*64 + k 64*32 + v 64*32 + o 64*64 + 3 * 64*128 = 36,864; norms 2*64
# embeddings + lm_head 2 * 1000*64, final norm 64: 2*36,992 + 128,064 = 202,048 parameters.
TINY_PARAMS = 202_048
TINY_LORA_R4_ALL = 2 * (4 * (64 + 64) * 2 + 4 * (64 + 32) * 2 + 4 * (64 + 128) * 3)


def tiny_plan(**changes) -> TrainingPlan:
    values = dict(lora_rank=4, cutoff_len=32, batch_size=2, compute_dtype="bfloat16")
    return TrainingPlan(**{**values, **changes})


def test_tiny_model_parameter_count_by_hand():
    assert shape("tiny-llama").parameter_count() == TINY_PARAMS


def test_lora_trainable_counts_by_hand_for_all_linear_and_listed_targets():
    tiny = shape("tiny-llama")
    assert TINY_LORA_R4_ALL == 8192
    assert lora_parameters(tiny, 4, ("all",)) == 8192
    assert lora_parameters(tiny, 4, ("q_proj", "v_proj")) == 2 * (4 * 128 + 4 * 96)


def test_every_part_of_a_tiny_lora_run_by_hand():
    estimate = estimate_memory(shape("tiny-llama"), tiny_plan())
    tokens = 32 * 2
    # bytes per layer and token: attention 2*(3*64 + 2*32) = 512, norms 2*4*64 + 2*2*64 = 768,
    # mlp 2*4*128 = 1024; two layers, then the final norm 4*64 + 2*64
    per_token = 2 * (512 + 768 + 1024) + (4 * 64 + 2 * 64)
    assert estimate.parts == {
        "weights": TINY_PARAMS * 2 + 8192 * 4,
        "gradients": 8192 * 4,
        "optimizer": 8192 * 8,
        "compute_copies": 0,
        "activations": tokens * per_token,
        "logits": tokens * 1000 * (2 + 4 + 4),
        "cuda_context": CUDA_CONTEXT_BYTES,
    }
    assert estimate.trainable_params == 8192 and estimate.total_params == TINY_PARAMS
    static = TINY_PARAMS * 2 + 8192 * 4 + 8192 * 8 + CUDA_CONTEXT_BYTES
    assert estimate.peak_bytes == static + tokens * per_token + tokens * 10_000


def test_gradient_checkpointing_keeps_each_layers_input_and_one_layer():
    estimate = estimate_memory(shape("tiny-llama"), tiny_plan(gradient_checkpointing=True))
    one_layer = 512 + 768 + 1024
    assert estimate.parts["activations"] == 64 * (2 * 2 * 64 + one_layer + 4 * 64 + 2 * 64)


def test_full_fine_tuning_holds_fp32_weights_grads_and_two_adam_states():
    estimate = estimate_memory(shape("tiny-llama"), tiny_plan(finetuning_type="full"))
    parts = estimate.parts
    assert (parts["weights"], parts["gradients"]) == (TINY_PARAMS * 4, TINY_PARAMS * 4)
    assert parts["optimizer"] == TINY_PARAMS * 8
    assert parts["compute_copies"] == 2 * 36_864 * 2  # autocast's bf16 copies of linear weights
    forward = parts["activations"] + parts["logits"] + parts["compute_copies"]
    expected = TINY_PARAMS * 12 + CUDA_CONTEXT_BYTES + max(forward, TINY_PARAMS * 4)
    assert estimate.peak_bytes == expected


def test_freeze_trains_the_last_layers_in_the_compute_dtype():
    estimate = estimate_memory(
        shape("tiny-llama"), tiny_plan(finetuning_type="freeze", freeze_trainable_layers=1)
    )
    assert estimate.trainable_params == 36_992
    assert estimate.parts["weights"] == TINY_PARAMS * 2
    assert estimate.parts["gradients"] == 36_992 * 2
    assert estimate.parts["optimizer"] == 36_992 * 4


def test_eight_bit_adam_keeps_two_bytes_per_trainable_parameter():
    estimate = estimate_memory(shape("tiny-llama"), tiny_plan(optim="paged_adamw_8bit"))
    assert estimate.parts["optimizer"] == 8192 * 2


# --- quantization and sharding ------------------------------------------------------------------


def test_four_bit_linear_weights_are_half_a_byte_plus_quant_constants():
    llama = shape("llama-3-8b")
    linear = sum(llama.linear_params(i) for i in range(llama.num_layers))
    double = quantized_linear_bytes(llama, TrainingPlan(quantization_bit=4)) / linear
    single = quantized_linear_bytes(
        llama, TrainingPlan(quantization_bit=4, double_quantization=False)
    )
    assert double == pytest.approx(0.5 + 1 / 64 + 4 / (64 * 256), rel=1e-6)
    assert single / linear == pytest.approx(0.5 + 4 / 64, rel=1e-6)


def test_qlora_keeps_embeddings_lm_head_and_norms_unquantized_in_fp32():
    llama = shape("llama-3-8b")
    plan = TrainingPlan(quantization_bit=4)
    linear = sum(llama.linear_params(i) for i in range(llama.num_layers))
    rest = llama.parameter_count() - linear
    adapters = lora_parameters(llama, 8, ("all",))
    weights = estimate_memory(llama, plan).parts["weights"]
    assert weights == quantized_linear_bytes(llama, plan) + rest * 4 + adapters * 4
    assert 7.0 * GIB < weights < 7.7 * GIB


def test_zero_stages_divide_optimizer_then_gradients_then_weights_over_the_world():
    llama = shape("llama-3-8b")
    params = llama.parameter_count()
    base = TrainingPlan(finetuning_type="full", world_size=4)
    parts = {s: estimate_memory(llama, base.changed(zero_stage=s)).parts for s in (1, 2, 3)}
    whole_weights, whole_grads, whole_optimizer = params * 2, params * 2, params * 12
    assert parts[1]["optimizer"] == -(-whole_optimizer // 4)
    assert (parts[1]["gradients"], parts[1]["weights"]) == (whole_grads, whole_weights)
    assert parts[2]["gradients"] == -(-whole_grads // 4) and parts[2]["weights"] == whole_weights
    assert parts[3]["weights"] == -(-whole_weights // 4)
    assert parts[3]["activations"] == parts[1]["activations"]  # never sharded


def test_ddp_without_zero_holds_a_second_copy_of_the_gradients():
    tiny = shape("tiny-llama")
    one = estimate_memory(tiny, tiny_plan(world_size=1)).parts["gradients"]
    assert estimate_memory(tiny, tiny_plan(world_size=2)).parts["gradients"] == 2 * one


def test_moe_lora_targets_attention_only_as_its_experts_are_fused():
    moe = shape("qwen3-30b-a3b")
    per_layer = 8 * ((2048 + 4096) * 2 + (2048 + 512) * 2)
    assert lora_parameters(moe, 8, ("all",)) == 48 * per_layer


# --- suggestions --------------------------------------------------------------------------------


def test_suggestions_carry_their_own_estimates_and_the_fitting_ones_come_first():
    llama = shape("llama-3-8b")
    plan = TrainingPlan(cutoff_len=4096, batch_size=4)
    capacity = 24 * GIB
    assert estimate_memory(llama, plan).peak_bytes > capacity
    found = suggest(llama, plan, capacity)
    by_change = {s.change: s for s in found}
    checkpointed = estimate_memory(llama, plan.changed(gradient_checkpointing=True))
    assert by_change["gradient_checkpointing=true"].estimate == checkpointed
    assert found[0].fits and found[0].estimate.peak_bytes <= capacity
    assert [s.fits for s in found] == sorted((s.fits for s in found), reverse=True)


# --- the run config and the command line --------------------------------------------------------


def run_config(tmp_path: Path, model: str, **changes) -> Path:
    values = {
        "model_name_or_path": model,
        "stage": "sft",
        "dataset": "alpaca_en_demo",
        "template": "llama3",
        "output_dir": str(tmp_path / "out"),
        "bf16": "true",
    }
    values.update(changes)
    path = tmp_path / "run.yaml"
    path.write_text("".join(f"{k}: {v}\n" for k, v in values.items()))
    return path


def model_folder(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text((MODELS / f"{name}.json").read_text())
    return folder


def test_fit_config_reads_the_model_folder_and_the_deepspeed_stage(tmp_path):
    folder = model_folder(tmp_path, "llama-3-8b")
    (tmp_path / "ds.json").write_text(json.dumps({"zero_optimization": {"stage": 3}}))
    path = run_config(
        tmp_path,
        str(folder),
        finetuning_type="full",
        nproc_per_node=8,
        deepspeed="ds.json",
        per_device_train_batch_size=1,
        gradient_checkpointing="true",
    )
    report = fit_config(path, gpus=[("H100", 80 * GIB, None)])
    assert (report.plan.zero_stage, report.plan.world_size) == (3, 8)
    assert report.estimate == estimate_memory(shape("llama-3-8b"), report.plan)
    assert report.gpus[0].verdict in ("fits", "tight")


def test_a_hub_name_without_a_local_config_names_model_config(tmp_path):
    path = run_config(tmp_path, "meta-llama/Meta-Llama-3-8B")
    with pytest.raises(ConfigError) as caught:
        fit_config(path)
    assert "--model-config" in caught.value.hint
    assert caught.value.location.column == "model_name_or_path"
    report = fit_config(path, model_config=MODELS / "qwen3-4b.json")
    assert report.estimate.total_params == shape("qwen3-4b").parameter_count()


def cli(*args: str, path_env: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    if path_env is not None:
        env["PATH"] = path_env  # no nvidia-smi on it: no GPU here
    return subprocess.run(
        [sys.executable, "-m", "tunedeck.tui", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
    )


def test_cli_json_gives_peak_bytes_and_each_part_without_importing_torch(tmp_path):
    path = run_config(tmp_path, str(model_folder(tmp_path, "qwen3-4b")))
    code = (
        "import sys; from tunedeck.tui.cli import main; rc = main(sys.argv[1:]); "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules; sys.exit(rc)"
    )
    args = ["config", "fit", str(path), "cutoff_len=1024", "--gpu-mem", "24GiB", "--json"]
    result = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    plan = TrainingPlan.from_run_config(
        __import__("tunedeck.core.config", fromlist=["load_config"]).load_config(
            path, ["cutoff_len=1024"], check_files=False
        )
    )
    expected = estimate_memory(shape("qwen3-4b"), plan)
    assert document["peak_bytes"] == expected.peak_bytes
    assert document["parts"] == expected.parts
    assert document["gpus"][0]["total_bytes"] == 24 * GIB
    assert document["gpus"][0]["verdict"] in ("fits", "tight", "does not fit")


def test_cli_table_without_a_gpu_says_how_to_give_one(tmp_path):
    path = run_config(tmp_path, str(model_folder(tmp_path, "llama-3-8b")))
    result = cli("config", "fit", str(path), path_env=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "peak per device" in result.stdout
    assert "no GPU here: give --gpu-mem 80GiB or --host" in result.stdout


def test_cli_suggests_changes_with_their_estimates_when_it_does_not_fit(tmp_path):
    path = run_config(tmp_path, str(model_folder(tmp_path, "llama-3-8b")), cutoff_len=4096)
    result = cli("config", "fit", str(path), "--gpu-mem", "24GiB")
    assert result.returncode == 0, result.stderr
    assert "does not fit" in result.stdout and "gradient_checkpointing=true" in result.stdout


def test_cli_bad_paths_are_located_errors_with_exit_1(tmp_path):
    missing = cli("config", "fit", str(tmp_path / "nope.yaml"), "--gpu-mem", "80GiB")
    assert missing.returncode == 1 and "config file not found" in missing.stderr
    hub = run_config(tmp_path, "Qwen/Qwen3-4B")
    unknown = cli("config", "fit", str(hub), "--gpu-mem", "80GiB")
    assert unknown.returncode == 1 and "--model-config" in unknown.stderr
    bad = cli("config", "fit", str(hub), "--model-config", str(tmp_path / "x.json"))
    assert bad.returncode == 1 and f"{tmp_path / 'x.json'}: model config not found" in bad.stderr
    assert "Traceback" not in missing.stderr + unknown.stderr + bad.stderr


def test_cli_usage_errors_exit_2(tmp_path):
    path = run_config(tmp_path, str(model_folder(tmp_path, "llama-3-8b")))
    assert cli("config", "fit", str(path), "--gpu-mem", "lots").returncode == 2
    both = cli("config", "fit", str(path), "--gpu-mem", "80GiB", "--host", "box")
    assert both.returncode == 2
    assert cli("config", "fit").returncode == 2


def test_without_nproc_per_node_the_world_is_one_process_per_gpu_of_the_host(tmp_path):
    path = run_config(tmp_path, str(model_folder(tmp_path, "qwen3-4b")), finetuning_type="full")
    gpus = [("GPU 0", 80 * GIB, 0), ("GPU 1", 80 * GIB, 0)]
    assert fit_config(path, gpus=gpus, gpu_source="host box").plan.world_size == 2
    given = [("--gpu-mem 80GiB", 80 * GIB, None)]
    assert fit_config(path, gpus=given, gpu_source="--gpu-mem").plan.world_size == 1
