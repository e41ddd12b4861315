"""The first training batches of a big prepared set: `first_batches` (order drawn lazily) against
the whole epoch's order drawn first, as `first_batches` did before, both in the same run.

    .venv/bin/python bench/batches_bench.py [--examples 1000000] [--batches 8] [--rounds 5]

Prints the median of each and their ratio. Examples are small in-memory rows (the order and
grouping are timed, not reading the prepared data, which is the same for both).
"""

from __future__ import annotations

import argparse
import statistics
import time

from tunedeck.core.config import RunConfig
from tunedeck.core.runners.batches import epoch_order, first_batches


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1_000_000)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    config = RunConfig(per_device_train_batch_size=4)
    row = {"input_ids": [1, 2, 3], "attention_mask": [1, 1, 1], "labels": [-100, 2, 3]}
    examples = [row] * args.examples
    wanted = args.batches * config.per_device_train_batch_size
    lazy, whole = [], []
    for _ in range(args.rounds):
        start = time.perf_counter()
        batches = first_batches(examples, config, 0, args.batches)
        lazy.append(time.perf_counter() - start)
        start = time.perf_counter()
        order = list(epoch_order(args.examples, config.seed))[:wanted]
        whole.append(time.perf_counter() - start)
        assert [r.example for b in batches for r in b.rows] == order
    fast, slow = statistics.median(lazy), statistics.median(whole)
    print(f"{args.examples:,} examples, first {args.batches} batches of 4")
    print(f"  first_batches (lazy order) {fast * 1000:9.2f} ms")
    print(f"  whole epoch order first    {slow * 1000:9.2f} ms")
    print(f"  ratio                      {slow / fast:9.0f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
