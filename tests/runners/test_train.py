"""The training runner end to end: real processes on the tiny model, on the CPU."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from train_helpers import REPO, TRAIN_MODULE, read_log, read_status, run_train

pytestmark = pytest.mark.slow

CONFIGS = REPO / "examples" / "workspace" / "configs"


def _common(tiny_model: Path, output_dir: Path) -> list[str]:
    return [
        f"model_name_or_path={tiny_model}",
        f"output_dir={output_dir}",
        "overwrite_output_dir=true",
    ]


def _assert_finished(result: subprocess.CompletedProcess, output_dir: Path) -> list[dict]:
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_status(output_dir)["phase"] == "done"
    log = read_log(output_dir)
    assert log, "trainer_log.jsonl is empty"
    assert all(math.isfinite(r["loss"]) for r in log if "loss" in r)
    for key in ("current_steps", "total_steps", "lr", "epoch", "percentage", "elapsed_time"):
        assert key in log[-1]
    return log


def _assert_adapter_loads(tiny_model: Path, adapter_dir: Path) -> None:
    code = (
        "import sys; from transformers import AutoModelForCausalLM; from peft import PeftModel; "
        "m = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(sys.argv[1]), sys.argv[2]); "
        "assert any('lora_' in n for n, _ in m.named_parameters()); print('loaded')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tiny_model), str(adapter_dir)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and "loaded" in done.stdout, done.stderr[-2000:]


def test_lora_sft_example_trains_and_saves_a_loadable_adapter(tiny_model, tmp_path):
    out = tmp_path / "lora"
    result = run_train(
        [str(CONFIGS / "tiny_lora_sft.yaml"), *_common(tiny_model, out), "max_steps=4"]
    )
    log = _assert_finished(result, out)
    assert log[-1]["current_steps"] == 4 and log[-1]["total_tokens"] > 0
    for name in (
        "adapter_model.safetensors",
        "trainer_state.json",
        "all_results.json",
        "tokenizer.json",
    ):
        assert (out / name).exists(), name
    _assert_adapter_loads(tiny_model, out)


def test_qlora_4bit_example_trains_with_bitsandbytes_on_cpu(tiny_model, tmp_path):
    out = tmp_path / "qlora"
    result = run_train(
        [str(CONFIGS / "tiny_qlora_sft.yaml"), *_common(tiny_model, out), "max_steps=3"]
    )
    _assert_finished(result, out)
    assert "quantization_bit" in (CONFIGS / "tiny_qlora_sft.yaml").read_text()
    _assert_adapter_loads(tiny_model, out)


def test_pretraining_stage_packs_text_and_trains(tiny_model, tmp_path):
    out = tmp_path / "pt"
    result = run_train(
        [
            str(CONFIGS / "tiny_lora_sft.yaml"),
            *_common(tiny_model, out),
            "stage=pt",
            "dataset=demo_pretrain",
            "max_steps=3",
            "cutoff_len=64",
        ]
    )
    log = _assert_finished(result, out)
    assert log[-1]["current_steps"] == 3


def test_dpo_stage_trains_on_a_ranking_dataset(tiny_model, tmp_path):
    out = tmp_path / "dpo"
    result = run_train(
        [str(CONFIGS / "tiny_lora_dpo.yaml"), *_common(tiny_model, out), "max_steps=3"]
    )
    log = _assert_finished(result, out)
    assert "reward_accuracy" in log[-1]
    _assert_adapter_loads(tiny_model, out)


def test_loss_decreases_on_a_memorisable_dataset(tiny_model, memorisable_data, tmp_path):
    out = tmp_path / "memo"
    result = run_train(
        [
            str(CONFIGS / "tiny_lora_sft.yaml"),
            *_common(tiny_model, out),
            f"dataset_dir={memorisable_data}",
            "dataset=sky",
            "finetuning_type=full",
            "max_steps=30",
            "learning_rate=0.005",
            "logging_steps=5",
            "per_device_train_batch_size=4",
            "lr_scheduler_type=constant",
        ]
    )
    log = _assert_finished(result, out)
    losses = [r["loss"] for r in log]
    assert losses[-1] < losses[0] * 0.3 and losses[-1] == min(losses), losses


def test_sigterm_saves_a_checkpoint_and_resume_continues_the_log(tiny_model, tmp_path):
    out = tmp_path / "cancel"
    args = [
        str(CONFIGS / "tiny_lora_sft.yaml"),
        *_common(tiny_model, out),
        "max_steps=100000",
        "save_steps=100000",
        "logging_steps=1",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", TRAIN_MODULE, *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    log_file = out / "trainer_log.jsonl"
    deadline = time.monotonic() + 180
    while not (log_file.exists() and log_file.stat().st_size > 0):
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no progress line written"
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr[-3000:]
    status = read_status(out)
    assert status["phase"] == "cancelled"
    stopped_at = status["current_steps"]
    checkpoint = out / f"checkpoint-{stopped_at}"
    assert checkpoint.is_dir()
    _assert_adapter_loads(tiny_model, checkpoint)

    resumed = run_train(
        [
            str(CONFIGS / "tiny_lora_sft.yaml"),
            f"model_name_or_path={tiny_model}",
            f"output_dir={out}",
            "resume_from_checkpoint=true",
            f"max_steps={stopped_at + 2}",
            "logging_steps=1",
        ]
    )
    log = _assert_finished(resumed, out)
    steps = [r["current_steps"] for r in log]
    assert steps == list(range(1, stopped_at + 3)), steps


def test_a_second_signal_stops_at_once(tiny_model, tmp_path):
    out = tmp_path / "twice"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            TRAIN_MODULE,
            str(CONFIGS / "tiny_lora_sft.yaml"),
            *_common(tiny_model, out),
            "max_steps=100000",
            "save_steps=100000",
            "logging_steps=1",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 180
    while (read_status(out) if (out / "run_status.json").exists() else {}).get(
        "phase"
    ) != "training":
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert read_status(out)["phase"] == "cancelled"


def test_a_bad_config_fails_before_loading_anything(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_name_or_path: /nowhere\nlerning_rate: 1.0\n")
    result = run_train([str(bad)])
    assert result.returncode == 1
    assert "line 2" in result.stderr and "learning_rate" in result.stderr
    assert "Traceback" not in result.stderr


def test_train_command_runs_the_runner_as_a_job_and_follows_it(tiny_model, tmp_path):
    out = tmp_path / "job"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tunedeck.tui",
            "train",
            str(CONFIGS / "tiny_lora_sft.yaml"),
            *_common(tiny_model, out),
            "max_steps=2",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "succeeded" in result.stderr and "[done]" in result.stdout
    assert read_status(out)["phase"] == "done"
