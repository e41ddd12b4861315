"""Time `tunedeck data validate` against parsing every line with orjson, in the same run.

    .venv/bin/python bench/validate_bench.py [--rows 1000000] [--array-gb 1.0] [--out bench/out]

Generates alpaca and sharegpt data (JSONL and a JSON array), then for each file runs the
real CLI in a subprocess and a baseline subprocess that only parses every line of the
JSONL twin with orjson. Both wall-clock and CPU seconds (user + system, which other work
on a shared machine disturbs less) are compared. Also measures the peak RSS of validating
a JSON array of about --array-gb GB, and the start-up time of `tunedeck --help`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
TUNEDECK = [sys.executable, "-m", "tunedeck.tui"]
BASELINE = (
    "import orjson,sys\n"
    "loads=orjson.loads\n"
    "with open(sys.argv[1],'rb') as f:\n"
    "    for line in f: loads(line)\n"
)


def alpaca_row(i: int) -> dict:
    return {
        "instruction": f"Give a short answer to question number {i} about arithmetic.",
        "input": "" if i % 3 else f"Context: the numbers are {i} and {i + 7}.",
        "output": f"The sum is {2 * i + 7}, which is {'even' if i % 2 else 'odd'}.",
    }


def sharegpt_row(i: int) -> dict:
    turns = [
        {"from": "human", "value": f"Hello, can you help with task {i}?"},
        {"from": "gpt", "value": "Of course. What do you need?"},
        {"from": "human", "value": f"What is {i} times two?"},
        {"from": "gpt", "value": f"It is {2 * i}."},
    ]
    if i % 2:
        turns.insert(0, {"from": "system", "value": "You are concise."})
    return {"conversations": turns}


def write_jsonl(path: Path, make, rows: int) -> None:
    with open(path, "wb") as handle:
        for i in range(rows):
            handle.write(orjson.dumps(make(i)) + b"\n")


def write_array(path: Path, make, rows: int | None = None, target_bytes: int | None = None) -> int:
    """A pretty-printed array (as LLaMA-Factory's demo files are), streamed to disk."""
    count = 0
    with open(path, "wb") as handle:
        handle.write(b"[\n")
        written = 2
        while (rows is not None and count < rows) or (
            target_bytes is not None and written < target_bytes
        ):
            element = orjson.dumps(make(count), option=orjson.OPT_INDENT_2)
            element = b"  " + element.replace(b"\n", b"\n  ")
            handle.write((b",\n" if count else b"") + element)
            written += len(element) + 2
            count += 1
        handle.write(b"\n]\n")
    return count


def timed(argv: list[str]) -> tuple[float, int, int, float]:
    """(seconds, exit code, peak RSS in MB, CPU seconds) of one subprocess."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    cpu = usage.ru_utime + usage.ru_stime
    return elapsed, os.waitstatus_to_exitcode(status), usage.ru_maxrss // 1024, cpu


def best_of(argv: list[str], repeat: int) -> tuple[float, int, float]:
    """(best wall seconds, exit code of that run, best CPU seconds) over `repeat` runs."""
    runs = [timed(argv) for _ in range(repeat)]
    fastest = min(runs, key=lambda run: run[0])
    return fastest[0], fastest[1], min(run[3] for run in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--array-gb", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "validate")
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    print(f"generating {args.rows:,} alpaca rows and {args.rows // 4:,} sharegpt rows in {out}")
    write_jsonl(out / "alpaca.jsonl", alpaca_row, args.rows)
    write_array(out / "alpaca.json", alpaca_row, rows=args.rows)
    write_jsonl(out / "sharegpt.jsonl", sharegpt_row, args.rows // 4)
    write_array(out / "sharegpt.json", sharegpt_row, rows=args.rows // 4)
    info = {
        "alpaca_jsonl": {"file_name": "alpaca.jsonl"},
        "alpaca_array": {"file_name": "alpaca.json"},
        "sharegpt_jsonl": {"file_name": "sharegpt.jsonl", "formatting": "sharegpt"},
        "sharegpt_array": {"file_name": "sharegpt.json", "formatting": "sharegpt"},
    }
    (out / "dataset_info.json").write_text(json.dumps(info, indent=2))

    print(
        f"\n{'dataset':16} {'rows':>10} {'baseline s':>11} {'validate s':>11} {'ratio':>7}"
        f" {'base cpu':>9} {'val cpu':>8} {'cpu ratio':>9}"
    )
    for name, twin in (
        ("alpaca_jsonl", "alpaca.jsonl"),
        ("alpaca_array", "alpaca.jsonl"),
        ("sharegpt_jsonl", "sharegpt.jsonl"),
        ("sharegpt_array", "sharegpt.jsonl"),
    ):
        base, _, base_cpu = best_of([sys.executable, "-c", BASELINE, str(out / twin)], args.repeat)
        took, code, cpu = best_of(
            TUNEDECK + ["data", "validate", str(out), "--dataset", name, "--json"], args.repeat
        )
        rows = args.rows if name.startswith("alpaca") else args.rows // 4
        flag = "" if code == 0 else f"  (exit {code}!)"
        print(
            f"{name:16} {rows:>10,} {base:>11.2f} {took:>11.2f} {took / base:>6.2f}x"
            f" {base_cpu:>9.2f} {cpu:>8.2f} {cpu / base_cpu:>8.2f}x{flag}"
        )

    if args.array_gb > 0:
        big = out / "big.json"
        count = write_array(big, alpaca_row, target_bytes=int(args.array_gb * 1e9))
        (out / "big").mkdir(exist_ok=True)
        (out / "big" / "dataset_info.json").write_text(json.dumps({"big": {"file_name": str(big)}}))
        took, code, rss, _ = timed(TUNEDECK + ["data", "validate", str(out / "big"), "--json"])
        size = big.stat().st_size / 1e9
        print(
            f"\n{size:.2f} GB JSON array ({count:,} rows): validated in {took:.1f} s, "
            f"exit {code}, peak RSS {rss} MB (target < 300 MB)"
        )
        big.unlink()

    python, _, _ = best_of([sys.executable, "-c", "pass"], 5)
    helps = [timed(TUNEDECK + ["--help"])[0] for _ in range(7)]
    median = statistics.median(helps)
    print(
        f"\n`tunedeck --help`: median {median * 1000:.0f} ms over 7 runs "
        f"(bare python start {python * 1000:.0f} ms; target < 300 ms)"
    )


if __name__ == "__main__":
    main()
