"""Does a tunedeck template render what the tokenizer's own chat_template renders?

A fixed probe conversation (a system prompt, two user/assistant turns) is rendered twice: by
the named template, as training would see it (render, with the template's tokenizer fix-ups),
and by the tokenizer's `chat_template` through `apply_chat_template` (text, then token ids).
Where they differ, the first differing piece is reported with a short window of both sides,
and the registered template that matches is suggested (else `hf`, which derives its slots
from the chat_template). transformers is imported lazily, only when a tokenizer is loaded.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tunedeck.core.datasets.conversation import Conversation, Message, Role
from tunedeck.core.errors import Location, TemplateError, TunedeckError
from tunedeck.core.templates.elements import MessageBuilder
from tunedeck.core.templates.registry import TEMPLATES, Special, Template, get_template

WINDOW = 24  # characters (or tokens: a third of it) shown on each side of a difference
PROBE_SYSTEM = "You are a careful assistant."
PROBE_TURNS = (
    ("What is 2+2?", "2+2 is 4."),
    ("And 3+3?", "3+3 is 6."),
)
TOKENIZER_FILES = ("tokenizer_config.json", "chat_template.jinja", "chat_template.json")


@dataclass(frozen=True)
class Difference:
    """The first place two renderings part: `at` (character or token index) and a window of
    each side from shortly before it; `unit` is "text" or "tokens"."""

    unit: str
    at: int
    ours: str
    theirs: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TemplateProbe:
    """The outcome for one template and one tokenizer: `matches` is None when there was
    nothing to compare (no chat_template, or it cannot render the probe: see `reason`)."""

    template: str
    matches: bool | None
    difference: Difference | None = None
    suggestion: str | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["difference"] = self.difference.to_dict() if self.difference else None
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> TemplateProbe:
        difference = doc.get("difference")
        return cls(
            doc["template"],
            doc.get("matches"),
            Difference(**difference) if difference else None,
            doc.get("suggestion"),
            doc.get("reason", ""),
        )

    def summary(self) -> str:
        """One sentence: how the template differs and what matches (empty when it matches)."""
        if self.matches is not False or self.difference is None:
            return ""
        d = self.difference
        where = f"character {d.at}" if d.unit == "text" else f"token {d.at}"
        return (
            f"template '{self.template}' differs from the tokenizer's chat_template at {where}:"
            f" ours {d.ours!r}, the tokenizer's {d.theirs!r}"
        )

    def advice(self) -> str:
        return f"use template: {self.suggestion}" if self.suggestion else ""


def probe_conversation(system: bool = True) -> Conversation:
    """The conversation every probe renders (without its system prompt for a chat_template
    that refuses one)."""
    prompt: list[Message] = []
    for user, assistant in PROBE_TURNS:
        prompt += [Message(Role.USER, user), Message(Role.ASSISTANT, assistant)]
    answer = prompt.pop()
    return Conversation(
        prompt=tuple(prompt), response=(answer,), system=PROBE_SYSTEM if system else ""
    )


def probe_messages(system: bool = True) -> list[dict[str, str]]:
    """The probe conversation as chat messages for apply_chat_template."""
    messages = [{"role": "system", "content": PROBE_SYSTEM}] if system else []
    for user, assistant in PROBE_TURNS:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return messages


def has_chat_template(folder: str | Path) -> bool:
    """True when a local tokenizer folder declares a chat_template (read as JSON: no import)."""
    path = Path(folder).expanduser()
    if (path / "chat_template.jinja").is_file() or (path / "chat_template.json").is_file():
        return True
    try:
        doc = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(doc, dict) and bool(doc.get("chat_template"))


def probe_template_dir(folder: str | Path, template: str | None) -> TemplateProbe:
    """Probe a local tokenizer folder (cached per folder state and template name)."""
    template = template or "hf"
    key = (str(Path(folder).expanduser().resolve()), _folder_stamp(folder), template)
    found = _PROBES.get(key)
    if found is None:
        found = _probe_dir(folder, template)
        if len(_PROBES) > 64:
            _PROBES.clear()
        _PROBES[key] = found
    return found


def probe_template(
    load: Callable[[], Any], template: str | Template, pristine: Any | None = None
) -> TemplateProbe:
    """Compare `template` with the chat_template of the tokenizer `load()` returns.

    `load` is called for each tokenizer the probe needs: rendering fixes a tokenizer up for
    its template (eos, stop words), so every rendering gets a fresh one.
    """
    tpl = get_template(template) if isinstance(template, str) else template
    theirs_tok = pristine if pristine is not None else load()
    if not isinstance(getattr(theirs_tok, "chat_template", None), str):
        return TemplateProbe(tpl.name, None, reason="the tokenizer has no chat_template")
    theirs, system, reason = None, True, ""
    for system in (True, False):  # some chat_templates refuse a system prompt (gemma)
        try:
            theirs = _chat_template_render(theirs_tok, system)
            break
        except Exception as error:  # a jinja template may refuse the probe (raise_exception)
            reason = reason or f"the tokenizer's chat_template cannot render the probe: {error}"
    if theirs is None:
        return TemplateProbe(tpl.name, None, reason=reason)
    difference = _compare(tpl, load, *theirs, system)
    if difference is None:
        return TemplateProbe(tpl.name, True)
    suggestion = suggest_template(load, theirs_tok, *theirs, skip=tpl.name, system=system)
    return TemplateProbe(tpl.name, False, difference, suggestion)


def suggest_template(
    load: Callable[[], Any],
    pristine: Any,
    theirs_text: str,
    theirs_ids: list[int],
    skip: str = "",
    system: bool = True,
) -> str:
    """The first registered template that renders the probe as the tokenizer does, else 'hf'.

    Cheapest first: each template's text is laid out without a tokenizer; only a text match
    is rendered for real (a fresh tokenizer, token ids compared)."""
    conversation = probe_conversation(system)
    for name, tpl in TEMPLATES.items():
        if name == skip or tpl.from_tokenizer:
            continue
        try:
            text = _layout_text(tpl, conversation, pristine)
        except TunedeckError:
            continue
        if text == theirs_text and _compare(tpl, load, theirs_text, theirs_ids, system) is None:
            return name
    return "hf"


def first_difference(ours: str | list, theirs: str | list, unit: str = "text") -> Difference | None:
    """Where two strings (or id lists) first differ, with a window of each; None if equal."""
    if ours == theirs:
        return None
    at = next(
        (i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b),
        min(len(ours), len(theirs)),
    )
    before = WINDOW // 2 if unit == "text" else 2
    after = WINDOW if unit == "text" else 6
    start = max(0, at - before)
    return Difference(unit, at, ours[start : at + after], theirs[start : at + after])


# --- helpers -----------------------------------------------------------------------------------

_PROBES: dict[tuple, TemplateProbe] = {}


def _probe_dir(folder: str | Path, template: str) -> TemplateProbe:
    path = Path(folder).expanduser()
    if not has_chat_template(path):
        return TemplateProbe(template, None, reason="the tokenizer has no chat_template")
    return probe_template(lambda: _load_plain(path), template)


def _load_plain(folder: Path) -> Any:
    """The tokenizer as saved, without any template's fix-ups."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        from tunedeck.core.errors import MissingExtraError

        raise MissingExtraError("transformers", "train") from None
    try:
        return AutoTokenizer.from_pretrained(str(folder), use_fast=True)
    except (OSError, ValueError) as exc:
        raise TemplateError(
            f"cannot load a tokenizer: {exc}", location=Location(file=str(folder))
        ) from None


