"""Training throughput of tunedeck's runner against a plain trl SFTTrainer script, in the same run.

Both train LoRA (rank 8, all linear layers) on the tiny demo model with the same tokenized rows
(examples/workspace demo_alpaca through the `default` template), batch size, steps and seed;
tokens/s = non-padding input tokens seen / train_runtime, as each Trainer reports them.
Rounds alternate between the two to share out the noise of a busy machine; the best round counts.
Both run with OMP_NUM_THREADS=1.
Also times `tunedeck train --help` and a config error (both must be under 0.5 s).

Run: .venv/bin/python bench/train_bench.py [--steps 40] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out" / "train"
CONFIG = REPO / "examples" / "workspace" / "configs" / "tiny_lora_sft.yaml"
TUNEDECK = [sys.executable, "-m", "tunedeck.tui"]
# One compute thread each: on a small shared CPU, thread oversubscription is the biggest noise.
TRAIN_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

BASELINE_SCRIPT = r"""
import json, sys
import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

model_dir, rows_file, out_dir, steps, batch, lr, seed = sys.argv[1:8]
rows = [json.loads(line) for line in open(rows_file)]
tokenizer = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
args = SFTConfig(
    output_dir=out_dir, max_steps=int(steps), per_device_train_batch_size=int(batch),
    learning_rate=float(lr), seed=int(seed), logging_steps=5, save_strategy="no", report_to=[],
    max_length=256, include_num_input_tokens_seen="non_padding", disable_tqdm=True,
    lr_scheduler_type="cosine", warmup_steps=0.1, bf16=False,
)
trainer = SFTTrainer(
    model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
    peft_config=LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear",
                           task_type="CAUSAL_LM"),
)
metrics = trainer.train().metrics
print(json.dumps({"tokens": trainer.state.num_input_tokens_seen, "runtime": metrics["train_runtime"]}))
"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    model = OUT / "tiny"
    if not (model / "config.json").exists():
        subprocess.run([*TUNEDECK, "demo", "model", str(model)], check=True, capture_output=True)
    rows_file = write_rows(model)
    batch, lr, seed = 4, 1e-3, 42
    ours, plain = [], []
    for round_index in range(options.rounds):
        ours.append(run_ours(model, options.steps, batch, lr, seed, round_index))
        plain.append(run_trl(model, rows_file, options.steps, batch, lr, seed))
        print(f"round {round_index + 1}: tunedeck {ours[-1]:.0f} tok/s, trl {plain[-1]:.0f} tok/s")
    best_ours, best_plain = max(ours), max(plain)
    ratio = best_ours / best_plain
    print(
        f"throughput (best of {options.rounds}): tunedeck runner {best_ours:.0f} tok/s, "
        f"plain trl SFTTrainer {best_plain:.0f} tok/s, ratio {ratio:.3f} (need >= 0.95)"
    )
    help_s = median_wall([*TUNEDECK, "train", "--help"])
    bad = write_bad_config()
    error_s = median_wall([*TUNEDECK, "train", str(bad)], expect=1)
    python_s = median_wall([sys.executable, "-c", "pass"])
    print(
        f"`tunedeck train --help`: {help_s * 1000:.0f} ms; config error: {error_s * 1000:.0f} ms "
        f"(bare python start {python_s * 1000:.0f} ms; need < 500 ms)"
    )
    ok = ratio >= 0.95 and help_s < 0.5 and error_s < 0.5
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def write_rows(model: Path) -> Path:
    """The exact rows the runner trains on (our converter + template), for the trl script."""
    from tunedeck.core.config import load_config
    from tunedeck.core.runners.encode import encode_dataset
    from tunedeck.core.runners.train import load_tokenizer

    config = load_config(
        CONFIG,
        [f"model_name_or_path={model}", f"output_dir={OUT / 'ours'}", "overwrite_output_dir=true"],
    )
    data = encode_dataset(config, load_tokenizer(config))
    rows_file = OUT / "rows.jsonl"
    with rows_file.open("w") as handle:
        for row in data.train:
            handle.write(json.dumps({"input_ids": row["input_ids"]}) + "\n")
    return rows_file


def run_ours(model: Path, steps: int, batch: int, lr: float, seed: int, index: int) -> float:
    out = OUT / f"ours-{index}"
    args = [
        str(CONFIG),
        f"model_name_or_path={model}",
        f"output_dir={out}",
        "overwrite_output_dir=true",
        f"max_steps={steps}",
        f"per_device_train_batch_size={batch}",
        f"learning_rate={lr}",
        f"seed={seed}",
        f"save_steps={steps * 10}",
        "logging_steps=5",
        "gradient_accumulation_steps=1",
    ]
    subprocess.run(
        [sys.executable, "-m", "tunedeck.core.runners.train", *args],
        check=True,
        capture_output=True,
        cwd=REPO,
        env=TRAIN_ENV,
    )
    results = json.loads((out / "all_results.json").read_text())
    return results["num_input_tokens_seen"] / results["train_runtime"]


def run_trl(model: Path, rows_file: Path, steps: int, batch: int, lr: float, seed: int) -> float:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            BASELINE_SCRIPT,
            str(model),
            str(rows_file),
            str(OUT / "trl"),
            str(steps),
            str(batch),
            str(lr),
            str(seed),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=TRAIN_ENV,
    )
    if done.returncode:
        sys.exit(done.stderr[-3000:])
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["tokens"] / result["runtime"]


def write_bad_config() -> Path:
    path = Path(tempfile.mkdtemp()) / "bad.yaml"
    path.write_text("model_name_or_path: /nowhere\nlerning_rate: 0.1\n")
    return path


def median_wall(argv: list[str], *, expect: int = 0, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, cwd=REPO)
        times.append(time.perf_counter() - start)
        assert done.returncode == expect, done.stderr.decode()[-500:]
    return statistics.median(times)


if __name__ == "__main__":
    sys.exit(main())
