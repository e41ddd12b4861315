"""A run's data as a trainer takes it, built the way LLaMA-Factory builds it: rows of each dataset
(max_samples first), mixed (mix_strategy), split (val_size), then encoded in chunks of
PREPROCESSING_BATCH rows: sft/pt input_ids/labels/attention_mask (packed or not), prompt/chosen/
rejected ids for dpo and rm, prompt/completion/label for kto.

Plain Python over the converter and the templates (the same ids and labels `tunedeck data
preview` shows): no torch, so it is tested, and can run, without the training extra. val_size and
interleave_probs draw from numpy's generator, as the `datasets` library does.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tunedeck.core.config import RunConfig
from tunedeck.core.datasets import load_dataset_info
from tunedeck.core.datasets.conversation import Conversation, RowLocation
from tunedeck.core.datasets.convert import converter_for
from tunedeck.core.datasets.readers import data_files, read_file_rows
from tunedeck.core.errors import TunedeckError
from tunedeck.core.templates import IGNORE_INDEX, NO_CUTOFF, render

# LLaMA-Factory maps its preprocessing over batches of this many rows (preprocessing_batch_size):
# packing never crosses a batch, and packed pre-training drops each batch's last partial block.
PREPROCESSING_BATCH = 1000
PAIRWISE_STAGES = ("dpo", "rm")  # prompt, chosen and rejected ids (LLaMA-Factory's pairwise rows)
MIX_STRATEGIES = ("concat", "interleave_under", "interleave_over", "interleave_once")

Row = Conversation | None  # None: a row the converter rejects (kept for max_samples' count)


@dataclass
class EncodedData:
    """Tokenized examples ready for a trainer: dicts of input_ids/labels (or prompt/chosen/rejected)."""

    train: list[dict[str, Any]]
    eval: list[dict[str, Any]] | None
    tokens: int  # number of training tokens in one pass over `train`


def encode_dataset(config: RunConfig, tokenizer) -> EncodedData:
    """Read, mix and split the datasets' rows, then encode them with our template."""
    info = load_dataset_info(config.dataset_dir)
    rows = mixed_rows(config, [dataset_rows(info, n, config.max_samples) for n in config.datasets])
    train_rows, held_rows = split_rows(rows, config.val_size, config.seed)
    if config.eval_datasets:
        parts = [dataset_rows(info, n, config.max_samples) for n in config.eval_datasets]
        held_rows = mixed_rows(config, parts)
    train = encode_rows(train_rows, config, tokenizer)
    held = encode_rows(held_rows, config, tokenizer) if held_rows else []
    return EncodedData(train=train, eval=held or None, tokens=sum(_token_count(e) for e in train))


def dataset_rows(info, name: str, max_samples: int | None = None) -> list[Row]:
    """An entry's rows in file order, the first max_samples of them (counted before any is
    dropped, as LLaMA-Factory selects them), rejected rows as None."""
    spec = info.get(name)
    return list(_limited(_raw_conversations(spec, info.data_dir), max_samples))


def mixed_rows(config: RunConfig, parts: list[list[Row]]) -> list[Row]:
    """Several datasets as one, by mix_strategy (the `datasets` library's concatenate/interleave)."""
    if len(parts) == 1:
        return parts[0]
    strategy = config.mix_strategy
    if strategy == "concat":
        return [row for part in parts for row in part]
    if strategy not in MIX_STRATEGIES:
        raise TunedeckError(f"unknown mix_strategy {strategy!r}", hint=", ".join(MIX_STRATEGIES))
    probs = config.interleave_probs
    probabilities = [float(p) for p in str(probs).split(",")] if probs else None
    order = interleave_order([len(p) for p in parts], probabilities, config.seed, strategy)
    flat = [row for part in parts for row in part]
    return [flat[i] for i in order]


def interleave_order(
    lengths: list[int], probabilities: list[float] | None, seed: int, strategy: str
) -> list[int]:
    """Indices into the concatenated datasets, as datasets.interleave_datasets picks them."""
    offsets = [sum(lengths[:i]) for i in range(len(lengths))]
    oversampling = strategy != "interleave_under"
    if strategy == "interleave_once":
        raise TunedeckError(
            "mix_strategy interleave_once needs a streamed dataset",
            hint="use interleave_under or interleave_over",
        )
    if probabilities is None and not oversampling:
        return [offsets[d] + i for i in range(min(lengths)) for d in range(len(lengths))]
    if probabilities is None:
        return [
            offsets[d] + i % lengths[d] for i in range(max(lengths)) for d in range(len(lengths))
        ]
    rng = _numpy().random.default_rng(seed)
    exhausted = [False] * len(lengths)
    current = [0] * len(lengths)
    order: list[int] = []
    stop = all if oversampling else any
    while True:
        for source in rng.choice(len(lengths), size=1000, p=probabilities):
            if stop(exhausted):
                return order
            source = int(source)
            order.append(offsets[source] + current[source])
            current[source] += 1
            if current[source] >= lengths[source]:
                exhausted[source], current[source] = True, 0


