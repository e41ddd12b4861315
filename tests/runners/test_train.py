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

from tunedeck.core.runners.common import torchrun_argv, torchrun_nproc

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


def test_kto_stage_trains_on_desirable_and_undesirable_answers(tiny_model, tmp_path):
    out = tmp_path / "kto"
    result = run_train(
        [str(CONFIGS / "tiny_lora_kto.yaml"), *_common(tiny_model, out), "max_steps=3"]
    )
    log = _assert_finished(result, out)
    assert log[-1]["current_steps"] == 3 and "loss" in log[-1]
    assert (out / "adapter_model.safetensors").is_file()
    _assert_adapter_loads(tiny_model, out)


# LoRA on every linear layer, the output head included: the random tiny model's head is frozen
# with small weights, which caps how far adapters on the other layers alone can move the loss.
EVERY_LINEAR_LAYER = "lora_target=q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj,lm_head"


@pytest.mark.parametrize(
    ("config", "method"),
    [
        ("tiny_lora_sft.yaml", EVERY_LINEAR_LAYER),
        ("tiny_qlora_sft.yaml", EVERY_LINEAR_LAYER),
        ("tiny_lora_sft.yaml", "finetuning_type=full"),
    ],
    ids=["lora", "qlora-4bit", "full"],
)
def test_loss_decreases_on_a_memorisable_dataset(
    tiny_model, memorisable_data, tmp_path, config, method
):
    out = tmp_path / "memo"
    result = run_train(
        [
            str(CONFIGS / config),
            *_common(tiny_model, out),
            f"dataset_dir={memorisable_data}",
            "dataset=sky",
            method,
            "lora_rank=8",
            "lora_alpha=16",
            "lora_dropout=0",
            "max_steps=30",
            "learning_rate=0.005",
            "lr_scheduler_type=constant",
            "warmup_ratio=0",
            "logging_steps=5",
            "per_device_train_batch_size=4",
            "gradient_accumulation_steps=1",
        ]
    )
    log = _assert_finished(result, out)
    losses = [r["loss"] for r in log]
    assert len(losses) == 6 and losses[-1] < losses[0] * 0.4, losses
    assert sum(losses[3:]) < sum(losses[:3]) * 0.6, losses


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


def test_torchrun_command_line_names_the_process_count_and_the_runner(monkeypatch):
    argv = torchrun_argv(TRAIN_MODULE, ["cfg.yaml", "lr=1"], 4, launcher=["torchrun"])
    launch = ["torchrun", "--standalone", "--nproc_per_node=4", "-m", TRAIN_MODULE]
    assert argv == [*launch, "cfg.yaml", "lr=1"]
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    assert (torchrun_nproc(None), torchrun_nproc(1), torchrun_nproc(2)) == (3, 0, 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert torchrun_nproc(None) == 0
    monkeypatch.setenv("LOCAL_RANK", "1")  # a rank never relaunches
    assert torchrun_nproc(4) == 0


def test_two_cpu_processes_train_one_run_and_only_rank_zero_logs(tiny_model, tmp_path):
    out = tmp_path / "ddp"
    result = run_train(
        [
            str(CONFIGS / "tiny_lora_sft.yaml"),
            *_common(tiny_model, out),
            "max_steps=3",
            "logging_steps=1",
            "nproc_per_node=2",
        ]
    )
    log = _assert_finished(result, out)
    assert [r["current_steps"] for r in log] == [1, 2, 3]
    # 32 rows, 4 per rank, 2 ranks: each step reads 8 rows, a quarter of an epoch
    assert log[-1]["epoch"] == pytest.approx(0.75)
    assert result.stdout.count("[done]") == 1
    _assert_adapter_loads(tiny_model, out)


def test_sigterm_to_a_torchrun_job_group_saves_a_checkpoint_and_leaves_no_rank(
    tiny_model, tmp_path
):
    out = tmp_path / "ddp-cancel"
    proc = subprocess.Popen(
        [sys.executable, "-m", TRAIN_MODULE, str(CONFIGS / "tiny_lora_sft.yaml")]
        + [*_common(tiny_model, out), "max_steps=100000", "save_steps=100000"]
        + ["logging_steps=1", "nproc_per_node=2"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # like a job: the runner, torchrun and the ranks share a group
    )
    log_file = out / "trainer_log.jsonl"
    deadline = time.monotonic() + 180
    while not (log_file.exists() and log_file.stat().st_size > 0):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=120) == 143
    status = read_status(out)
    assert status["phase"] == "cancelled" and "checkpoint saved" in status["message"]
    assert (out / f"checkpoint-{status['current_steps']}").is_dir()
    deadline = time.monotonic() + 30
    while _group_members(proc.pid):
        assert time.monotonic() < deadline, f"left behind: {_group_members(proc.pid)}"
        time.sleep(0.1)


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


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
