"""Regenerate tests/templates/golden/*.json from the reference implementation.

Run with a separate interpreter that has `llamafactory==0.9.5` installed (never a dependency
of tunedeck; the tests only read the JSON this writes):

    /tmp/lf-venv/bin/python tests/templates/make_golden.py

For every template and demo dataset it converts the first ROWS rows with the reference
converter, runs the reference preprocessing (supervised, pairwise for ranking rows, feedback
for KTO rows) with the committed fixture tokenizer, and stores the ids compactly.

Every template the reference registers gets a file (plus `hf`, parsed from the fixture
tokenizer's chat_template); golden/reference_templates.json lists them for tests that need
no reference install. Multimodal templates run their own plugin on these text-only rows:
every plugin demands a processor as soon as it has a media token (gemma3 and llama4 say
"Processor was not found"), so they get a stand-in processor, an empty string that has every
attribute; with no media in a row a plugin reads a few of its attributes and leaves messages
and ids as they are, which the run checks.
Templates that add vocabulary tokens by id (chatglm3, yuan) get those tokens added to the
fixture tokenizer first; the file names them so the test adds them too. golden/tool_formats.json
holds the reference's tool descriptions and call texts for every tool format.
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
# the first templates checked: their files keep the full ids of a row per dataset to read
# diffs against; the other files keep digests only, to stay small
FULL_ID_TEMPLATES = [
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
    listing = _reference_listing()
    if not sys.argv[1:]:
        _write(OUT_DIR / "reference_templates.json", listing)
        _write(OUT_DIR / "tool_formats.json", _tool_formats())
    names = sys.argv[1:] or [*listing["templates"], "hf"]
    for template in names:
        added = _added_tokens(template)
        cases = []
        for dataset, kind in DATASETS.items():
            for cutoff in CUTOFFS:
                cases.append(_case(template, dataset, kind, rows[dataset], cutoff, {}, added))
        for dataset, cutoff, options in VARIANTS:
            kind = DATASETS[dataset]
            case = _case(template, dataset, kind, rows[dataset], cutoff, options, added)
            if case is not None:
                cases.append(case)
        doc = {"template": template, "tokenizer": "tests/fixtures/tokenizer", "cases": cases}
        if added:
            doc["added_tokens"] = added
        media = listing["media"].get(template)
        if media:
            doc["media_plugin"] = media["plugin"]  # run with a stand-in processor
        path = OUT_DIR / f"{template}.json"
        path.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
        print(f"{template}: {len(cases)} cases, {path.stat().st_size} bytes")


def _write(path: Path, doc: dict) -> None:
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")


def _reference_listing() -> dict:
    """Every template name the reference registers, and the media of the multimodal ones."""
    import llamafactory
    from llamafactory.data.mm_plugin import PLUGINS
    from llamafactory.data.template import TEMPLATES as REF_TEMPLATES

    plugin_names = {cls: name for name, cls in PLUGINS.items()}
    media = {}
    for name, tpl in REF_TEMPLATES.items():
        plugin = tpl.mm_plugin
        tokens = {
            kind: getattr(plugin, f"{kind}_token")
            for kind in ("image", "video", "audio")
            if getattr(plugin, f"{kind}_token") is not None
        }
        if tokens:
            media[name] = {"plugin": plugin_names[type(plugin)], **tokens}
    return {
        "llamafactory": llamafactory.__version__,
        "templates": sorted(REF_TEMPLATES),
        "media": media,
    }


# tool lists and calls every tool format is checked on, beyond what the demo rows hold
SAMPLE_TOOLS = [
    [
        {
            "name": "get_weather",
            "description": "Weather of a city, 今天",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name"},
                    "unit": {"type": "string", "enum": ["C", "F"]},
                    "days": {"type": "array", "items": {"type": "integer"}},
                },
                "required": ["city"],
            },
        }
    ],
    [
        {
            "type": "function",
            "function": {
                "name": "search",
                "description": "Search the web",
                "parameters": {
                    "type": "object",
                    "properties": {"query": {"type": "string"}, "limit": {"type": "number"}},
                },
                "response": {"type": "object", "description": "hits"},
            },
        },
        {"name": "noop", "description": "", "parameters": {"type": "object", "properties": {}}},
    ],
]
SAMPLE_CALLS = [
    [{"name": "get_weather", "arguments": {"city": "Paris", "days": [1, 2], "unit": "C"}}],
    [
        {"name": "search", "arguments": {"query": 'tea "green"', "limit": 2.5, "safe": True}},
        {"name": "noop", "arguments": {"opt": None, "nested": {"b": [1, "x"], "a": False}}},
    ],
]


def _tool_formats() -> dict:
    """The reference's tool descriptions and call texts, per tool format, on the samples."""
    from llamafactory.data.tool_utils import TOOLS, FunctionCall

    formats = {}
    for name, utils in TOOLS.items():
        call_lists = [
            [FunctionCall(c["name"], json.dumps(c["arguments"], ensure_ascii=False)) for c in calls]
            for calls in SAMPLE_CALLS
        ]
        formats[name] = {
            "describe": [_outcome(utils.tool_formatter, tools) for tools in SAMPLE_TOOLS],
            "calls": [_outcome(utils.function_formatter, calls) for calls in call_lists],
        }
    doc = {"date": FIXED_DATE.isoformat(), "tools": SAMPLE_TOOLS, "calls": SAMPLE_CALLS}
    return {**doc, "formats": formats}


