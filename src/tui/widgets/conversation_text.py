"""Rich text for a normalised conversation and for a rendered prompt (no widgets here)."""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text

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
    text = Text()
    for segment in rendered.segments:
        if segment.source == "template":
            style = "dim italic"
        else:
            style = ROLE_STYLES.get(segment.role, "")
        if segment.trainable:
            style += " bold underline"
        text.append(segment.text, style=style.strip() or None)
    return text


def _role(message: Any) -> str:
    role = message.role
    return getattr(role, "value", str(role))


def _turn(text: Text, label: str, content: str) -> None:
    style = ROLE_STYLES.get(label.split(" ")[0], "bold")
    text.append(f"{label}\n", style=f"bold {style}")
    text.append(f"{content}\n\n")