def split_rows(rows: list[Row], val_size: float, seed: int) -> tuple[list[Row], list[Row]]:
    """Train and validation rows as Dataset.train_test_split(test_size=val_size, seed) makes
    them: one seeded permutation, the first part held out, the rest (in that order) trained on."""
    if val_size <= 1e-6:
        return rows, []
    count = len(rows)
    held = int(val_size) if val_size > 1 else math.ceil(val_size * count)
    if held >= count:
        raise TunedeckError(
            f"val_size {val_size} leaves no training rows out of {count}",
            hint="lower val_size",
        )
    permutation = [int(i) for i in _numpy().random.default_rng(seed).permutation(count)]
    return [rows[i] for i in permutation[held:]], [rows[i] for i in permutation[:held]]


def data_cutoff(config: RunConfig) -> int:
    """The cutoff_len rows are encoded with: one less when `packing` is set in the config (as
    LLaMA-Factory's DataArguments makes room for the pad token a pack ends with)."""
    return config.cutoff_len - 1 if config.packing or config.neat_packing else config.cutoff_len


def encode_rows(rows: list[Row], config: RunConfig, tokenizer) -> list[dict[str, Any]]:
    """Rows to examples, chunk by chunk as LLaMA-Factory's batched preprocessing does."""
    examples: list[dict[str, Any]] = []
    for start in range(0, len(rows), PREPROCESSING_BATCH):
        examples += encode_chunk(rows[start : start + PREPROCESSING_BATCH], config, tokenizer)[0]
    return examples


def encode_chunk(
    chunk: list[Conversation | None], config: RunConfig, tokenizer
) -> tuple[list[dict[str, Any]], list[int] | None]:
    """One chunk's examples, and the positions in the chunk of the rows dropped (None for a packed
    run, whose examples mix rows). A None conversation is an unreadable row: dropped."""
    kept = [c for c in chunk if c is not None]
    if config.stage == "pt" and config.effective_packing:
        ids = [_pretrain_ids(c, config, tokenizer) for c in kept]
        return chunk_examples(ids, data_cutoff(config), tokenizer), None
    if config.stage == "sft" and config.effective_packing:
        encoded = [encode_conversation(c, config, tokenizer) for c in kept]
        examples = [e for e in encoded if e is not None]
        cutoff, pad = data_cutoff(config), tokenizer.pad_token_id
        return pack_examples(examples, cutoff, pad, neat=config.neat_packing), None
    encoded = [None if c is None else encode_conversation(c, config, tokenizer) for c in chunk]
    dropped = [i for i, e in enumerate(encoded) if e is None]
    return [e for e in encoded if e is not None], dropped


def encode_conversation(
    conversation: Conversation, config: RunConfig, tokenizer
) -> dict[str, Any] | None:
    """One Conversation to one training example through tunedeck.core.templates.render.

    sft/pt: {input_ids, attention_mask, labels}; dpo: {prompt_ids, chosen_ids, rejected_ids};
    kto: {prompt_ids, completion_ids, label}. None for a row LLaMA-Factory drops.
    """
    if config.stage == "pt":
        rendered = render(
            conversation,
            config.template,
            tokenizer=tokenizer,
            stage="pt",
            cutoff_len=config.cutoff_len,
            explain=False,
        )
        ids = list(rendered.input_ids or ())
        return {
            "input_ids": ids,
            "attention_mask": [1] * len(ids),
            "labels": _lm_labels(ids, tokenizer),
        }
    if len(conversation.prompt) % 2 != 1:
        return None
    if config.stage == "sft" and len(conversation.response) != 1:
        return None
    if config.stage in PAIRWISE_STAGES and len(conversation.response) < 2:
        return None
    rendered = render(
        conversation,
        config.template,
        tokenizer=tokenizer,
        cutoff_len=data_cutoff(config),
        train_on_prompt=config.train_on_prompt,
        mask_history=config.mask_history,
        enable_thinking=config.enable_thinking,
        explain=False,
    )
    ids, labels = list(rendered.input_ids or ()), list(rendered.labels or ())
    if not ids:
        return None
    if config.stage == "sft":
        return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}
    prompt_len = _prompt_length(labels)
    if config.stage in PAIRWISE_STAGES:
        if rendered.rejected is None:
            return None
        rejected_ids = list(rendered.rejected.input_ids or ())
        rejected_prompt = _prompt_length(list(rendered.rejected.labels or ()))
        return {
            "prompt_ids": ids[:prompt_len],
            "chosen_ids": ids[prompt_len:],
            "rejected_ids": rejected_ids[rejected_prompt:],
        }
    return {
        "prompt_ids": ids[:prompt_len],
        "completion_ids": ids[prompt_len:],
        "label": bool(conversation.kto_tag),
    }


