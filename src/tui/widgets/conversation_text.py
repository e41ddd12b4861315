"""Rich text for a normalised conversation and for a rendered prompt (no widgets here)."""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text

# The one home of role colours, for the app's screens and the CLI's panels.
ROLE_STYLES = {
    "system": "magenta",
    "user": "cyan",
    "assistant": "green",
    "function": "yellow",
    "observation": "blue",
}


def conversation_text(conversation: Any) -> Text:
    """The normalised form of a row: system, tools, prompt turns, response(s), media."""
    text = Text()
    if conversation.system:
        _turn(text, "system", conversation.system)
    if conversation.tools:
        _turn(text, "tools", conversation.tools)
    for message in conversation.prompt:
        _turn(text, _role(message), message.content)
    responses = conversation.response
    labels = ["response"] if len(responses) == 1 else ["chosen", "rejected"]
    if conversation.kto_tag is not None:
        labels = ["kto: desired" if conversation.kto_tag else "kto: undesired", "(empty)"]
    for label, message in zip(labels, responses, strict=False):
        _turn(text, f"{_role(message)} · {label}", message.content)
    for kind in ("images", "videos", "audios"):
        for path in getattr(conversation, kind, ()) or ():
            text.append(f"{kind[:-1]}: ", style="dim")
            text.append(f"{path}\n")
    return text


def raw_text(value: Any) -> Text:
    """A raw row as indented JSON."""
    try:
        body = json.dumps(value, ensure_ascii=False, indent=2, default=str)
    except (TypeError, ValueError):
        body = repr(value)
    return Text(body)


def rendered_text(rendered: Any) -> Text:
    """A rendered prompt: template text dim, data text plain, trained spans underlined green."""
    return segments_text(rendered.segments)


def segments_text(segments: Any) -> Text:
    """Rendered segments (template text dim, data text in its role's colour), trained ones
    bold and underlined."""
    text = Text()
    for segment in segments:
        if segment.source == "template":
            style = "dim italic"
        else:
            style = ROLE_STYLES.get(segment.role, "")
        if segment.trainable:
            style += " bold underline"
        text.append(segment.text, style=style.strip() or None)
    return text


def truncation_text(truncation: Any, label: str = "") -> Text:
    """What cutoff_len removed, per turn part, struck through."""
    text = Text(f"\n\n{label}truncated by cutoff_len:\n", style="bold red")
    for part in truncation.parts:
        text.append(
            f"turn {part.get('turn')} {part.get('part')}: {part.get('removed_tokens')} tokens: ",
            style="red",
        )
        text.append(f"{part.get('removed_text', '')}\n", style="strike dim")
    return text


def ids_text(rendered: Any, label: str) -> Text:
    """The token ids training gets, those in the loss bold and underlined."""
    from tunedeck.core.templates import IGNORE_INDEX

    ids, labels = rendered.input_ids, rendered.labels or []
    text = Text(f"\n\n{label} ({len(ids):,})", style="bold")
    text.append(" · underlined: in the loss\n", style="dim")
    for position, token in enumerate(ids):
        trained = position < len(labels) and labels[position] != IGNORE_INDEX
        text.append(str(token), style="bold underline" if trained else "dim")
        text.append(" ")
    return text


def _role(message: Any) -> str:
    role = message.role
    return getattr(role, "value", str(role))


def _turn(text: Text, label: str, content: str) -> None:
    style = ROLE_STYLES.get(label.split(" ")[0], "bold")
    text.append(f"{label}\n", style=f"bold {style}")
    text.append(f"{content}\n\n")
