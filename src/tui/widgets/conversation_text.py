"""Rich text for a normalised conversation and for a rendered prompt (no widgets here).

Row text is untrusted: it reaches Rich as plain Text with its control characters written out.

Role colours come from the theme's palette (`tunedeck.tui.palette`, roles named after the
message roles: system, user, assistant, function, observation).
"""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text

from tunedeck.core.text import inert_lines
from tunedeck.tui.palette import ROLES, Palette


def conversation_text(conversation: Any, palette: Palette) -> Text:
    """The normalised form of a row: system, tools, prompt turns, response(s), media."""
    text = Text()
    if conversation.system:
        _turn(text, palette, "system", conversation.system)
    if conversation.tools:
        _turn(text, palette, "tools", conversation.tools)
    for message in conversation.prompt:
        _turn(text, palette, _role(message), message.content)
    responses = conversation.response
    labels = ["response"] if len(responses) == 1 else ["chosen", "rejected"]
    if conversation.kto_tag is not None:
        labels = ["kto: desired" if conversation.kto_tag else "kto: undesired", "(empty)"]
    for label, message in zip(labels, responses, strict=False):
        _turn(text, palette, f"{_role(message)} · {label}", message.content)
    for kind in ("images", "videos", "audios"):
        for path in getattr(conversation, kind, ()) or ():
            text.append(f"{kind[:-1]}: ", style="dim")
            text.append(f"{inert_lines(str(path))}\n")
    return text


def raw_text(value: Any) -> Text:
    """A raw row as indented JSON."""
    try:
        body = json.dumps(value, ensure_ascii=False, indent=2, default=str)
    except (TypeError, ValueError):
        body = repr(value)
    return Text(inert_lines(body))


def rendered_text(rendered: Any, palette: Palette) -> Text:
    """A rendered prompt: template text dim, data text in its role's colour, trained spans
    bold and underlined."""
    return segments_text(rendered.segments, palette)


def segments_text(segments: Any, palette: Palette) -> Text:
    """Rendered segments (template text dim, data text in its role's colour), trained ones
    bold and underlined."""
    text = Text()
    for segment in segments:
        if segment.source == "template":
            style = "dim italic"
        else:
            style = _role_colour(palette, segment.role)
        if segment.trainable:
            style += " bold underline"
        text.append(inert_lines(segment.text), style=style.strip() or None)
    return text


def truncation_text(truncation: Any, palette: Palette, label: str = "") -> Text:
    """What cutoff_len removed, per turn part, struck through."""
    error = palette.style("error")
    text = Text(f"\n\n{label}truncated by cutoff_len:\n", style=f"bold {error}")
    for part in truncation.parts:
        text.append(
            f"turn {part.get('turn')} {part.get('part')}: {part.get('removed_tokens')} tokens: ",
            style=error,
        )
        text.append(f"{inert_lines(str(part.get('removed_text', '')))}\n", style="strike dim")
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


def _role_colour(palette: Palette, role: str | None) -> str:
    """The colour of a message role; no colour for text of no known role."""
    return palette.colour(role) if role in ROLES else ""


def _turn(text: Text, palette: Palette, label: str, content: str) -> None:
    style = _role_colour(palette, label.split(" ")[0])
    text.append(f"{label}\n", style=f"bold {style}".strip())
    text.append(f"{inert_lines(str(content))}\n\n")