def _outcome(produce, argument):
    """The text made, or the name of the exception the reference refuses with."""
    try:
        return produce(argument)
    except Exception as exc:  # noqa: BLE001 - the refusal is what the test expects
        return {"error": type(exc).__name__}


def _added_tokens(template: str) -> list[str]:
    """Vocabulary tokens the template adds by id that the fixture tokenizer lacks."""
    from llamafactory.data.template import TEMPLATES as REF_TEMPLATES
    from transformers import AutoTokenizer

    tpl = REF_TEMPLATES.get(template)
    if tpl is None:
        return []
    vocab = AutoTokenizer.from_pretrained(str(TOKENIZER_DIR)).get_vocab()
    named = []
    for formatter in (tpl.format_prefix, tpl.format_system, tpl.format_user, tpl.format_assistant,
                      tpl.format_observation, tpl.format_function):  # fmt: skip
        for slot in formatter.slots:
            if isinstance(slot, dict) and slot["token"] not in vocab | dict.fromkeys(named):
                named.append(slot["token"])
    return named


def _case(template, dataset, kind, raw_rows, cutoff, options, added=()):
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.data.converter import get_dataset_converter
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
    if added:
        tokenizer.add_special_tokens({"additional_special_tokens": list(added)})
    saved = _snapshot(REF_TEMPLATES)
    try:
        try:
            tpl = get_template_and_fix_tokenizer(tokenizer, args)
        except ValueError:
            return None  # e.g. train_on_prompt with an efficient_eos template
        plugin = tpl.mm_plugin
        media = (plugin.image_token, plugin.video_token, plugin.audio_token)
        stand_in = _StandInProcessor() if any(t is not None for t in media) else None
        attr = get_dataset_list([dataset], str(DATA_DIR))[0]
        convert = get_dataset_converter(attr.formatting, attr, args)
        processor_cls = {
            "sft": SupervisedDatasetProcessor,
            "ranking": PairwiseDatasetProcessor,
            "kto": FeedbackDatasetProcessor,
        }[kind]
        processor = processor_cls(
            template=tpl, tokenizer=tokenizer, processor=stand_in, data_args=args
        )
        converted = [convert(row) for row in raw_rows]
        if stand_in is not None:
            _check_plugin_leaves_text_alone(tpl.mm_plugin, converted, tokenizer, stand_in)
        batch = {key: [c[key] for c in converted] for key in converted[0]}
        result = processor.preprocess_dataset(batch)
    finally:
        _restore(REF_TEMPLATES, saved)

    out_rows = []
    prefix = "chosen_" if kind == "ranking" else ""
    for i in range(len(result[f"{prefix}input_ids"])):
        full = template in FULL_ID_TEMPLATES and cutoff == max(CUTOFFS) and i < FULL_ROWS
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


class _StandInProcessor(str):
    """An empty-text processor with every attribute (each one another stand-in): what a
    multimodal plugin reads of its processor on a row with no media."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _StandInProcessor()

    def __call__(self, *args, **kwargs):
        return {}

    def __pow__(self, other):
        return 1

    def __int__(self):
        return 1

    def __mul__(self, other):
        return other

    __rmul__ = __mul__

    def __iter__(self):
        return iter(())


def _check_plugin_leaves_text_alone(plugin, converted, tokenizer, stand_in) -> None:
    """With no media, the plugin returns each row's messages and some ids unchanged."""
    for row in converted:
        messages = row["_prompt"] + row["_response"][:1]
        if plugin.process_messages(messages, [], [], [], stand_in) != messages:
            raise SystemExit(f"{type(plugin).__name__} changed a text-only row's messages")
        ids = tokenizer.encode("plain text", add_special_tokens=False)
        if plugin.process_token_ids(ids, list(ids), [], [], [], tokenizer, stand_in) != (ids, ids):
            raise SystemExit(f"{type(plugin).__name__} changed a text-only row's ids")


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
