"""Regenerate tests/templates/golden/*.json from the reference implementation.

Run with a separate interpreter that has `llamafactory==0.9.5` installed (never a dependency
of tunedeck; the tests only read the JSON this writes):

    /tmp/lf-venv/bin/python tests/templates/make_golden.py

For every template and demo dataset it converts the first ROWS rows with the reference
converter, runs the reference preprocessing (supervised, pairwise for ranking rows, feedback
for KTO rows) with the committed fixture tokenizer, and stores the ids compactly.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("LLAMAFACTORY_VERBOSITY", "ERROR")
logging.disable(logging.WARNING)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DATA_DIR = REPO.parent / "shared" / "llamafactory-data"
TOKENIZER_DIR = REPO / "tests" / "fixtures" / "tokenizer"
OUT_DIR = HERE / "golden"

ROWS = 8
FULL_ROWS = 1  # rows whose ids are stored in full at the largest cutoff, to read diffs against
CUTOFFS = (64, 256, 2048)
FIXED_DATE = datetime.date(2025, 1, 15)  # llama3's tool prompt embeds today's date
DATASETS = {
    "alpaca_en_demo": "sft",
    "identity": "sft",
    "glaive_toolcall_en_demo": "sft",
    "dpo_en_demo": "ranking",
    "kto_en_demo": "kto",
}
TEMPLATES = [
    "default", "empty", "alpaca", "vicuna", "llama2", "llama3", "llama4", "mistral", "qwen",
    "qwen3", "qwen3_nothink", "chatml", "gemma", "gemma2", "gemma3", "phi", "phi4", "deepseek",
    "deepseek3", "deepseekr1", "yi", "glm4", "zephyr", "cohere", "olmo", "intern2", "falcon",
    "openchat", "solar", "starchat", "smollm2", "hf",
]  # fmt: skip
# (dataset, cutoff, option overrides) checked for every template on top of the plain runs
VARIANTS = [
    ("glaive_toolcall_en_demo", 256, {"train_on_prompt": True}),
    ("glaive_toolcall_en_demo", 256, {"mask_history": True}),
    ("glaive_toolcall_en_demo", 64, {"mask_history": True}),
    ("identity", 64, {"train_on_prompt": True}),
    ("glaive_toolcall_en_demo", 256, {"enable_thinking": False}),
    ("dpo_en_demo", 256, {"enable_thinking": False}),
]


def main() -> None:
    _pin_tool_prompt_date()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    rows = {name: _first_rows(name) for name in DATASETS}
    names = sys.argv[1:] or TEMPLATES
    for template in names:
        cases = []
        for dataset, kind in DATASETS.items():
            for cutoff in CUTOFFS:
                cases.append(_case(template, dataset, kind, rows[dataset], cutoff, {}))
        for dataset, cutoff, options in VARIANTS:
            case = _case(template, dataset, DATASETS[dataset], rows[dataset], cutoff, options)
            if case is not None:
                cases.append(case)
        doc = {"template": template, "tokenizer": "tests/fixtures/tokenizer", "cases": cases}
        path = OUT_DIR / f"{template}.json"
        path.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
        print(f"{template}: {len(cases)} cases, {path.stat().st_size} bytes")


def _case(template, dataset, kind, raw_rows, cutoff, options):
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.data.converter import get_dataset_converter
    from llamafactory.data.mm_plugin import get_mm_plugin
    from llamafactory.data.parser import get_dataset_list
    from llamafactory.data.processor import (
        FeedbackDatasetProcessor,
        PairwiseDatasetProcessor,
        SupervisedDatasetProcessor,
    )
    from llamafactory.data.template import TEMPLATES as REF_TEMPLATES
    from llamafactory.hparams import DataArguments
    from transformers import AutoTokenizer

    args = DataArguments(
        template=None if template == "hf" else template,
        dataset_dir=str(DATA_DIR),
        media_dir=str(DATA_DIR),
        cutoff_len=cutoff,
        train_on_prompt=options.get("train_on_prompt", False),
        mask_history=options.get("mask_history", False),
        enable_thinking=options.get("enable_thinking", True),
    )
    tokenizer = AutoTokenizer.from_pretrained(str(TOKENIZER_DIR))
    saved = _snapshot(REF_TEMPLATES)
    try:
        try:
            tpl = get_template_and_fix_tokenizer(tokenizer, args)
        except ValueError:
            return None  # e.g. train_on_prompt with an efficient_eos template
        if tpl.mm_plugin.image_token is not None:
            # vision templates demand an image processor even for text-only rows; with no
            # media in the rows their plugin leaves messages and ids untouched, as base does
            tpl.mm_plugin = get_mm_plugin(name="base")
        attr = get_dataset_list([dataset], str(DATA_DIR))[0]
        convert = get_dataset_converter(attr.formatting, attr, args)
        processor_cls = {
            "sft": SupervisedDatasetProcessor,
            "ranking": PairwiseDatasetProcessor,
            "kto": FeedbackDatasetProcessor,
        }[kind]
        processor = processor_cls(template=tpl, tokenizer=tokenizer, processor=None, data_args=args)
        converted = [convert(row) for row in raw_rows]
        batch = {key: [c[key] for c in converted] for key in converted[0]}
        result = processor.preprocess_dataset(batch)
    finally:
        _restore(REF_TEMPLATES, saved)

    out_rows = []
    prefix = "chosen_" if kind == "ranking" else ""
    for i in range(len(result[f"{prefix}input_ids"])):
        full = cutoff == max(CUTOFFS) and i < FULL_ROWS
        entry = _compact(result[f"{prefix}input_ids"][i], result[f"{prefix}labels"][i], full)
        if kind == "ranking":
            entry["rejected"] = _compact(
                result["rejected_input_ids"][i], result["rejected_labels"][i], full
            )
        out_rows.append(entry)
    if len(out_rows) != len(raw_rows):
        raise SystemExit(f"{dataset}: reference dropped rows; pick rows it keeps")
    return {
        "dataset": dataset,
        "kind": kind,
        "cutoff_len": cutoff,
        "options": options,
        "eos_token_id": tokenizer.eos_token_id,
        "rows": out_rows,
    }


def _compact(input_ids, labels, full):
    """A digest of the ids (the ids too when `full`); labels as runs against the ids."""
    runs = []  # [code, length]: "m" masked (-100), "c" copy of input_ids, "v:<id>" a literal
    for token, label in zip(input_ids, labels, strict=True):
        code = "m" if label == -100 else "c" if label == token else f"v:{label}"
        if runs and runs[-1][0] == code:
            runs[-1][1] += 1
        else:
            runs.append([code, 1])
    entry = {"length": len(input_ids), "sha1": digest(input_ids), "labels": runs}
    if full:
        entry["input_ids"] = list(input_ids)
    return entry


def digest(ids) -> str:
    return hashlib.sha1(",".join(map(str, ids)).encode()).hexdigest()


def _first_rows(name: str) -> list[dict]:
    info = json.loads((DATA_DIR / "dataset_info.json").read_text())
    path = DATA_DIR / info[name]["file_name"]
    return json.loads(path.read_text())[:ROWS]


def _snapshot(templates):
    return {
        name: (t.enable_thinking, t.preserve_thinking, t.default_system, t.mm_plugin)
        for name, t in templates.items()
    }


def _restore(templates, saved):
    for name, (thinking, preserve, system, plugin) in saved.items():
        t = templates[name]
        t.enable_thinking, t.preserve_thinking, t.default_system = thinking, preserve, system
        t.mm_plugin = plugin


def _pin_tool_prompt_date():
    import llamafactory.data.tool_utils as tool_utils

    class _FixedClock(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(FIXED_DATE.year, FIXED_DATE.month, FIXED_DATE.day)

    tool_utils.datetime = _FixedClock


if __name__ == "__main__":
    main()
