"""Data preparation at scale: the same YAML through `llamafactory-cli train` (the reference venv)
and tunedeck's runner, to the end of the first step, cold (empty caches) then warm (second run).

100,000 generated alpaca rows, qwen template, cutoff_len 1024, the tiny model of
`tunedeck demo model`, LoRA, max_steps 1, the same preprocessing_num_workers for both. Wall time
and peak memory of the training process with its children, sampled every 0.1 s: the tree's RSS
summed (pages shared by forked workers counted in each) and its PSS summed (shared pages split). Then 1,000,000 rows prepared by tunedeck alone (prepare_dataset), with its peak RSS.

Run: .venv/bin/python bench/prep_bench.py [--rows 100000] [--big-rows 1000000] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
LF_CLI = Path("/root/.cache/tunedeck/lf-0.9.5/bin/llamafactory-cli")
WORDS = (
    "the model data token train answer question simple explain write list give reason value "
    "number city river science history music paint garden energy market story letter friend "
    "water light moment system design method result example language change between because"
).split()

PREP_ONLY = r"""
import sys
from tunedeck.core.config import RunConfig
from tunedeck.core.runners.prepared import prepare_dataset
from tunedeck.core.runners.train import load_tokenizer
model, data, workers = sys.argv[1:4]
config = RunConfig(model_name_or_path=model, dataset="bench_alpaca", dataset_dir=data,
                   template="qwen", cutoff_len=1024, preprocessing_num_workers=int(workers))
prepared = prepare_dataset(config, load_tokenizer(config), lambda p, m, **_: print(m, flush=True))
print("examples", len(prepared.train), "tokens", prepared.tokens, flush=True)
"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--big-rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--engines", default="llamafactory,tunedeck")
    parser.add_argument("--big-limit-s", type=float, default=3600)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="prep-bench-"))
    try:
        model = work / "model"
        subprocess.run([sys.executable, "-m", "tunedeck.tui", "demo", "model", str(model)],
                       check=True, capture_output=True)  # fmt: skip
        data = write_alpaca(work / "data", args.rows)
        results = {"rows": args.rows, "workers": args.workers}
        for engine in args.engines.split(","):
            for run in ("cold", "warm"):
                results[f"{engine} {run}"] = train_once(engine, work, model, data, args.workers)
                print(engine, run, results[f"{engine} {run}"], flush=True)
        if args.big_rows:
            big = write_alpaca(work / "big", args.big_rows)
            env = {**os.environ, "TUNEDECK_HOME": str(work / "home-big")}
            command = [sys.executable, "-c", PREP_ONLY, str(model), str(big), str(args.workers)]
            results[f"tunedeck prep {args.big_rows}"] = measure(
                command, env, work / "big.log", args.big_limit_s
            )
            print("big", results[f"tunedeck prep {args.big_rows}"], flush=True)
        print(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def write_alpaca(folder: Path, rows: int) -> Path:
    """Alpaca rows of varied length (a few to a few hundred words), one JSON file."""
    folder.mkdir(parents=True)
    draw = random.Random(0)

    def pool(low: int, high: int) -> list[str]:
        return [
            " ".join(draw.choice(WORDS) for _ in range(draw.randint(low, high)))
            for _ in range(4000)
        ]

    instructions, inputs, outputs = pool(5, 30), pool(0, 20), pool(10, 300)
    with (folder / "alpaca.jsonl").open("w") as out:
        for n in range(rows):
            row = {
                "instruction": f"{n} {draw.choice(instructions)}",
                "input": draw.choice(inputs),
                "output": draw.choice(outputs),
            }
            out.write(json.dumps(row) + "\n")
    info = {"bench_alpaca": {"file_name": "alpaca.jsonl"}}
    (folder / "dataset_info.json").write_text(json.dumps(info))
    return folder


def train_once(engine: str, work: Path, model: Path, data: Path, workers: int) -> dict:
    """One run of the YAML to the end of step 1; caches live in `work` (kept between runs)."""
    out = work / f"out-{engine}"
    config = {
        "model_name_or_path": str(model),
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "lora",
        "lora_target": "all",
        "dataset": "bench_alpaca",
        "dataset_dir": str(data),
        "template": "qwen",
        "cutoff_len": 1024,
        "preprocessing_num_workers": workers,
        "output_dir": str(out),
        "overwrite_output_dir": True,
        "per_device_train_batch_size": 2,
        "max_steps": 1,
        "logging_steps": 1,
        "save_steps": 100000,
        "bf16": False,
        "report_to": "none",
        "resize_vocab": True,  # the qwen template's tokens are new to the tiny tokenizer
    }
    yaml_file = work / f"{engine}.yaml"
    yaml_file.write_text(json.dumps(config))  # JSON is YAML
    env = {**os.environ, "TUNEDECK_HOME": str(work / "home"),
           "HF_DATASETS_CACHE": str(work / "hf-datasets"), "HF_HUB_OFFLINE": "1",
           "DISABLE_VERSION_CHECK": "1", "OMP_NUM_THREADS": str(workers)}  # fmt: skip
    if engine == "llamafactory":
        command = [str(LF_CLI), "train", str(yaml_file)]
    else:
        command = [sys.executable, "-m", "tunedeck.core.runners.train", str(yaml_file)]
    return measure(command, env, work / f"{engine}.log")


def measure(command: list[str], env: dict, log: Path, limit_s: float = 3600) -> dict:
    """Wall time, exit code and the peak of the process tree's summed RSS and PSS; a run past
    limit_s is stopped and its last progress line kept."""
    start = time.monotonic()
    with log.open("ab") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
        root, peak, peak_pss = psutil.Process(process.pid), 0, 0
        while process.poll() is None:
            if time.monotonic() - start > limit_s:
                for child in root.children(recursive=True):
                    child.kill()
                process.kill()
                process.wait()
                break
            rss, pss = tree_memory(root)
            peak, peak_pss = max(peak, rss), max(peak_pss, pss)
            time.sleep(0.1)
    wall = time.monotonic() - start
    if process.returncode:
        print(log.read_text()[-3000:], file=sys.stderr)
    progress = [line for line in log.read_text().splitlines() if "rows/s" in line]
    return {
        "last_progress": progress[-1] if progress else None,
        "rc": process.returncode,
        "wall_s": round(wall, 1),
        "peak_rss_mb": peak >> 20,
        "peak_pss_mb": peak_pss >> 20,
    }


def tree_memory(root: psutil.Process) -> tuple[int, int]:
    """The tree's summed RSS (shared pages counted in each process) and summed PSS."""
    rss = pss = 0
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0, 0
    for process in processes:
        try:
            info = process.memory_full_info()
        except psutil.Error:
            continue
        rss, pss = rss + info.rss, pss + info.pss
    return rss, pss


if __name__ == "__main__":
    sys.exit(main())
