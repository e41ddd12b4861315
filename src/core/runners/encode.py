"""A run's data as a trainer takes it: rows -> input_ids/labels/attention_mask for sft and pt
(packed or not), prompt/chosen/rejected ids for dpo, prompt/completion/label for kto.

Plain Python over the converter and the templates (the same ids and labels `tunedeck data
preview` shows): no torch, so it is tested, and can run, without the training extra.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from tunedeck.core.config import RunConfig
from tunedeck.core.datasets import iter_conversations, load_dataset_info
from tunedeck.core.datasets.conversation import Conversation
from tunedeck.core.templates import IGNORE_INDEX, NO_CUTOFF, render


@dataclass
class EncodedData:
    """Tokenized examples ready for a trainer: dicts of input_ids/labels (or prompt/chosen/rejected)."""

    train: list[dict[str, Any]]
    eval: list[dict[str, Any]] | None
    tokens: int  # number of training tokens in one pass over `train`


def encode_dataset(config: RunConfig, tokenizer) -> EncodedData:
    """Read every dataset with our converter, render it with our template, split off validation."""
    info = load_dataset_info(config.dataset_dir)
    examples = []
    for name in config.datasets:
        spec = info.get(name)
        rows = []
        for conversation in iter_conversations(spec, info.data_dir):
            if config.max_samples is not None and len(rows) >= config.max_samples:
                break
            encoded = encode_conversation(conversation, config, tokenizer)
            if encoded is not None:
                rows.append(encoded)
        examples.extend(rows)
    if config.stage == "pt" and config.effective_packing:
        examples = chunk_examples(examples, config.cutoff_len)
    elif config.stage == "sft" and config.effective_packing:
        examples = pack_examples(examples, config.cutoff_len)
    train, held_out = _split(examples, config.val_size, config.seed)
    if config.eval_datasets:
        held_out = [
            e
            for name in config.eval_datasets
            for c in iter_conversations(info.get(name), info.data_dir)
            if (e := encode_conversation(c, config, tokenizer)) is not None
        ]
    return EncodedData(
        train=train, eval=held_out or None, tokens=sum(_token_count(e) for e in train)
    )


def encode_conversation(
    conversation: Conversation, config: RunConfig, tokenizer
) -> dict[str, Any] | None:
    """One Conversation to one training example through tunedeck.core.templates.render.

    sft/pt: {input_ids, attention_mask, labels}; dpo: {prompt_ids, chosen_ids, rejected_ids};
    kto: {prompt_ids, completion_ids, label}. None when nothing would be trained on.
    """
    pretrain = config.stage == "pt"
    rendered = render(
        conversation,
        config.template,
        tokenizer=tokenizer,
        # packed pre-training text is cut into blocks later, not truncated row by row
        cutoff_len=NO_CUTOFF if pretrain and config.effective_packing else config.cutoff_len,
        train_on_prompt=config.train_on_prompt,
        mask_history=config.mask_history,
        stage="pt" if pretrain else None,
    )
    ids, labels = list(rendered.input_ids or ()), list(rendered.labels or ())
    if not ids:
        return None
    if config.stage in ("sft", "pt"):
        if all(label == IGNORE_INDEX for label in labels):
            return None
        return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}
    prompt_len = _prompt_length(labels)
    if config.stage == "dpo":
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


def pack_examples(examples: list[dict[str, Any]], cutoff_len: int) -> list[dict[str, Any]]:
    """Concatenate examples into sequences of at most cutoff_len tokens (greedy, in order)."""
    packed: list[dict[str, Any]] = []
    current: dict[str, list[int]] = {"input_ids": [], "attention_mask": [], "labels": []}
    for example in examples:
        ids = example["input_ids"]
        for start in range(0, len(ids), cutoff_len):
            piece = {k: example[k][start : start + cutoff_len] for k in current}
            if len(current["input_ids"]) + len(piece["input_ids"]) > cutoff_len:
                packed.append(current)
                current = {k: [] for k in current}
            for key in current:
                current[key].extend(piece[key])
    if current["input_ids"]:
        packed.append(current)
    return packed


def chunk_examples(examples: list[dict[str, Any]], block_size: int) -> list[dict[str, Any]]:
    """Pre-training packing: concatenate every text and cut the stream into block_size blocks."""
    stream = [token for example in examples for token in example["input_ids"]]
    blocks = [stream[i : i + block_size] for i in range(0, len(stream), block_size)]
    return [{"input_ids": b, "attention_mask": [1] * len(b), "labels": list(b)} for b in blocks]


def _prompt_length(labels: list[int]) -> int:
    for index, label in enumerate(labels):
        if label != IGNORE_INDEX:
            return index
    return len(labels)


def _split(examples: list, val_size: float, seed: int) -> tuple[list, list]:
    if not val_size:
        return examples, []
    count = int(val_size) if val_size >= 1 else math.ceil(len(examples) * val_size)
    count = min(count, max(len(examples) - 1, 0))
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    held = set(order[:count])
    return [e for i, e in enumerate(examples) if i not in held], [examples[i] for i in sorted(held)]


def _token_count(example: dict[str, Any]) -> int:
    if "input_ids" in example:
        return len(example["input_ids"])
    return sum(len(v) for k, v in example.items() if k.endswith("_ids"))
