"""Time `tunedeck data lengths` on 100k alpaca rows against a bare batched encode of the same text.

    .venv/bin/python bench/lengths_bench.py [--rows N] [--template T] [--fixture] [--rounds R]
        [--before OLD_LENGTHS.py]

The tokenizer is a realistic byte-level BPE (vocab 32,000) trained offline on the text of
../shared/llamafactory-data and cached under bench/out/; `--fixture` uses the 512-token test
tokenizer instead. The rows repeat alpaca_en_demo with a varied instruction, written as JSONL
into a temporary data folder. Measured in the same run:

- cli: the real `tunedeck data lengths ... --json` process (start-up, reading, rendering, counting)
- in-process: `token_lengths` over the streamed conversations, tokenizer already loaded
- baseline: `tokenizer(texts, add_special_tokens=False)` over the rendered texts of the same rows,
  1,024 texts a call (the texts are rendered beforehand, untimed)
- before (with --before): `token_lengths` of another copy of templates/lengths.py (or of an older
  render.py, which held it), same rows and tokenizer

Each is run once a round, the rounds alternate, and the best round counts (the machine is
shared). Wall and CPU (user + system) seconds are printed; CPU above wall means the encode ran
on more than one core.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "llamafactory-data"
FIXTURE = REPO / "tests" / "fixtures" / "tokenizer"
CACHE = REPO / "bench" / "out" / "tokenizer-bpe32k"
BASELINE_BATCH = 1024


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--template", default="qwen")
    parser.add_argument("--cutoff-len", type=int, default=512)
    parser.add_argument("--fixture", action="store_true", help="use the 512-token test tokenizer")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--before", type=Path, help="another lengths.py to time alongside")
    args = parser.parse_args()

    tok_dir = FIXTURE if args.fixture else realistic_tokenizer(CACHE)
    best: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        make_rows(data_dir, args.rows)
        bench = InProcess(data_dir, tok_dir, args.template, args.before)
        for _ in range(args.rounds):
            timings = {"cli": time_cli(data_dir, tok_dir, args.template, args.cutoff_len)}
            timings.update(bench.round())
            for name, (wall, cpu) in timings.items():
                if name not in best or wall < best[name][0]:
                    best[name] = (wall, cpu)
        doc, rss = bench.cli_doc, peak_child_rss_mb()

    print(f"tokenizer {tok_dir.name}, template {args.template}, {args.rows} rows, ", end="")
    print(f"{bench.tokens / args.rows:.0f} tokens a row (rendered text), best of {args.rounds}")
    labels = {
        "cli": "cli `data lengths`",
        "in_process": "in-process token_lengths",
        "before": "before: token_lengths",
        "baseline": "baseline batched encode",
    }
    base_wall, base_cpu = best["baseline"]
    for name, label in labels.items():
        if name in best:
            wall, cpu = best[name]
            print(
                f"{label:26} wall {wall:7.2f} s  cpu {cpu:7.2f} s  "
                f"ratio vs baseline {wall / base_wall:5.2f}x wall, {cpu / base_cpu:5.2f}x cpu"
            )
    print(f"cli peak RSS {rss:.0f} MB")
    print(
        f"lengths: min {doc['min']} median {doc['median']} p95 {doc['p95']} "
        f"max {doc['max']}; cutoff {args.cutoff_len} truncates {doc['truncated_rows']}"
    )
    return 0


def realistic_tokenizer(out: Path) -> Path:
    """A 32k byte-level BPE trained on the demo data's text; built once, then reused."""
    if (out / "tokenizer.json").is_file():
        return out
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    start = time.perf_counter()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=32_000,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(DATA), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out))
    print(f"trained {out.name} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return out


def corpus(folder: Path):
    """Every string in the folder's JSON / JSONL files and every line of its text files."""

    def strings(value):
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            for item in value.values():
                yield from strings(item)
        elif isinstance(value, list):
            for item in value:
                yield from strings(item)

    for path in sorted(folder.iterdir()):
        if path.suffix == ".json" and path.name != "dataset_info.json":
            yield from strings(json.loads(path.read_text(encoding="utf-8")))
        elif path.suffix == ".jsonl":
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    yield from strings(json.loads(line))
        elif path.suffix in (".txt", ".md"):
            yield from path.read_text(encoding="utf-8").splitlines()


def make_rows(data_dir: Path, n: int) -> None:
    """`n` alpaca rows: alpaca_en_demo repeated, each repeat with a varied instruction."""
    base = json.loads((DATA / "alpaca_en_demo.json").read_text(encoding="utf-8"))
    variants = ["", "Please answer: ", "Task: ", "Briefly, ", "In detail: ", "Q: "]
    with (data_dir / "alpaca_many.jsonl").open("w", encoding="utf-8") as fh:
        for i in range(n):
            row = dict(base[i % len(base)])
            k = i // len(base)
            if k:
                row["instruction"] = f"{variants[k % len(variants)]}{row['instruction']} (#{k})"
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    info = {"alpaca_many": {"file_name": "alpaca_many.jsonl"}}
    (data_dir / "dataset_info.json").write_text(json.dumps(info), encoding="utf-8")


def time_cli(data_dir: Path, tok_dir: Path, template: str, cutoff: int) -> tuple[float, float]:
    argv = [
        str(REPO / ".venv" / "bin" / "tunedeck"), "data", "lengths", "alpaca_many",
        "--dir", str(data_dir), "--tokenizer", str(tok_dir), "-t", template,
        "--cutoff-len", str(cutoff), "--json",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "TOKENIZERS_PARALLELISM"}
    env.setdefault("TUNEDECK_HOME", str(data_dir / "home"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"data lengths failed ({done.returncode}):\n{done.stderr}")
    InProcess.cli_doc = json.loads(done.stdout)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return wall, cpu


def peak_child_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


class InProcess:
    """The in-process timings: `token_lengths` (this checkout, and optionally an older copy)
    and the bare batched encode of the same rendered texts, with one loaded tokenizer."""

    cli_doc: dict = {}

    def __init__(self, data_dir: Path, tok_dir: Path, template: str, before: Path | None):
        from tunedeck.core.datasets import iter_conversations, load_dataset_info
        from tunedeck.core.templates import load_tokenizer, render, token_lengths

        info = load_dataset_info(data_dir)
        spec = info.get("alpaca_many")
        self.rows = lambda: iter_conversations(spec, info.data_dir)
        self.template = template
        self.tokenizer = load_tokenizer(tok_dir, template)
        self.variants = {"in_process": token_lengths}
        if before is not None:
            self.variants["before"] = load_module(before).token_lengths
        self.texts = [render(conv, template).text for conv in self.rows()]
        self.tokens = 0

    def round(self) -> dict[str, tuple[float, float]]:
        timings = {}
        for name, token_lengths in self.variants.items():
            timings[name] = timed(
                lambda f=token_lengths: sum(f(self.rows(), self.template, self.tokenizer))
            )
        timings["baseline"] = timed(self.baseline)
        return timings

    def baseline(self) -> None:
        tokens = 0
        for i in range(0, len(self.texts), BASELINE_BATCH):
            encoded = self.tokenizer(self.texts[i : i + BASELINE_BATCH], add_special_tokens=False)
            tokens += sum(map(len, encoded["input_ids"]))
        self.tokens = tokens


def timed(fn) -> tuple[float, float]:
    cpu = time.process_time()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu


def load_module(path: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("lengths_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    sys.exit(main())