def pack_examples(
    examples: list[dict[str, Any]],
    cutoff_len: int,
    pad_token_id: int | None = 0,
    neat: bool = False,
) -> list[dict[str, Any]]:
    """SFT packing as LLaMA-Factory's: examples longer than cutoff_len dropped, the rest packed by
    a greedy knapsack over their lengths, each pack padded to cutoff_len + 1 (pad tokens attended,
    labels ignored) with position_ids restarting at every example. `neat` numbers the examples in
    attention_mask (1, 2, ...; pads 0) so that the collator keeps attention within each."""
    kept = [e for e in examples if len(e["input_ids"]) <= cutoff_len]
    by_length: dict[int, list[int]] = defaultdict(list)
    for index, example in enumerate(kept):
        by_length[len(example["input_ids"])].append(index)
    packs = []
    for knapsack in greedy_knapsack([len(e["input_ids"]) for e in kept], cutoff_len):
        pack: dict[str, list[int]] = {
            "input_ids": [],
            "attention_mask": [],
            "position_ids": [],
            "labels": [],
        }
        for number, length in enumerate(knapsack, start=1):
            example = kept[by_length[length].pop()]
            pack["input_ids"] += example["input_ids"]
            pack["labels"] += example["labels"]
            pack["attention_mask"] += [number if neat else 1] * length
            pack["position_ids"] += list(range(length))
        pad = cutoff_len + 1 - len(pack["input_ids"])
        pack["input_ids"] += [pad_token_id or 0] * pad
        pack["labels"] += [IGNORE_INDEX] * pad
        pack["attention_mask"] += [0 if neat else 1] * pad
        pack["position_ids"] += [0] * pad
        packs.append(pack)
    return packs


def greedy_knapsack(lengths: list[int], capacity: int) -> list[list[int]]:
    """Fill each pack with the longest length that still fits, shortest lengths last."""
    numbers = sorted(lengths)
    packs = []
    while numbers:
        pack, room = [], capacity
        while (index := bisect.bisect(numbers, room) - 1) >= 0:
            room -= numbers[index]
            pack.append(numbers.pop(index))
        packs.append(pack)
    return packs


def chunk_examples(texts: list[list[int]], block: int, tokenizer=None) -> list[dict[str, Any]]:
    """Pre-training packing: concatenate the texts' ids and cut the stream into blocks of
    cutoff_len, dropping the last partial block; a block starts with bos when the tokenizer adds
    one."""
    stream = [token for ids in texts for token in ids]
    whole = len(stream) // block * block
    bos = tokenizer.bos_token_id if _adds_bos(tokenizer) else None
    blocks = []
    for start in range(0, whole, block):
        ids = stream[start : start + block]
        if bos is not None:
            ids[0] = bos
        blocks.append(
            {"input_ids": ids, "attention_mask": [1] * block, "labels": _lm_labels(ids, tokenizer)}
        )
    return blocks


def _pretrain_ids(conversation: Conversation, config: RunConfig, tokenizer) -> list[int]:
    """A text's ids for the packed stream: whole, with the template's eos and without bos."""
    rendered = render(
        conversation,
        config.template,
        tokenizer=tokenizer,
        stage="pt",
        cutoff_len=NO_CUTOFF,
        explain=False,
    )
    ids = list(rendered.input_ids or ())
    return ids[1:] if _adds_bos(tokenizer) and ids else ids


def _lm_labels(ids: list[int], tokenizer) -> list[int]:
    """Language-model labels as DataCollatorForLanguageModeling makes them: pad ids ignored."""
    pad = getattr(tokenizer, "pad_token_id", None)
    return [IGNORE_INDEX if token == pad else token for token in ids]


def _adds_bos(tokenizer) -> bool:
    return bool(tokenizer is not None and getattr(tokenizer, "add_bos_token", False))


def _raw_conversations(spec, data_dir) -> Iterator[Row]:
    files, kind = data_files(spec, data_dir)
    converter = converter_for(spec, data_dir)
    for path in files:
        for row, _line, value, error in read_file_rows(path, kind):
            if error is not None:
                yield None
                continue
            conversation, _ = converter.convert(value, RowLocation(str(path), row))
            yield conversation


def _limited(rows: Iterator[Row], limit: int | None) -> Iterator[Row]:
    for count, row in enumerate(rows):
        if limit is not None and count >= limit:
            return
        yield row


def _numpy():
    try:
        import numpy
    except ImportError as exc:  # pragma: no cover - numpy comes with the training extra
        raise TunedeckError(
            "val_size and interleave_probs need numpy", hint="pip install 'tunedeck[train]'"
        ) from exc
    return numpy


def _prompt_length(labels: list[int]) -> int:
    for index, label in enumerate(labels):
        if label != IGNORE_INDEX:
            return index
    return len(labels)


def _token_count(example: dict[str, Any]) -> int:
    if "input_ids" in example:
        return len(example["input_ids"])
    return sum(len(v) for k, v in example.items() if k.endswith("_ids"))
