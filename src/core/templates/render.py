"""Render a Conversation through a Template: text segments, and with a tokenizer the exact
input_ids/labels LLaMA-Factory's preprocessing builds (supervised, pairwise, feedback, pretrain).

Token counts without segments or ids are lengths.py's; both lay messages out with elements.py.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

from tunedeck.core.datasets.conversation import Conversation, Message
from tunedeck.core.errors import TemplateError
from tunedeck.core.templates.elements import MessageBuilder, MessageElements
from tunedeck.core.templates.registry import Special, Template, get_template
from tunedeck.core.templates.tokenizer import encode_texts, resolve_template

IGNORE_INDEX = -100  # the label of a token left out of the loss (LLaMA-Factory's and torch's)
NO_CUTOFF = 1 << 30  # a cutoff_len no row reaches: render whole, truncate nothing


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
    explain: bool = True,
) -> Rendered:
    """Render one conversation as training sees it.

    `stage` "pt" forces pre-training text; otherwise the kind follows the row (one response:
    SFT, two: ranking or KTO, none: pre-training text). `today` pins llama3's tool-prompt date.
    `explain` False gives the ids and labels only (what training needs): no segments, and
    truncation counted without decoding the removed text.
    """
    tpl = resolve_template(template, tokenizer)
    if train_on_prompt and tpl.efficient_eos:
        raise TemplateError(f"template '{tpl.name}' does not support train_on_prompt")
    if train_on_prompt and mask_history:
        raise TemplateError("mask_history cannot be combined with train_on_prompt")
    job = _Job(tpl, tokenizer, enable_thinking, today, explain)
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


class _Job:
    """One render call: the template, the tokenizer (or None for text only) and the options."""

    def __init__(
        self, template: Template, tokenizer: Any, thinking: bool | None, today, explain: bool
    ):
        self.t = template
        self.tok = tokenizer
        self.explain = explain
        self.messages = MessageBuilder(template, thinking, today)

    # -- the four preprocessing paths -------------------------------------------------------

    def supervised(self, conv: Conversation, cutoff: int, on_prompt: bool, mask: bool):
        t = self.t
        encoded = self.messages.supervised(conv, mask)
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
        ids = self._tokenize(encoded)
        pairs = [(ids[2 * k], ids[2 * k + 1], k) for k in range(n_turns)]
        if mask:
            pairs = pairs[::-1]
        input_ids: list[int] = []
        labels: list[int] = []
        total = 1 if t.efficient_eos else 0
        cuts: list[dict] = []
        original = sum(len(s) + len(g) for s, g, _ in pairs) + total
        for order, (source, target, turn) in enumerate(pairs):
            if total >= cutoff:
                cuts += self._cut(turn, "prompt", source, 0)
                cuts += self._cut(turn, "response", target, 0)
                continue
            s_len, t_len = infer_seqlen(len(source), len(target), cutoff - total)
            cuts += self._cut(turn, "prompt", source, s_len)
            cuts += self._cut(turn, "response", target, t_len)
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
        side = self._side(conv, answer)
        if self.tok is None:
            return Rendered(segments=side.segments, kind=kind)
        return self._pair_ids(side, len(side.answer_ids), cutoff, kind)

    def pairwise(self, conv: Conversation, chosen: Message, rejected: Message, cutoff: int):
        sides = self._side(conv, chosen), self._side(conv, rejected)
        if self.tok is None:
            rejected_r = Rendered(segments=sides[1].segments, kind="ranking")
            return Rendered(segments=sides[0].segments, kind="ranking", rejected=rejected_r)
        # both sides are truncated with the longer response's length, as DPO training does
        longest = max(len(side.answer_ids) for side in sides)
        chosen_r, rejected_r = (self._pair_ids(s, longest, cutoff, "ranking") for s in sides)
        return Rendered(
            segments=chosen_r.segments,
            input_ids=chosen_r.input_ids,
            labels=chosen_r.labels,
            truncated=chosen_r.truncated,
            kind="ranking",
            rejected=rejected_r,
        )

    def pretrain(self, conv: Conversation, cutoff: int):
        text = conv.prompt[0].content if conv.prompt else ""
        eos_text = self.t.pretrain_eos or self._special_text(Special("eos"))
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
        cuts = self._cut(0, "text", ids, len(kept))
        return Rendered(
            segments=tuple(segs),
            input_ids=kept,
            labels=list(kept),
            truncated=_truncation(len(ids), len(kept), cutoff, cuts),
            kind="pretrain",
        )

    # -- helpers --------------------------------------------------------------------------

    def _side(self, conv: Conversation, answer: Message) -> _Side:
        """One answer after the prompt: its segments and, with a tokenizer, untruncated ids."""
        t = self.t
        encoded = self.messages.oneturn(conv, answer)
        trainable = {i: False for i in range(len(encoded) - 1)}
        trainable[len(encoded) - 1] = True
        tail = [self._special_piece(Special("eos"))] if t.efficient_eos else []
        segments = self._segments(encoded, trainable, tail)
        if self.tok is None:
            return _Side(segments)
        ids = self._tokenize(encoded)
        prompt_ids = [i for message_ids in ids[:-1] for i in message_ids]
        answer_ids = ids[-1] + ([self.tok.eos_token_id] if t.efficient_eos else [])
        return _Side(segments, prompt_ids, answer_ids)

    def _pair_ids(self, side: _Side, answer_len_for_split: int, cutoff: int, kind: str):
        prompt_ids, answer_ids = side.prompt_ids, side.answer_ids
        s_len, t_len = infer_seqlen(len(prompt_ids), answer_len_for_split, cutoff)
        cuts = self._cut(0, "prompt", prompt_ids, s_len)
        cuts += self._cut(0, "response", answer_ids, t_len)
        p, a = prompt_ids[:s_len], answer_ids[:t_len]
        return Rendered(
            segments=side.segments,
            input_ids=p + a,
            labels=[IGNORE_INDEX] * len(p) + a,
            truncated=_truncation(len(prompt_ids) + len(answer_ids), len(p) + len(a), cutoff, cuts),
            kind=kind,
        )

    def _cut(self, turn: int, part: str, ids: list[int], kept: int) -> list[dict]:
        return _cut(self.tok if self.explain else None, turn, part, ids, kept)

    def _tokenize(self, messages: list[MessageElements]) -> list[list[int]]:
        """Each message's ids: its text elements encoded in one batch call, one text each,
        and its special tokens added by id."""
        texts = [[e.text for e in m.elements] for m in messages]
        batch = [text for row in texts for text in row if text]
        encoded = iter(encode_texts(self.tok, batch) if batch else ())
        out = []
        for message, row in zip(messages, texts, strict=True):
            ids: list[int] = []
            for element, text in zip(message.elements, row, strict=True):
                if element.special is not None:
                    ids += self._special_ids(element.special)
                elif text:
                    ids += next(encoded)
            out.append(ids)
        return out

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

    def _segments(self, encoded: list[MessageElements], trainable: dict[int, bool], tail: list):
        if not self.explain:
            return ()
        segs: list[Segment] = []
        for i, message in enumerate(encoded):
            train = trainable.get(i, False)
            for element in message.elements:
                role = element.role(message.role)
                for text, source in element.shown(self._special_text):
                    if text:
                        _append(segs, Segment(role, text, train, source))
        for seg in tail:
            _append(segs, seg)
        return tuple(segs)


@dataclass(frozen=True)
class _Side:
    """One answer of a one-turn render; the ids are None without a tokenizer."""

    segments: tuple[Segment, ...]
    prompt_ids: list[int] | None = None
    answer_ids: list[int] | None = None


def media_note(conversation: Conversation, template: str | Template) -> str:
    """What becomes of a row's images, videos and audios under `template` ("" for none)."""
    present = [
        kind
        for kind, items in (
            ("image", conversation.images),
            ("video", conversation.videos),
            ("audio", conversation.audios),
        )
        if items
    ]
    if not present:
        return ""
    tpl = get_template(template) if isinstance(template, str) else template
    taken = tpl.media.kinds if tpl.media is not None else ()
    missing = [kind for kind in present if kind not in taken]
    if missing:
        return (
            f"template '{tpl.name}' takes no {' or '.join(missing)} input; "
            "LLaMA-Factory refuses this row"
        )
    return tpl.media.note()


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


def _append(segs: list[Segment], seg: Segment) -> None:
    if segs:
        prev = segs[-1]
        if (prev.role, prev.trainable, prev.source) == (seg.role, seg.trainable, seg.source):
            segs[-1] = Segment(prev.role, prev.text + seg.text, prev.trainable, prev.source)
            return
    segs.append(seg)


def _cut(tok, turn: int, part: str, ids: list[int], kept: int) -> list[dict]:
    """What truncation removed from one part; its text decoded when `tok` is given."""
    if kept >= len(ids):
        return []
    removed = ids[kept:]
    return [
        {
            "turn": turn,
            "part": part,
            "removed_tokens": len(removed),
            "removed_text": tok.decode(removed, skip_special_tokens=False) if tok else None,
        }
    ]


def _truncation(original: int, kept: int, cutoff: int, cuts: list[dict]) -> Truncation | None:
    if not cuts:
        return None
    return Truncation(original, kept, cutoff, tuple(cuts))
