"""Token lengths of many rows, streamed: what `render` would count before `cutoff_len`, without
building segments or ids. The one length path for `tunedeck data lengths` and the app."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tunedeck.core.datasets.conversation import Conversation
from tunedeck.core.templates.elements import MessageBuilder
from tunedeck.core.templates.registry import Special, Template
from tunedeck.core.templates.render import NO_CUTOFF, render
from tunedeck.core.templates.tokenizer import resolve_template


def token_lengths(
    conversations: Iterable[Conversation],
    template: str | Template | None,
    tokenizer: Any,
    *,
    enable_thinking: bool | None = True,
    mask_history: bool = False,
    batch_size: int = 2048,
) -> Iterator[int]:
    """Yield each conversation's full token count before `cutoff_len`, exactly as `render`
    would count it, streaming: rows are planned in Python while the previous batch is encoded
    (fast tokenizers encode a batch in Rust on every core, without holding the GIL)."""
    tpl = resolve_template(template, tokenizer)
    count = _text_counter(tokenizer)
    with ThreadPoolExecutor(max_workers=1) as encoder:
        # every encode runs on the one encoder thread: a tokenizer is not safe to share
        plan = _LengthPlan(
            tpl,
            tokenizer,
            MessageBuilder(tpl, enable_thinking),
            mask_history,
            lambda texts: encoder.submit(count, texts).result(),
        )
        in_flight = None
        for batch in _batched(conversations, batch_size):
            texts, rows = plan.batch(batch)
            submitted = (encoder.submit(count, texts), rows)
            if in_flight is not None:
                yield from _sum_lengths(*in_flight)
            in_flight = submitted
        if in_flight is not None:
            yield from _sum_lengths(*in_flight)


def text_lengths(
    conversations: Iterable[Conversation],
    template: str | Template | None,
    *,
    mask_history: bool = False,
) -> Iterator[int]:
    """Yield each conversation's rendered length in characters, for when no tokenizer is at hand."""
    for conversation in conversations:
        rendered = render(conversation, template, cutoff_len=NO_CUTOFF, mask_history=mask_history)
        yield len(rendered.text)


class _LengthPlan:
    """Turns rows into the strings LLaMA-Factory would tokenize, without segments or ids.

    Elements made only of template text (the prefix, a default system prompt, empty thought
    blocks) and special tokens added by id are counted once per template and cached.
    """

    def __init__(
        self, tpl: Template, tok: Any, messages: MessageBuilder, mask_history: bool, count
    ) -> None:
        self.tok = tok
        self.messages = messages
        self.mask_history = mask_history
        self.count = count
        self.template_counts: dict[str, int] = {}
        self.special_counts: dict[Special, int] = {}
        self.efficient_eos = 1 if tpl.efficient_eos else 0
        eos = tpl.pretrain_eos or (tok.eos_token or "")
        bos = tok.bos_token if getattr(tok, "add_bos_token", False) else ""
        self.pretrain_ends = (bos or "", eos)

    def batch(self, conversations: list[Conversation]) -> tuple[list[str], list[tuple[int, int]]]:
        """All strings to encode for the batch, and per row (how many strings, fixed tokens)."""
        texts: list[str] = []
        rows: list[tuple[int, int]] = []
        for conv in conversations:
            before = len(texts)
            fixed = self.row(conv, texts)
            rows.append((len(texts) - before, fixed))
        return texts, rows

    def row(self, conv: Conversation, texts: list[str]) -> int:
        """Append the row's strings to `texts`; return the tokens counted without encoding."""
        if not conv.response:
            bos, eos = self.pretrain_ends
            texts.append(bos + (conv.prompt[0].content if conv.prompt else "") + eos)
            return 0
        if conv.kto_tag is not None and len(conv.response) >= 2:
            kept = conv.response[0] if conv.response[0].content else conv.response[1]
            encoded = self.messages.oneturn(conv, kept)
        elif len(conv.response) >= 2:
            encoded = self.messages.oneturn(conv, conv.response[0])
        else:
            encoded = self.messages.supervised(conv, self.mask_history)
        fixed = self.efficient_eos
        for message in encoded:
            for element in message.elements:
                if element.special is not None:
                    fixed += self._special(element.special)
                    continue
                text = element.text
                if not text:
                    continue
                if element.has_data:
                    texts.append(text)
                else:
                    fixed += self._template_text(text)
        return fixed

    def _template_text(self, text: str) -> int:
        known = self.template_counts.get(text)
        if known is None:
            known = self.count([text])[0]
            if len(self.template_counts) < 4096:
                self.template_counts[text] = known
        return known

    def _special(self, special: Special) -> int:
        known = self.special_counts.get(special)
        if known is None:
            tok = self.tok
            if special.kind == "bos":
                known = int(tok.bos_token_id is not None)
            elif special.kind == "eos":
                known = int(tok.eos_token_id is not None)
            else:
                known = 1
            self.special_counts[special] = known
        return known


def _text_counter(tok: Any):
    """`count(texts) -> [tokens]`, equal to the lengths `tok(texts, add_special_tokens=False)`
    gives; a stock fast tokenizer is asked through its Rust backend, which skips building ids,
    masks and offsets in Python."""
    backend = _stock_backend(tok)
    if backend is None:

        def count(texts: list[str]) -> list[int]:
            if not texts:
                return []
            return [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]

        return count
    encode = getattr(backend, "encode_batch_fast", None) or backend.encode_batch

    def count_fast(texts: list[str]) -> list[int]:
        return [len(e) for e in encode(texts, add_special_tokens=False)] if texts else []

    return count_fast


def _stock_backend(tok: Any):
    """The `tokenizers.Tokenizer` behind `tok` when calling `tok` does nothing but encode with
    it (no subclass override of the call path); None otherwise."""
    try:
        from transformers.tokenization_utils_tokenizers import TokenizersBackend
    except ImportError:
        return None
    cls = type(tok)
    if not isinstance(tok, TokenizersBackend) or any(
        getattr(cls, name) is not getattr(TokenizersBackend, name)
        for name in ("__call__", "_encode_plus", "set_truncation_and_padding")
    ):
        return None
    # a call leaves the backend as every call sets it: no truncation or padding, and special
    # tokens split or not as the tokenizer says; later direct calls see the same state
    tok(["probe"], add_special_tokens=False)
    return tok._tokenizer


def _batched(items: Iterable, size: int) -> Iterator[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _sum_lengths(counted, rows: list[tuple[int, int]]) -> Iterator[int]:
    counts = counted.result()
    position = 0
    for n, fixed in rows:
        yield fixed + sum(counts[position : position + n])
        position += n
