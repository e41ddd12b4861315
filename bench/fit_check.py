"""`config fit`'s estimate against torch.cuda.max_memory_allocated on a real GPU.

Builds a Llama model from a LlamaConfig (the tiny test model scaled up, random weights saved to
a temporary folder), loads it the way tunedeck's runner does (runners.train.load_model: dtype,
bitsandbytes, peft, gradient checkpointing), trains a few steps of random tokens like the
Trainer does (autocast forward, backward, AdamW step, zero_grad(set_to_none)), and prints the
estimate, the measured peak and the error for each config. max_memory_allocated does not see the
CUDA context, so the comparison leaves fit's cuda_context part out. Needs a CUDA GPU.

Run: .venv/bin/python bench/fit_check.py [--steps 3] [--layers 8] [--only NAME]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GIB = 1024**3
SCALED_UP = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 1024,
    "intermediate_size": 2816,
    "num_attention_heads": 16,
    "num_key_value_heads": 4,
    "num_hidden_layers": 8,
    "vocab_size": 32000,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}
# name -> run config keys (LLaMA-Factory names) that differ from the defaults
CHECKS = {
    "lora-bf16": {"finetuning_type": "lora", "cutoff_len": 1024, "per_device_train_batch_size": 4},
    "qlora-4bit-ckpt": {
        "finetuning_type": "lora",
        "quantization_bit": 4,
        "gradient_checkpointing": True,
        "cutoff_len": 2048,
        "per_device_train_batch_size": 4,
    },
    "full-bf16-ckpt": {
        "finetuning_type": "full",
        "gradient_checkpointing": True,
        "cutoff_len": 1024,
        "per_device_train_batch_size": 2,
    },
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--measure"]:  # one config in its own process, for _check_one
        keys, model_dir, steps = argv[1:4]
        print("RESULT " + json.dumps(measure(json.loads(keys), model_dir, int(steps))))
        return 0
    args = _parse(argv)
    try:
        import torch
    except ImportError:
        print("fit_check needs torch: pip install 'tunedeck[train]'", file=sys.stderr)
        return 1
    if not torch.cuda.is_available():
        print(
            "fit_check needs a CUDA GPU (torch.cuda.is_available() is False): "
            "run it on a GPU machine",
            file=sys.stderr,
        )
        return 1
    shape_doc = {**SCALED_UP, "num_hidden_layers": args.layers}
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        model_dir = _save_random_model(Path(folder), shape_doc)
        for name, keys in CHECKS.items():
            if args.only and name != args.only:
                continue
            rows.append(_check_one(name, keys, model_dir, args.steps))
    _print_table(rows)
    print(json.dumps(rows))
    return 0


def _check_one(name: str, keys: dict, model_dir: Path, steps: int) -> dict:
    """Estimate, then measure in a fresh process so peaks never mix."""
    import subprocess

    done = subprocess.run(
        [sys.executable, __file__, "--measure", json.dumps(keys), str(model_dir), str(steps)],
        capture_output=True,
        text=True,
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if done.returncode != 0 or line is None:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        return {"name": name, "error": " | ".join(tail)}
    return {"name": name, **json.loads(line[len("RESULT ") :])}


def measure(keys: dict, model_dir: str, steps: int) -> dict:
    """Train `steps` steps with the runner's model loading; estimate and peak in bytes."""
    import torch

    from tunedeck.core.config import RunConfig
    from tunedeck.core.config.fit import (
        TrainingPlan,
        estimate_memory,
        load_model_shape,
    )
    from tunedeck.core.runners.train import load_model

    config = replace(RunConfig(), model_name_or_path=model_dir, bf16=True, **keys)
    shape = load_model_shape(Path(model_dir) / "config.json")
    estimate = estimate_memory(shape, TrainingPlan.from_run_config(config))

    class _Tokenizer:
        def __len__(self) -> int:
            return shape.vocab_size

    torch.cuda.reset_peak_memory_stats()
    model = load_model(config, _Tokenizer())
    if not config.quantization_bit:  # bitsandbytes models are placed on the GPU as they load
        model = model.cuda()
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    batch, length = config.per_device_train_batch_size, config.cutoff_len
    for _ in range(steps):
        ids = torch.randint(0, shape.vocab_size, (batch, length), device="cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    measured = torch.cuda.max_memory_allocated()
    expected = estimate.peak_bytes - estimate.parts["cuda_context"]
    return {
        "estimate_bytes": expected,
        "measured_bytes": measured,
        "error_pct": round(100 * (expected - measured) / measured, 1),
        "parts": estimate.parts,
    }


def _save_random_model(folder: Path, shape_doc: dict) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    keys = {k: v for k, v in shape_doc.items() if k not in ("architectures", "model_type")}
    model = LlamaForCausalLM(LlamaConfig(**keys)).to(torch.bfloat16)
    target = folder / "scaled-up-llama"
    model.save_pretrained(target)
    return target


def _print_table(rows: list[dict]) -> None:
    print(f"{'config':<18}{'estimate':>12}{'measured':>12}{'error':>9}")
    for row in rows:
        if "error" in row:
            print(f"{row['name']:<18}  failed: {row['error']}")
            continue
        print(
            f"{row['name']:<18}{row['estimate_bytes'] / GIB:>10.2f}Gi"
            f"{row['measured_bytes'] / GIB:>10.2f}Gi{row['error_pct']:>8.1f}%"
        )


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--layers", type=int, default=SCALED_UP["num_hidden_layers"])
    parser.add_argument("--only", choices=sorted(CHECKS), default=None)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
