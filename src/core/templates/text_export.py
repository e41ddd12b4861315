"""Any dataset entry as plain `{"text": ...}` rows, e.g. for GPTQ calibration.

GPTQ calibration in LLaMA-Factory wants a `text` column and rows longer than the calibration
length; SFT, ranking, KTO and multimodal data have neither. This turns every kind of row into
text (optionally through a chat template), drops media placeholders, and can pack short rows
together until each output row reaches a token count.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tunedeck.core.datasets import Conversation, Message, iter_conversations
from tunedeck.core.errors import Location, UsageError
from tunedeck.core.templates import NO_CUTOFF, load_tokenizer, render

MEDIA_PLACEHOLDER = re.compile(r"<(?:image|video|audio)>")
PACK_SEPARATOR = "\n"


def export_text(
    spec: Any,
    data_dir: str | Path,
    *,
    template: Any = None,
    tokenizer: Any = None,
    pack_to: int | None = None,
    samples: int | None = None,
    seed: int = 0,
) -> list[dict]:
    """Rows of `{"text": ...}` for one dataset entry, deterministic for a given seed.

    template: a template name/object, rendered as training would (full text, no cutoff);
    tokenizer: a loaded tokenizer or a folder, needed for `pack_to` and the "hf" template;
    pack_to: join rows with a newline until each has at least that many tokens (the last
    row may be shorter); samples: keep this many rows, drawn with `seed`.
    """
    if pack_to is not None and pack_to <= 0:
        raise UsageError(f"pack_to must be a positive token count, not {pack_to}")
    if samples is not None and samples <= 0:
        raise UsageError(f"samples must be a positive row count, not {samples}")
    if isinstance(tokenizer, (str, Path)):
        tokenizer = load_tokenizer(tokenizer, template)
    if pack_to is not None and tokenizer is None:
        raise UsageError(
            "packing to a token count needs a tokenizer", hint="give a tokenizer folder"
        )

    texts = [t for t in iter_texts(iter_conversations(spec, data_dir), template, tokenizer) if t]
    rng = random.Random(seed)
    if pack_to is None:
        if samples is not None and samples < len(texts):
            picked = sorted(rng.sample(range(len(texts)), samples))
            texts = [texts[i] for i in picked]
        return [{"text": t} for t in texts]
    if samples is not None:
        rng.shuffle(texts)
    packed = pack_texts(texts, tokenizer, pack_to, limit=samples)
    return [{"text": t} for t in packed]


def check_output(output: str | Path) -> Path:
    """The file export rows will go to, refused before any work when it cannot be one: a
    folder, or a path through a file. Missing folders are fine (write_rows makes them)."""
    output = Path(output)
    if output.is_dir():
        raise UsageError(
            "is a folder, not a file",
            location=Location(file=str(output)),
            hint=f"give a file name, e.g. -o {output / 'calibration.jsonl'}",
        )
    for parent in output.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(
                    f"cannot be written: {parent} is a file, not a folder",
                    location=Location(file=str(output)),
                    hint="choose an output path in a folder",
                )
            break
    return output


def write_rows(rows: Iterable[dict], output: str | Path) -> Path:
    """Write rows as JSON Lines, through a temporary file beside it, so a failed write (no
    space, no permission) leaves no half-written file; the error names the file."""
    import orjson

    output = check_output(output)
    temporary = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with temporary.open("wb") as handle:
            for row in rows:
                handle.write(orjson.dumps(row) + b"\n")
        os.replace(temporary, output)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise UsageError(
            f"cannot be written: {error.strerror or error}",
            location=Location(file=str(output)),
            hint="choose another output path with -o",
        ) from None
    return output


def iter_texts(
    conversations: Iterator[Conversation], template: Any = None, tokenizer: Any = None
) -> Iterator[str]:
    """The text of each conversation: plain turns joined by newlines, or a template rendering."""
    for conv in conversations:
        conv = _without_media(conv)
        if template is None:
            yield plain_text(conv)
        else:
            yield render(conv, template, tokenizer=tokenizer, cutoff_len=NO_CUTOFF).text


def plain_text(conv: Conversation) -> str:
    """System, prompt turns and the answer (ranking: chosen; KTO: the labelled one), joined."""
    parts = [conv.system] if conv.system else []
    parts += [m.content for m in conv.prompt]
    answers = [m.content for m in conv.response if m.content]
    if answers:
        parts.append(answers[0])
    return PACK_SEPARATOR.join(p for p in parts if p)


def pack_texts(texts: list[str], tokenizer: Any, pack_to: int, limit: int | None = None):
    """Join consecutive texts until each joined text tokenizes to at least `pack_to` tokens."""
    counts = _token_counts(tokenizer, texts)
    out: list[str] = []
    current: list[str] = []
    estimate = 0
    for text, count in zip(texts, counts, strict=True):
        current.append(text)
        estimate += count
        if estimate >= pack_to:
            joined = PACK_SEPARATOR.join(current)
            # tokens of a join can differ from the sum of the parts: check the real count
            real = len(tokenizer(joined, add_special_tokens=False)["input_ids"])
            if real >= pack_to:
                out.append(joined)
                current, estimate = [], 0
                if limit is not None and len(out) >= limit:
                    return out
            else:
                estimate = real
    if current:
        out.append(PACK_SEPARATOR.join(current))
    return out[:limit] if limit is not None else out


def _token_counts(tokenizer: Any, texts: list[str], batch: int = 1024) -> list[int]:
    counts: list[int] = []
    for start in range(0, len(texts), batch):
        encoded = tokenizer(texts[start : start + batch], add_special_tokens=False)["input_ids"]
        counts += [len(ids) for ids in encoded]
    return counts


def _without_media(conv: Conversation) -> Conversation:
    if not (conv.images or conv.videos or conv.audios):
        return conv

    def clean(messages: tuple[Message, ...]) -> tuple[Message, ...]:
        return tuple(
            Message(m.role, MEDIA_PLACEHOLDER.sub("", m.content).strip()) for m in messages
        )

    return Conversation(
        prompt=clean(conv.prompt),
        response=clean(conv.response),
        system=conv.system,
        tools=conv.tools,
        kto_tag=conv.kto_tag,
        location=conv.location,
    )
