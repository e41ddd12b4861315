"""The training batches as the engine feeds them: the sampler's order, grouping into batches of
per_device_train_batch_size, and the collator's padding (the same as LLaMA-Factory's Trainer gets).

Torch-free: the order is transformers' Trainer sampler (accelerate's SeedableRandomSampler, a
torch.randperm over a generator seeded with seed + epoch) recomputed with a plain Mersenne
Twister, and `collate` is the function the runner's collator calls before making tensors.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from tunedeck.core.config import RunConfig
from tunedeck.core.templates import IGNORE_INDEX

SFT_PAD_MULTIPLE = 8  # LLaMA-Factory's sft collator pads each batch to a multiple of 8
PADDED_KEYS = ("input_ids", "attention_mask", "labels", "position_ids")


@dataclass(frozen=True)
class BatchRow:
    """One row of a batch: which example it is, its padded and real length, trained tokens."""

    example: int
    tokens: int
    padded: int
    trained: int


@dataclass(frozen=True)
class Batch:
    """One training step's batch (one device, one accumulation micro-step)."""

    step: int
    rows: tuple[BatchRow, ...]
    features: dict[str, list[list[int]]]

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "rows": [
                {"example": r.example, "tokens": r.tokens, "padded": r.padded, "trained": r.trained}
                for r in self.rows
            ],
            **self.features,
        }


def epoch_order(count: int, seed: int, epoch: int = 0) -> Iterator[int]:
    """Example indices in the order the Trainer's sampler draws them in `epoch`, drawn lazily:
    the shuffle swaps position i with a later one and never touches it again, so the first
    batches cost their own draws only (a dict holds the moved indices)."""
    draw = _mt19937(seed + epoch)
    moved: dict[int, int] = {}
    for i in range(count - 1):
        j = i + next(draw) % (count - i)
        here = moved.pop(i, i)
        if j == i:
            yield here
        else:
            yield moved.get(j, j)
            moved[j] = here
    if count:
        yield moved.get(count - 1, count - 1)


def pad_multiple(config: RunConfig) -> int | None:
    """The multiple a batch's length is padded to: 8 for sft, none for pre-training."""
    return SFT_PAD_MULTIPLE if config.stage == "sft" else None


def collate(
    examples: list[dict[str, Any]], pad_token_id: int, multiple: int | None = None
) -> dict[str, list[list[int]]]:
    """Right-pad a batch to its longest row (rounded up to `multiple`): input_ids with the pad id,
    attention_mask with 0, labels with IGNORE_INDEX, position_ids with 0."""
    longest = max(len(e["input_ids"]) for e in examples)
    if multiple:
        longest = -(-longest // multiple) * multiple
    fill = {
        "input_ids": pad_token_id,
        "attention_mask": 0,
        "labels": IGNORE_INDEX,
        "position_ids": 0,
    }
    batch: dict[str, list[list[int]]] = {}
    for key in PADDED_KEYS:
        if key in examples[0]:
            batch[key] = [list(e[key]) + [fill[key]] * (longest - len(e[key])) for e in examples]
    return batch


def first_batches(
    examples: list[dict[str, Any]], config: RunConfig, pad_token_id: int, count: int
) -> list[Batch]:
    """The first `count` batches of one device's training, epoch after epoch (sft and pt)."""
    size = config.per_device_train_batch_size
    batches: list[Batch] = []
    for step, indices in enumerate(_batch_indices(len(examples), size, config.seed), start=1):
        if len(batches) >= count:
            break
        chosen = [examples[i] for i in indices]
        features = collate(chosen, pad_token_id, pad_multiple(config))
        rows = tuple(
            BatchRow(
                example=i,
                tokens=len(e["input_ids"]),
                padded=len(features["input_ids"][0]),
                trained=sum(1 for label in e["labels"][1:] if label != IGNORE_INDEX),
            )
            for i, e in zip(indices, chosen, strict=True)
        )
        batches.append(Batch(step=step, rows=rows, features=features))
    return batches


def _batch_indices(count: int, size: int, seed: int) -> Iterator[list[int]]:
    if count == 0:
        return
    epoch = 0
    while True:
        order = epoch_order(count, seed, epoch)
        while batch := list(islice(order, size)):
            yield batch
        epoch += 1


def _mt19937(seed: int) -> Iterator[int]:
    """32-bit outputs of the Mersenne Twister seeded as torch.Generator.manual_seed seeds it."""
    state = [seed & 0xFFFFFFFF]
    for i in range(1, 624):
        state.append((1812433253 * (state[-1] ^ (state[-1] >> 30)) + i) & 0xFFFFFFFF)
    while True:
        for i in range(624):
            y = (state[i] & 0x80000000) | (state[(i + 1) % 624] & 0x7FFFFFFF)
            state[i] = state[(i + 397) % 624] ^ (y >> 1) ^ (0x9908B0DF if y & 1 else 0)
        for y in state:
            y ^= y >> 11
            y ^= (y << 7) & 0x9D2C5680
            y ^= (y << 15) & 0xEFC60000
            yield y ^ (y >> 18)


def preview_batches(config: RunConfig, count: int, status=None) -> list[Batch]:
    """The first `count` training batches of a run config, from the runner's own prepared data
    (built, or read from its cache: the run that follows reads the same)."""
    return prepared_batches(config, count, status)[0]


def prepared_batches(config: RunConfig, count: int, status=None):
    """(the first `count` batches, the prepared data they come from)."""
    from tunedeck.core.errors import UsageError
    from tunedeck.core.runners.prepared import prepare_dataset
    from tunedeck.core.runners.train import load_tokenizer

    if config.stage not in ("sft", "pt"):
        raise UsageError(
            f"batches are shown for sft and pt runs, not {config.stage}",
            hint="preview a row without --batch",
        )
    tokenizer = load_tokenizer(config)
    prepared = prepare_dataset(config, tokenizer, status)
    return first_batches(prepared.train, config, tokenizer.pad_token_id, count), prepared
