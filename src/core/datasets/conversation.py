"""The normalised form of one data row, with LLaMA-Factory's converter semantics.

`prompt` holds every turn up to the one the model answers (odd length, alternating
user/observation and assistant/function, ending on user or observation); `response`
holds the answer: one message for SFT, two (chosen, rejected) for ranking and KTO
(KTO puts the real answer first when kto_tag is true, second when false, the other
one empty), none for unlabelled rows. Pre-training text is a single user turn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Role(str, Enum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"
    FUNCTION = "function"
    OBSERVATION = "observation"


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class RowLocation:
    """A row's place: the file it came from and its 1-based row (line for jsonl/txt)."""

    file: str
    row: int


@dataclass(frozen=True)
class Conversation:
    prompt: tuple[Message, ...]
    response: tuple[Message, ...]
    system: str = ""
    tools: str = ""
    images: tuple[str, ...] = ()
    videos: tuple[str, ...] = ()
    audios: tuple[str, ...] = ()
    kto_tag: bool | None = None
    location: RowLocation | None = field(default=None, compare=False)
