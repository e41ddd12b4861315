"""What a template makes of a conversation before any tokenizer sees it: per message, the
elements LLaMA-Factory tokenizes one call each (text built from pieces, or a special token).

Rendering (render.py) turns them into segments and ids; length counting (lengths.py) into
token counts. Both build them here, so the two cannot disagree on what is encoded.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable
from dataclasses import dataclass

from tunedeck.core.datasets.conversation import Conversation, Message, Role
from tunedeck.core.errors import TemplateError
from tunedeck.core.templates.registry import Slot, Special, Template
from tunedeck.core.templates.tools import describe_tools, format_calls, parse_calls

Piece = tuple[str, str]  # (text, source), source "template" | "data"

# The role an element's segments show when its tag names a part of the conversation.
_TAG_ROLES = {"system": "system", "prefix": "prefix", "thought": "assistant"}


@dataclass(frozen=True, slots=True)
class Element:
    """One tokenizer call's worth of a message: text made of pieces, or a special token added
    by id (then `pieces` is empty). `tag` is "prefix", "system", "thought" or ""."""

    pieces: tuple[Piece, ...] = ()
    special: Special | None = None
    tag: str = ""

    @property
    def text(self) -> str:
        """The string encoded for a text element ("" for a special token)."""
        return "".join([piece[0] for piece in self.pieces])

    @property
    def has_data(self) -> bool:
        """True when some non-empty piece comes from the row rather than the template."""
        return any(source == "data" and text for text, source in self.pieces)

    def role(self, message_role: str) -> str:
        """The role its segments show: the tag's, else the message's."""
        return _TAG_ROLES.get(self.tag, message_role)

    def shown(self, special_text: Callable[[Special], str]) -> tuple[Piece, ...]:
        """The pieces a reader sees; a special token shows as its text."""
        if self.special is not None:
            return ((special_text(self.special), "template"),)
        return self.pieces


@dataclass
class MessageElements:
    """One message of the conversation as the elements its template slot produced."""

    role: str
    elements: list[Element]


@dataclass(frozen=True)
class MessageBuilder:
    """Fills a template's slots with a conversation's messages, the way LLaMA-Factory's
    supervised and one-turn (pairwise, KTO) preprocessing lays them out."""

    template: Template
    thinking: bool | None = True
    today: _dt.date | None = None  # pins llama3's tool-prompt date

    def supervised(self, conv: Conversation, mask_history: bool) -> list[MessageElements]:
        """Every turn, alternating prompt and response (SFT)."""
        t = self.template
        messages = [*conv.prompt, conv.response[0]]
        last = len(messages) - 2
        empty_thought_turns: list[int] = []
        if t.reasoning:
            messages = list(messages)
            if self.thinking is False:
                for i in range(1, len(messages), 2):
                    messages[i] = _strip_thought(t, messages[i])
            if mask_history:  # history thoughts are dropped; only the last turn keeps its own
                for i in range(1, len(messages) - 2, 2):
                    messages[i] = _strip_thought(t, messages[i])
            turns = [last] if mask_history else range(0, len(messages), 2)
            empty_thought_turns = [i for i in turns if not _has_thought(t, messages[i + 1])]
        encoded = self._messages(messages, conv.system, conv.tools)
        for i in empty_thought_turns:
            self._add_empty_thought(encoded, i)
        return encoded

    def oneturn(self, conv: Conversation, answer: Message) -> list[MessageElements]:
        """The prompt turns, then `answer` as the only response (pairwise and KTO)."""
        t = self.template
        messages = [*conv.prompt, answer]
        add_thought = False
        if t.reasoning:
            for i in range(1, len(messages) - 2, 2):
                messages[i] = _strip_thought(t, messages[i])
            if self.thinking is False:
                messages[-1] = _strip_thought(t, messages[-1])
            add_thought = not _has_thought(t, messages[-1])
        encoded = self._messages(messages, conv.system, conv.tools)
        if add_thought:
            self._add_empty_thought(encoded, len(encoded) - 2)
        return encoded

    def _messages(self, messages: list[Message], system: str, tools: str) -> list[MessageElements]:
        t = self.template
        system_source = "data" if system else "template"
        system = system or t.default_system
        out: list[MessageElements] = []
        for i, msg in enumerate(messages):
            role = msg.role.value if isinstance(msg.role, Role) else str(msg.role)
            elements: list[Element] = []
            fused: list[Piece] = []
            if i == 0:
                elements += [_prefix_element(part) for part in t.prefix]
                if system or tools:
                    tool_text = (
                        describe_tools(t.tool_format, tools, today=self.today) if tools else ""
                    )
                    content = [(system, system_source), (tool_text, "data")]
                    if t.fuse_system:  # the first system element's text opens the user turn
                        fused = list(_fill(t.system, content)[0].pieces)
                    else:
                        elements += _fill(t.system, content, tag="system")
            if role == "user":
                elements += _fill(t.user, [*fused, (msg.content, "data")], idx=str(i // 2))
            elif role == "assistant":
                elements += _fill(t.assistant, [(msg.content, "data")])
            elif role == "observation":
                elements += _fill(t.observation, [(msg.content, "data")])
            elif role == "function":
                elements += _fill(t.function, [(self._function_text(msg.content), "data")])
            else:
                raise TemplateError(f"unexpected role '{role}' in a conversation")
            out.append(MessageElements(role=role, elements=elements))
        return out

    def _function_text(self, content: str) -> str:
        t = self.template
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

    def _add_empty_thought(self, encoded: list[MessageElements], turn: int) -> None:
        """An empty <think></think> block: trained on in the response when thinking is on,
        appended to the prompt (masked) otherwise."""
        thought = Element(((self.template.empty_thought, "template"),), tag="thought")
        if not self.thinking:
            encoded[turn].elements.append(thought)
        else:
            encoded[turn + 1].elements.insert(0, thought)


def _prefix_element(part: str | Special) -> Element:
    if isinstance(part, Special):
        return Element(special=part, tag="prefix")
    return Element(((part, "template"),), tag="prefix")


def _fill(slots: Slot, content: list[Piece], idx: str | None = None, tag: str = "") -> list:
    """Apply a slot list: the first `{{content}}` of each string slot becomes `content`;
    every element made carries `tag`."""
    elements: list[Element] = []
    for slot in slots:
        if isinstance(slot, Special):
            elements.append(Element(special=slot, tag=tag))
            continue
        before, mark, after = slot.partition("{{content}}")
        pieces = [(before, "template")]
        if mark:
            pieces += content
            pieces.append((after, "template"))
        if idx is not None:
            pieces = _replace_first(pieces, "{{idx}}", idx)
        elements.append(Element(tuple(pieces), tag=tag))
    return elements


def _replace_first(pieces: list[Piece], needle: str, value: str) -> list[Piece]:
    for n, (text, source) in enumerate(pieces):
        if needle in text:
            pieces = list(pieces)
            pieces[n] = (text.replace(needle, value, 1), source)
            break
    return pieces


def _between(words: tuple[str, str]) -> re.Pattern:
    """Text from an opening word to the next closing word, the words included."""
    return re.compile(f"{re.escape(words[0])}(.*?){re.escape(words[1])}", re.DOTALL)


def _span(words: tuple[str, str], content: str):
    return _between(words).search(content)


def _strip_thought(t: Template, msg: Message) -> Message:
    return Message(msg.role, _between(t.thought_words).sub("", msg.content).lstrip("\n"))


def _has_thought(t: Template, msg: Message) -> bool:
    return t.thought_words[0].strip() in msg.content or t.thought_words[1].strip() in msg.content