def _folder_stamp(folder: str | Path) -> tuple:
    stamp = []
    for name in (*TOKENIZER_FILES, "tokenizer.json"):
        try:
            info = (Path(folder).expanduser() / name).stat()
            stamp.append((name, info.st_mtime_ns, info.st_size))
        except OSError:
            continue
    return tuple(stamp)


def _chat_template_render(tok: Any, system: bool) -> tuple[str, list[int]]:
    messages = probe_messages(system)
    text = tok.apply_chat_template(messages, tokenize=False)
    ids = tok.apply_chat_template(messages, tokenize=True)
    if not isinstance(ids, list):  # a BatchEncoding (return_dict) in newer transformers
        ids = ids["input_ids"]
    if ids and isinstance(ids[0], list):
        ids = ids[0]
    return text, list(ids)


def _compare(
    tpl: Template, load: Callable[[], Any], theirs_text: str, theirs_ids: list[int], system: bool
) -> Difference | None:
    """The first difference between our rendering (text, then ids) and the tokenizer's."""
    from tunedeck.core.templates.render import NO_CUTOFF, render

    tok = load()
    try:
        rendered = render(probe_conversation(system), tpl, tokenizer=tok, cutoff_len=NO_CUTOFF)
    except TunedeckError as error:
        return Difference("text", 0, f"(cannot render: {error.message})", theirs_text[:WINDOW])
    text_difference = first_difference(rendered.text, theirs_text)
    if text_difference is not None:
        return text_difference
    ids_difference = first_difference(rendered.input_ids or [], theirs_ids, unit="tokens")
    if ids_difference is None:
        return None
    return Difference(
        "tokens",
        ids_difference.at,
        " ".join(tok.convert_ids_to_tokens(list(ids_difference.ours))),
        " ".join(tok.convert_ids_to_tokens(list(ids_difference.theirs))),
    )


def _layout_text(tpl: Template, conversation: Conversation, tok: Any) -> str:
    """The text `tpl` renders for the conversation, without fixing a tokenizer up for it:
    bos/eos show as the tokenizer's, eos as the first stop word where the template replaces it."""

    def special_text(special: Special) -> str:
        if special.kind == "token":
            return special.token
        if special.kind == "bos":
            return tok.bos_token or ""
        if tpl.replace_eos and tpl.stop_words:
            return tpl.stop_words[0]
        return tok.eos_token or "<|endoftext|>"

    messages = MessageBuilder(tpl, True).supervised(conversation, False)
    text = "".join(
        piece
        for message in messages
        for element in message.elements
        for piece, _source in element.shown(special_text)
    )
    if tpl.efficient_eos:
        text += special_text(Special("eos"))
    return text
