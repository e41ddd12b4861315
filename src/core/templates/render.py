"""Render a Conversation through a Template: text segments, and with a tokenizer the exact
input_ids/labels LLaMA-Factory's preprocessing builds (supervised, pairwise, feedback, pretrain).
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tunedeck.core.datasets.conversation import Conversation, Message, Role
from tunedeck.core.errors import TemplateError
from tunedeck.core.templates.registry import Special, Template
from tunedeck.core.templates.tokenizer import resolve_template
from tunedeck.core.templates.tools import describe_tools, format_calls, parse_calls

IGNORE_INDEX = -100


@dataclass(frozen=True)
class Segment:
    """A run of rendered text with one role, one origin (template or data) and one loss flag."""

    role: str
    text: str
    trainable: bool
    source: str  # "template" | "data"


@dataclass(frozen=True)
class Truncation:
    """What `cutoff_len` removed: token counts and, per turn part, the text that was cut."""

    original_tokens: int
    kept_tokens: int
    cutoff_len: int
    parts: tuple[dict, ...] = ()


@dataclass(frozen=True)
class Rendered:
    """The rendered conversation; ids and labels are None without a tokenizer."""

    segments: tuple[Segment, ...]
    input_ids: list[int] | None = None
    labels: list[int] | None = None
    truncated: Truncation | None = None
    kind: str = "sft"  # "sft" | "ranking" | "kto" | "pretrain"
    rejected: Rendered | None = field(default=None, repr=False)

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments)

    def to_json(self) -> dict:
        doc: dict[str, Any] = {
            "kind": self.kind,
            "segments": [
                {"role": s.role, "text": s.text, "trainable": s.trainable, "source": s.source}
                for s in self.segments
            ],
        }
        if self.input_ids is not None:
            doc["input_ids"] = self.input_ids
            doc["labels"] = self.labels
        doc["truncated"] = None
        if self.truncated is not None:
            t = self.truncated
            doc["truncated"] = {
                "original_tokens": t.original_tokens,
                "kept_tokens": t.kept_tokens,
                "cutoff_len": t.cutoff_len,
                "parts": list(t.parts),
            }
        if self.rejected is not None:
            doc["rejected"] = self.rejected.to_json()
        return doc


def render(
    conversation: Conversation,
    template: str | Template | None = None,
    *,
    tokenizer: Any = None,
    cutoff_len: int = 2048,
    train_on_prompt: bool = False,
    mask_history: bool = False,
    enable_thinking: bool | None = True,
    stage: str | None = None,
    today: _dt.date | None = None,
) -> Rendered:
    """Render one conversation as training sees it.

    `stage` "pt" forces pre-training text; otherwise the kind follows the row (one response:
    SFT, two: ranking or KTO, none: pre-training text). `today` pins llama3's tool-prompt date.
    """
    tpl = resolve_template(template, tokenizer)
    if train_on_prompt and tpl.efficient_eos:
        raise TemplateError(f"template '{tpl.name}' does not support train_on_prompt")
    if train_on_prompt and mask_history:
        raise TemplateError("mask_history cannot be combined with train_on_prompt")
    job = _Job(tpl, tokenizer, enable_thinking, today)
    if stage == "pt" or not conversation.response:
        return job.pretrain(conversation, cutoff_len)
    if len(conversation.prompt) % 2 != 1:
        raise TemplateError("the prompt must hold an odd number of turns, ending on a user turn")
    if conversation.kto_tag is not None and len(conversation.response) >= 2:
        kept = conversation.response[0]
        if not kept.content:
            kept = conversation.response[1]
        return job.oneturn(conversation, kept, cutoff_len, kind="kto")
    if len(conversation.response) >= 2:
        chosen, rejected = conversation.response[0], conversation.response[1]
        return job.pairwise(conversation, chosen, rejected, cutoff_len)
    return job.supervised(conversation, cutoff_len, train_on_prompt, mask_history)


def token_lengths(
    conversations: Iterable[Conversation],
    template: str | Template | None,
    tokenizer: Any,
    *,
    enable_thinking: bool | None = True,
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
            tpl, tokenizer, enable_thinking, lambda texts: encoder.submit(count, texts).result()
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


class _LengthPlan:
    """Turns rows into the strings LLaMA-Factory would tokenize, without segments or ids.

    Elements made only of template text (the prefix, a default system prompt, empty thought
    blocks) and special tokens added by id are counted once per template and cached.
    """

    def __init__(self, tpl: Template, tok: Any, thinking: bool | None, count) -> None:
        self.t = tpl
        self.tok = tok
        self.job = _Job(tpl, None, thinking, None)
        self.count = count
        self.template_counts: dict[str, int] = {}
        self.special_counts: dict[Special, int] = {}
        self.efficient_eos = 1 if tpl.efficient_eos else 0
        eos = "<|end_of_text|>" if tpl.name == "llama3" else (tok.eos_token or "")
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
            encoded = self.job.oneturn_messages(conv, kept)
        elif len(conv.response) >= 2:
            encoded = self.job.oneturn_messages(conv, conv.response[0])
        else:
            encoded = self.job.supervised_messages(conv, False)
        fixed = self.efficient_eos
        for message in encoded:
            for element in message.elements:
                pieces = element[1] if isinstance(element, tuple) else element
                if isinstance(pieces, Special):
                    fixed += self._special(pieces)
                    continue
                text = "".join([p[0] for p in pieces])
                if not text:
                    continue
                if any(source == "data" and piece for piece, source in pieces):
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


# An element is what LLaMA-Factory tokenizes in one call: a string built from pieces
# (text, source), or a special token added by id.
_Piece = tuple[str, str]


@dataclass
class _Message:
    role: str
    elements: list[list[_Piece] | Special]
    ids: list[int] | None = None


class _Job:
    def __init__(self, template: Template, tokenizer: Any, thinking: bool | None, today):
        self.t = template
        self.tok = tokenizer
        self.thinking = thinking
        self.today = today

    # -- the four preprocessing paths -------------------------------------------------------

    def supervised(self, conv: Conversation, cutoff: int, on_prompt: bool, mask: bool):
        t = self.t
        encoded = self.supervised_messages(conv, mask)
        n_turns = len(encoded) // 2
        last_turn = n_turns - 1
        seg_train: dict[int, bool] = {}
        for k in range(n_turns):
            seg_train[2 * k] = on_prompt
            seg_train[2 * k + 1] = not (mask and k != last_turn)
        tail = [self._special_piece(Special("eos"))] if t.efficient_eos else []
        segments = self._segments(encoded, seg_train, tail)
        if self.tok is None:
            return Rendered(segments=segments, kind="sft")

        eos_id = self.tok.eos_token_id
        pairs = [(encoded[2 * k].ids, encoded[2 * k + 1].ids, k) for k in range(n_turns)]
        if mask:
            pairs = pairs[::-1]
        input_ids: list[int] = []
        labels: list[int] = []
        total = 1 if t.efficient_eos else 0
        cuts: list[dict] = []
        original = sum(len(s) + len(g) for s, g, _ in pairs) + total
        for order, (source, target, turn) in enumerate(pairs):
            if total >= cutoff:
                cuts += _cut(self.tok, turn, "prompt", source, 0)
                cuts += _cut(self.tok, turn, "response", target, 0)
                continue
            s_len, t_len = infer_seqlen(len(source), len(target), cutoff - total)
            cuts += _cut(self.tok, turn, "prompt", source, s_len)
            cuts += _cut(self.tok, turn, "response", target, t_len)
            source, target = source[:s_len], target[:t_len]
            total += s_len + t_len
            if on_prompt:
                source_labels = list(source)
            elif t.efficient_eos and order != 0:
                source_labels = [eos_id] + [IGNORE_INDEX] * (s_len - 1)
            else:
                source_labels = [IGNORE_INDEX] * s_len
            target_labels = [IGNORE_INDEX] * t_len if mask and order != 0 else list(target)
            if mask:
                input_ids = source + target + input_ids
                labels = source_labels + target_labels + labels
            else:
                input_ids += source + target
                labels += source_labels + target_labels
        if t.efficient_eos:
            input_ids.append(eos_id)
            labels.append(eos_id)
        return Rendered(
            segments=segments,
            input_ids=input_ids,
            labels=labels,
            truncated=_truncation(original, len(input_ids), cutoff, cuts),
            kind="sft",
        )

    def oneturn(self, conv: Conversation, answer: Message, cutoff: int, kind: str):
        """Prompt = every turn before the answer (masked), target = the answer."""
        t = self.t
        encoded = self.oneturn_messages(conv, answer)
        trainable = {i: False for i in range(len(encoded) - 1)}
        trainable[len(encoded) - 1] = True
        tail = [self._special_piece(Special("eos"))] if t.efficient_eos else []
        segments = self._segments(encoded, trainable, tail)
        if self.tok is None:
            return Rendered(segments=segments, kind=kind)
        prompt_ids = [i for m in encoded[:-1] for i in m.ids]
        answer_ids = list(encoded[-1].ids) + ([self.tok.eos_token_id] if t.efficient_eos else [])
        return self._pair_ids(segments, prompt_ids, answer_ids, len(answer_ids), cutoff, kind)

    def pairwise(self, conv: Conversation, chosen: Message, rejected: Message, cutoff: int):
        chosen_r = self.oneturn(conv, chosen, cutoff, "ranking")
        rejected_r = self.oneturn(conv, rejected, cutoff, "ranking")
        if self.tok is None:
            return Rendered(segments=chosen_r.segments, kind="ranking", rejected=rejected_r)
        # both sides are truncated with the longer response's length, as DPO training does
        longest = max(chosen_r._answer_len, rejected_r._answer_len)  # type: ignore[attr-defined]
        out = []
        for side in (chosen_r, rejected_r):
            p, a = side._prompt_ids, side._answer_ids  # type: ignore[attr-defined]
            out.append(self._pair_ids(side.segments, p, a, longest, cutoff, "ranking"))
        return Rendered(
            segments=out[0].segments,
            input_ids=out[0].input_ids,
            labels=out[0].labels,
            truncated=out[0].truncated,
            kind="ranking",
            rejected=out[1],
        )

    def pretrain(self, conv: Conversation, cutoff: int):
        text = conv.prompt[0].content if conv.prompt else ""
        eos_text = (
            "<|end_of_text|>" if self.t.name == "llama3" else self._special_text(Special("eos"))
        )
        bos = bool(self.tok is not None and getattr(self.tok, "add_bos_token", False))
        segs = []
        if bos:
            segs.append(Segment("user", self.tok.bos_token, True, "template"))
        segs += [Segment("user", text, True, "data"), Segment("user", eos_text, True, "template")]
        if self.tok is None:
            return Rendered(segments=tuple(segs), kind="pretrain")
        full = "".join(s.text for s in segs)
        ids = self.tok(full, add_special_tokens=False)["input_ids"]
        kept = ids[:cutoff]
        cuts = _cut(self.tok, 0, "text", ids, len(kept))
        return Rendered(
            segments=tuple(segs),
            input_ids=kept,
            labels=list(kept),
            truncated=_truncation(len(ids), len(kept), cutoff, cuts),
            kind="pretrain",
        )

    # -- the messages each path encodes (shared with token counting) -----------------------

    def supervised_messages(self, conv: Conversation, mask: bool) -> list[_Message]:
        t = self.t
        messages = [*conv.prompt, conv.response[0]]
        last = len(messages) - 2
        empty_thought_turns: list[int] = []
        if t.reasoning:
            messages = list(messages)
            if self.thinking is False:
                for i in range(1, len(messages), 2):
                    messages[i] = _strip_thought(t, messages[i])
            if mask:  # history thoughts are dropped; only the last turn keeps its own
                for i in range(1, len(messages) - 2, 2):
                    messages[i] = _strip_thought(t, messages[i])
            turns = [last] if mask else range(0, len(messages), 2)
            empty_thought_turns = [i for i in turns if not _has_thought(t, messages[i + 1])]
        encoded = self._encode(messages, conv.system, conv.tools)
        for i in empty_thought_turns:
            self._add_empty_thought(encoded, i)
        return encoded

    def oneturn_messages(self, conv: Conversation, answer: Message) -> list[_Message]:
        t = self.t
        messages = [*conv.prompt, answer]
        add_thought = False
        if t.reasoning:
            for i in range(1, len(messages) - 2, 2):
                messages[i] = _strip_thought(t, messages[i])
            if self.thinking is False:
                messages[-1] = _strip_thought(t, messages[-1])
            add_thought = not _has_thought(t, messages[-1])
        encoded = self._encode(messages, conv.system, conv.tools)
        if add_thought:
            self._add_empty_thought(encoded, len(encoded) - 2)
        return encoded

    # -- helpers --------------------------------------------------------------------------

    def _pair_ids(self, segments, prompt_ids, answer_ids, answer_len_for_split, cutoff, kind):
        s_len, t_len = infer_seqlen(len(prompt_ids), answer_len_for_split, cutoff)
        cuts = _cut(self.tok, 0, "prompt", prompt_ids, s_len) + _cut(
            self.tok, 0, "response", answer_ids, t_len
        )
        p, a = prompt_ids[:s_len], answer_ids[:t_len]
        rendered = Rendered(
            segments=segments,
            input_ids=p + a,
            labels=[IGNORE_INDEX] * len(p) + a,
            truncated=_truncation(len(prompt_ids) + len(answer_ids), len(p) + len(a), cutoff, cuts),
            kind=kind,
        )
        object.__setattr__(rendered, "_prompt_ids", prompt_ids)
        object.__setattr__(rendered, "_answer_ids", answer_ids)
        object.__setattr__(rendered, "_answer_len", len(answer_ids))
        return rendered

    def _encode(self, messages: list[Message], system: str, tools: str) -> list[_Message]:
        t = self.t
        system_source = "data" if system else "template"
        system = system or t.default_system
        out: list[_Message] = []
        for i, msg in enumerate(messages):
            role = msg.role.value if isinstance(msg.role, Role) else str(msg.role)
            elements: list = []
            fused: list[_Piece] = []
            if i == 0:
                elements += [_as_element(p, "template") for p in t.prefix]
                if system or tools:
                    tool_text = (
                        describe_tools(t.tool_format, tools, today=self.today) if tools else ""
                    )
                    content = [(system, system_source), (tool_text, "data")]
                    sys_elements = _fill(t.system, content)
                    if t.fuse_system:
                        first = sys_elements[0]
                        fused = first if isinstance(first, list) else []
                    else:
                        elements += [("system", e) for e in sys_elements]
            if role == "user":
                body = [*fused, (msg.content, "data")]
                elements += _fill(t.user, body, idx=str(i // 2))
            elif role == "assistant":
                elements += _fill(t.assistant, [(msg.content, "data")])
            elif role == "observation":
                elements += _fill(t.observation, [(msg.content, "data")])
            elif role == "function":
                text = self._function_text(msg.content)
                elements += _fill(t.function, [(text, "data")])
            else:
                raise TemplateError(f"unexpected role '{role}' in a conversation")
            out.append(_Message(role=role, elements=elements))
        if self.tok is not None:
            self._tokenize(out)
        return out

    def _function_text(self, content: str) -> str:
        t = self.t
        if t.fuse_system:  # these templates format calls without thought handling
            return format_calls(t.function_format, parse_calls(content))
        call_match = _span(t.tool_call_words, content)
        if call_match is None:
            thought = _span(t.thought_words, content)
            json_part = content.replace(thought.group(0), "") if thought else content
            text = format_calls(t.function_format, parse_calls(json_part))
            return thought.group(0) + text if thought else text
        before = content.replace(call_match.group(0), "")
        return before + format_calls(t.function_format, parse_calls(call_match.group(1)))

    def _tokenize(self, messages: list[_Message]) -> None:
        texts = []
        for m in messages:
            for e in m.elements:
                pieces = e[1] if isinstance(e, tuple) else e
                if isinstance(pieces, list):
                    text = "".join(p[0] for p in pieces)
                    if text:
                        texts.append(text)
        batches = (
            iter(self.tok(texts, add_special_tokens=False)["input_ids"]) if texts else iter(())
        )
        for m in messages:
            ids: list[int] = []
            for e in m.elements:
                pieces = e[1] if isinstance(e, tuple) else e
                if isinstance(pieces, list):
                    if "".join(p[0] for p in pieces):
                        ids += next(batches)
                else:
                    ids += self._special_ids(pieces)
            m.ids = ids

    def _special_ids(self, special: Special) -> list[int]:
        tok = self.tok
        if special.kind == "bos":
            return [tok.bos_token_id] if tok.bos_token_id is not None else []
        if special.kind == "eos":
            return [tok.eos_token_id] if tok.eos_token_id is not None else []
        token_id = tok.convert_tokens_to_ids(special.token)
        if token_id is None or (tok.unk_token_id is not None and token_id == tok.unk_token_id):
            raise TemplateError(f"the tokenizer has no token {special.token!r}")
        return [token_id]

    def _special_text(self, special: Special) -> str:
        tok = self.tok
        if special.kind == "token":
            return special.token
        if tok is not None:
            token = tok.bos_token if special.kind == "bos" else tok.eos_token
            return token or ""
        if special.kind == "eos" and self.t.replace_eos and self.t.stop_words:
            return self.t.stop_words[0]
        return "<bos>" if special.kind == "bos" else "<eos>"

    def _special_piece(self, special: Special) -> Segment:
        return Segment("assistant", self._special_text(special), True, "template")

    def _add_empty_thought(self, encoded: list[_Message], turn: int):
        """An empty <think></think> block: trained on in the response when thinking is on,
        appended to the prompt (masked) otherwise."""
        words = self.t.thought_words[0] + self.t.thought_words[1]
        piece = [(words, "template")]
        ids = self.tok(words, add_special_tokens=False)["input_ids"] if self.tok else None
        if not self.thinking:
            msg = encoded[turn]
            msg.elements.append(("thought", piece))
            if ids is not None:
                msg.ids = msg.ids + ids
        else:
            msg = encoded[turn + 1]
            msg.elements.insert(0, ("thought", piece))
            if ids is not None:
                msg.ids = ids + msg.ids

    def _segments(self, encoded: list[_Message], trainable: dict[int, bool], tail: list):
        segs: list[Segment] = []
        for i, m in enumerate(encoded):
            train = trainable.get(i, False)
            for e in m.elements:
                role = m.role
                pieces = e
                if isinstance(e, tuple):
                    tag, pieces = e
                    if tag == "system":
                        role = "system"
                    elif tag == "prefix":
                        role = "prefix"
                    elif tag == "thought":
                        role = "assistant"
                if isinstance(pieces, Special):
                    pieces = [(self._special_text(pieces), "template")]
                for text, source in pieces:
                    if text:
                        _append(segs, Segment(role, text, train, source))
        for seg in tail:
            _append(segs, seg)
        return tuple(segs)


def infer_seqlen(source_len: int, target_len: int, cutoff_len: int) -> tuple[int, int]:
    """Split a token budget between prompt and response the way LLaMA-Factory does: a short
    response is kept whole, a short prompt is kept whole, otherwise both shrink in proportion."""
    if target_len * 2 < cutoff_len:
        target_cap = cutoff_len
    elif source_len * 2 < cutoff_len:
        target_cap = cutoff_len - source_len
    else:
        target_cap = int(cutoff_len * (target_len / (source_len + target_len)))
    new_target = min(target_cap, target_len)
    new_source = min(max(cutoff_len - new_target, 0), source_len)
    return new_source, new_target


def _as_element(part, source: str):
    if isinstance(part, Special):
        return ("prefix", part)
    return ("prefix", [(part, source)])


def _fill(slots: tuple, content: list[_Piece], idx: str | None = None) -> list:
    """Apply a slot list: the first `{{content}}` of each string slot becomes `content`."""
    elements: list = []
    for slot in slots:
        if isinstance(slot, Special):
            elements.append(slot)
            continue
        before, mark, after = slot.partition("{{content}}")
        pieces = [(before, "template")]
        if mark:
            pieces += content
            pieces.append((after, "template"))
        if idx is not None:
            pieces = _replace_first(pieces, "{{idx}}", idx)
        elements.append(pieces)
    return elements


def _replace_first(pieces: list[_Piece], needle: str, value: str) -> list[_Piece]:
    for n, (text, source) in enumerate(pieces):
        if needle in text:
            pieces = list(pieces)
            pieces[n] = (text.replace(needle, value, 1), source)
            break
    return pieces


def _append(segs: list[Segment], seg: Segment) -> None:
    if segs:
        prev = segs[-1]
        if (prev.role, prev.trainable, prev.source) == (seg.role, seg.trainable, seg.source):
            segs[-1] = Segment(prev.role, prev.text + seg.text, prev.trainable, prev.source)
            return
    segs.append(seg)


def _span(words: tuple[str, str], content: str):
    pattern = re.compile(f"{re.escape(words[0])}(.*?){re.escape(words[1])}", re.DOTALL)
    return pattern.search(content)


def _strip_thought(t: Template, msg: Message) -> Message:
    pattern = re.compile(
        f"{re.escape(t.thought_words[0])}(.*?){re.escape(t.thought_words[1])}", re.DOTALL
    )
    return Message(msg.role, pattern.sub("", msg.content).lstrip("\n"))


def _has_thought(t: Template, msg: Message) -> bool:
    return t.thought_words[0].strip() in msg.content or t.thought_words[1].strip() in msg.content


def _cut(tok, turn: int, part: str, ids: list[int], kept: int) -> list[dict]:
    if kept >= len(ids):
        return []
    removed = ids[kept:]
    return [
        {
            "turn": turn,
            "part": part,
            "removed_tokens": len(removed),
            "removed_text": tok.decode(removed, skip_special_tokens=False),
        }
    ]


def _truncation(original: int, kept: int, cutoff: int, cuts: list[dict]) -> Truncation | None:
    if not cuts:
        return None
    return Truncation(original, kept, cutoff, tuple(cuts))
