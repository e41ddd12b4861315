"""Time rendering one sample with a loaded tokenizer against encoding the same text bare.

    .venv/bin/python bench/preview_bench.py

Prints the median per-sample time of `render` (template + ids + labels) and of
`tokenizer.encode(rendered text)` measured in the same run, and their ratio. `data lengths`
over many rows is timed by bench/lengths_bench.py.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "llamafactory-data"
FIXTURE = REPO / "tests" / "fixtures" / "tokenizer"
REPEATS = 200


def median_ms(fn) -> float:
    fn()  # warm
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> int:
    from tunedeck.core.datasets import get_row, load_dataset_info
    from tunedeck.core.templates import load_tokenizer, render

    tok_dir = FIXTURE
    if not tok_dir.is_dir():
        from tunedeck.core.runners.demo_model import build_tokenizer

        tok_dir = Path(tempfile.mkdtemp()) / "tok"
        build_tokenizer(tok_dir)
    info = load_dataset_info(DATA)
    cases = [("alpaca_en_demo", 0, "llama3"), ("glaive_toolcall_en_demo", 0, "qwen"),
             ("dpo_en_demo", 0, "qwen3")]  # fmt: skip
    worst = 0.0
    print(f"{'sample':34} {'render ms':>10} {'encode ms':>10} {'ratio':>7} tokens")
    for name, index, template in cases:
        tokenizer = load_tokenizer(tok_dir, template)
        conv = get_row(info.get(name), info.data_dir, index).conversation
        rendered = render(conv, template, tokenizer=tokenizer)
        text = rendered.text
        t_render = median_ms(lambda c=conv, t=template, k=tokenizer: render(c, t, tokenizer=k))
        t_encode = median_ms(lambda s=text, k=tokenizer: k.encode(s, add_special_tokens=False))
        worst = max(worst, t_render)
        label = f"{name}[{index}] {template}"
        print(
            f"{label:34} {t_render:10.3f} {t_encode:10.3f} {t_render / t_encode:6.1f}x "
            f"{len(rendered.input_ids)}"
        )
    verdict = "PASS" if worst < 20 else "FAIL"
    print(f"worst render {worst:.3f} ms per sample (target < 20 ms): {verdict}")
    return 0 if worst < 20 else 1


if __name__ == "__main__":
    sys.exit(main())
