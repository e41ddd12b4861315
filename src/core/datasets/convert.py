"""One raw row -> a `Conversation`, with LLaMA-Factory's alpaca/sharegpt/openai semantics.

One converter class per formatting, registered in CONVERTERS by its name; `converter_for`
picks the one a spec needs. The same walk names every reason a row would be dropped or break
training (as unlocated `Issue`s: only the column is known here), so validation and
conversion never disagree. The cheap pre-checks of clean rows live in fast_checks.py.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from tunedeck.core.datasets.conversation import Conversation, Message, Role, RowLocation
from tunedeck.core.datasets.issues import ERROR, WARNING, Issue
from tunedeck.core.datasets.spec import DatasetSpec, Tags, _json_type, dataset_kind
from tunedeck.core.errors import DatasetError, Location, Severity

PLACEHOLDERS = {"images": "<image>", "videos": "<video>", "audios": "<audio>"}
REMOTE_MEDIA = ("http://", "https://", "data:", "s3://", "gs://", "oss://")
TOOL_RESPONSE_JOIN = "\n</tool_response>\n<tool_response>\n"

Turns = list[tuple[str, str]]  # (role, content) pairs

CONVERTERS: dict[str, type[Converter]] = {}


def register(formatting: str) -> Callable[[type[Converter]], type[Converter]]:
    """Class decorator: the converter for `formatting` (a name is registered once)."""

    def add(cls: type[Converter]) -> type[Converter]:
        if formatting in CONVERTERS:
            raise ValueError(f"a converter for {formatting!r} is already registered")
        cls.formatting = formatting
        CONVERTERS[formatting] = cls
        return cls

    return add


def converter_for(spec: DatasetSpec, data_dir: str | Path | None = None) -> Converter:
    """The converter of the spec's formatting, settings resolved once for every row."""
    return CONVERTERS.get(spec.formatting, SharegptConverter)(spec, data_dir)


def to_conversation(
    value: Any,
    spec: DatasetSpec,
    data_dir: str | Path | None = None,
    location: RowLocation | None = None,
) -> Conversation:
    """Normalise one raw row; DatasetError (with file/row/column) when the row is invalid."""
    conversation, problems = converter_for(spec, data_dir).convert(value, location)
    errors = [problem for problem in problems if problem.severity == ERROR]
    if conversation is None or errors:
        first = errors[0]
        where = Location(
            file=location.file if location else None,
            row=location.row if location else None,
            column=first.column,
        )
        raise DatasetError(first.message, location=where)
    return conversation


class RowInvalid(Exception):
    """Internal: stops the walk of one row at its first blocking problem."""


def _problem(
    code: str, message: str, column: str | None = None, severity: Severity = ERROR
) -> Issue:
    """An Issue that knows only its column; validation adds where the row is."""
    return Issue(severity, code, message, None, None, column)


class Converter:
    """The walk shared by every formatting: row shape, tools, media, KTO label.

    A subclass says how a row's columns become turns (`_turns`).
    """

    formatting: ClassVar[str] = ""

    def __init__(self, spec: DatasetSpec, data_dir: str | Path | None = None):
        self.spec = spec
        self.kind = dataset_kind(spec)
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.columns = spec.columns
        self.tags = spec.tags
        self.media = tuple(
            (name, getattr(spec.columns, name))
            for name in ("images", "videos", "audios")
            if getattr(spec.columns, name)
        )
        self._exists: dict[str, bool] = {}

    # -- public ---------------------------------------------------------------

    def problems(self, value: Any) -> list[Issue]:
        """Every problem of one row (empty when the row is fine)."""
        return self._walk(value)[1]

    def convert(
        self, value: Any, location: RowLocation | None = None
    ) -> tuple[Conversation | None, list[Issue]]:
        """(Conversation or None when unusable, problems) for one row."""
        parts, problems = self._walk(value)
        if parts is None or any(problem.severity == ERROR for problem in problems):
            return None, problems
        prompt, response, system, tools, media, kto = parts
        return (
            Conversation(
                prompt=tuple(Message(Role(role), content) for role, content in prompt),
                response=tuple(Message(Role(role), content) for role, content in response),
                system=system,
                tools=tools,
                images=media.get("images", ()),
                videos=media.get("videos", ()),
                audios=media.get("audios", ()),
                kto_tag=kto,
                location=location,
            ),
            problems,
        )

    # -- the walk ---------------------------------------------------------------

    def _walk(self, value: Any) -> tuple[tuple | None, list[Issue]]:
        problems: list[Issue] = []
        if not isinstance(value, dict):
            problems.append(
                _problem("row_not_object", f"the row is {_json_type(value)}, expected an object")
            )
            return None, problems
        try:
            prompt, response, system = self._turns(value, problems)
            tools = self._tools(value, problems)
            media = self._media(value, prompt, response, problems)
        except RowInvalid:
            return None, problems
        kto = None
        if self.columns.kto_tag and isinstance(value.get(self.columns.kto_tag), bool):
            kto = value[self.columns.kto_tag]
        return (prompt, response, system, tools, media, kto), problems

    def _turns(self, row: dict, problems: list[Issue]) -> tuple[Turns, Turns, str]:
        """(prompt, response, system) of one row; RowInvalid at a blocking problem."""
        raise NotImplementedError

    def _tools(self, row: dict, problems: list[Issue]) -> str:
        column = self.columns.tools
        if not column:
            return ""
        tools = row.get(column)
        if tools is None:
            return ""
        if isinstance(tools, str):
            return tools
        self._fail(
            problems,
            "wrong_type",
            f"'{column}' is {_json_type(tools)}, expected a JSON string describing the tools",
            column,
        )
        return ""

    def _media(
        self, row: dict, prompt: Turns, response: Turns, problems: list[Issue]
    ) -> dict[str, tuple[str, ...]]:
        found: dict[str, tuple[str, ...]] = {}
        for name, column in self.media:
            value = row.get(column)
            if value is None or value == []:
                items: list[Any] = []
            elif isinstance(value, str):
                items = [value]
            elif isinstance(value, list):
                items = value
            else:
                problems.append(
                    _problem(
                        "wrong_type",
                        f"'{column}' is {_json_type(value)}, expected a path or a list of paths",
                        column,
                    )
                )
                continue
            paths: list[str] = []
            for item in items:
                frames = item if isinstance(item, list) else [item]
                for frame in frames:
                    if isinstance(frame, str):
                        paths.append(frame)
                    elif not isinstance(frame, dict):  # dicts: decoded media (bytes/path)
                        problems.append(
                            _problem(
                                "wrong_type",
                                f"'{column}' holds {_json_type(frame)}, expected paths",
                                column,
                            )
                        )
            missing = [path for path in paths if not self._media_exists(path)]
            if missing:
                shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
                problems.append(
                    _problem(
                        "media_missing",
                        f"{len(missing)} file(s) in '{column}' do not exist: {shown}",
                        column,
                    )
                )
            placeholder = PLACEHOLDERS[name]
            in_prompt = sum(content.count(placeholder) for _, content in prompt)
            in_response = max((content.count(placeholder) for _, content in response), default=0)
            placeholders = in_prompt + in_response
            if placeholders != len(items):
                problems.append(
                    _problem(
                        "media_count_mismatch",
                        f"{placeholders} {placeholder} placeholder(s) in the messages but "
                        f"{len(items)} file(s) in '{column}'",
                        column,
                    )
                )
            found[name] = tuple(self._resolve(item) for item in items)
        return found

    # -- helpers ----------------------------------------------------------------

    def _fail(self, problems: list[Issue], code: str, message: str, column: str | None = None):
        problems.append(_problem(code, message, column))
        raise RowInvalid

    def _empty(self, problems: list[Issue], code: str, message: str, column: str | None):
        severity = WARNING if self.kind == "pretrain" else ERROR
        problems.append(_problem(code, message, column, severity))

    def _string(self, row: dict, column: str | None, problems: list[Issue], required: bool) -> str:
        if not column:
            return ""
        if column not in row:
            if required:
                self._missing(row, column, problems)
            return ""
        value = row[column]
        if value is None:
            return ""
        if not isinstance(value, str):
            self._fail(
                problems,
                "wrong_type",
                f"'{column}' is {_json_type(value)}, expected a string",
                column,
            )
        return value

    def _kto_tag(self, row: dict, problems: list[Issue]) -> bool:
        column = self.columns.kto_tag
        if column not in row:
            self._missing(row, column, problems, " (the kto_tag)")
        tag = row[column]
        if not isinstance(tag, bool):
            self._fail(
                problems,
                "kto_tag_not_bool",
                f"'{column}' is {tag!r}; a KTO label must be true or false",
                column,
            )
        return tag

    def _missing(self, row: dict, column: str, problems: list[Issue], note: str = "") -> None:
        """Stop the walk: the row lacks `column` (the message lists the keys it has)."""
        self._fail(
            problems,
            "column_missing",
            f"the row has no '{column}' column{note}{self._keys_hint(row)}",
            column,
        )

    def _keys_hint(self, row: dict) -> str:
        keys = list(row)[:8]
        return f" (it has {', '.join(repr(key) for key in keys)})" if keys else " (it is empty)"

    def _resolve(self, item: Any) -> str:
        """A media path as LLaMA-Factory uses it: under the data dir when it exists there."""
        if not isinstance(item, str):
            return str(item)
        if self.data_dir is not None and not os.path.isabs(item):
            candidate = self.data_dir / item
            if candidate.is_file():
                return str(candidate)
        return item

    def _media_exists(self, path: str) -> bool:
        if path.startswith(REMOTE_MEDIA):
            return True
        known = self._exists.get(path)
        if known is None:
            candidate = (
                path if os.path.isabs(path) or self.data_dir is None else str(self.data_dir / path)
            )
            known = os.path.isfile(candidate) or os.path.isfile(path)
            if len(self._exists) < 100_000:
                self._exists[path] = known
        return known


@register("alpaca")
class AlpacaConverter(Converter):
    """instruction (+ input) is the prompt, output the answer; history adds earlier turns."""

    def _turns(self, row: dict, problems: list[Issue]) -> tuple[Turns, Turns, str]:
        prompt = self._history(row, problems)
        prompt.append(("user", self._prompt(row, problems)))
        if self.kind == "kto":
            response = self._kto_response(row, problems)
        elif self.spec.ranking:
            response = self._ranking_response(row, problems)
        else:
            response = self._response(row, problems)
        system = self._string(row, self.columns.system, problems, required=False)
        return prompt, response, system

    def _history(self, row: dict, problems: list[Issue]) -> Turns:
        column = self.columns.history
        turns: Turns = []
        history = row.get(column) if column else None
        if history is None:
            return turns
        if not isinstance(history, list):
            self._fail(
                problems,
                "wrong_type",
                f"'{column}' is {_json_type(history)}, expected a list of [prompt, response] pairs",
                column,
            )
        for index, pair in enumerate(history):
            if (
                not isinstance(pair, list)
                or len(pair) != 2
                or not all(isinstance(text, str) for text in pair)
            ):
                self._fail(
                    problems,
                    "wrong_type",
                    f"history item {index + 1} is not a [prompt, response] pair of strings",
                    f"{column}[{index}]",
                )
            turns.append(("user", pair[0]))
            turns.append(("assistant", pair[1]))
        return turns

    def _prompt(self, row: dict, problems: list[Issue]) -> str:
        """The prompt column and the query column, joined by a newline."""
        columns = self.columns
        texts = []
        present = False
        for column in (columns.prompt, columns.query):
            if not column:
                continue
            if column in row:
                present = True
            text = row.get(column)
            if text is None:
                continue
            if not isinstance(text, str):
                self._fail(
                    problems,
                    "wrong_type",
                    f"'{column}' is {_json_type(text)}, expected a string",
                    column,
                )
            if text:
                texts.append(text)
        if not present and (columns.prompt or columns.query):
            wanted = columns.prompt or columns.query
            self._missing(row, wanted, problems)
        content = "\n".join(texts)
        if not content.strip():
            self._empty(problems, "empty_prompt", "the prompt is empty", columns.prompt)
        return content

    def _kto_response(self, row: dict, problems: list[Issue]) -> Turns:
        column = self.columns.response
        text = self._string(row, column, problems, required=True)
        tag = self._kto_tag(row, problems)
        if not text.strip():
            problems.append(_problem("empty_response", "the response is empty", column))
        response = [("assistant", text), ("assistant", "")]
        if not tag:
            response.reverse()
        return response

    def _ranking_response(self, row: dict, problems: list[Issue]) -> Turns:
        response: Turns = []
        for column in (self.columns.chosen, self.columns.rejected):
            if not column:
                self._fail(
                    problems,
                    "ranking_columns",
                    "a ranking entry needs 'chosen' and 'rejected' columns",
                )
            text = self._string(row, column, problems, required=True)
            if not text.strip():
                problems.append(_problem("empty_response", f"'{column}' is empty", column))
            response.append(("assistant", text))
        return response

    def _response(self, row: dict, problems: list[Issue]) -> Turns:
        column = self.columns.response
        if not column:
            return []
        text = self._string(row, column, problems, required=self.kind == "sft")
        if column in row and row[column] is not None:
            if not text.strip():
                problems.append(_problem("empty_response", "the response is empty", column))
            return [("assistant", text)]
        if self.kind == "sft":
            problems.append(_problem("empty_response", "the response is missing", column))
        return []


@register("sharegpt")
class SharegptConverter(Converter):
    """A list of messages with role tags; user/observation and assistant/function alternate."""

    def __init__(self, spec: DatasetSpec, data_dir: str | Path | None = None):
        super().__init__(spec, data_dir)
        tags = self.tags
        self.user_tags = (tags.user_tag, tags.observation_tag)
        self.assistant_tags = (tags.assistant_tag, tags.function_tag)
        self.mapping = _tag_mapping(tags)

    def _turns(self, row: dict, problems: list[Issue]) -> tuple[Turns, Turns, str]:
        messages = self._message_list(row, problems)
        system, offset = self._system(row, messages, problems)
        aligned = self._align(messages, offset, problems)
        self._check_count(aligned, problems)
        column = self.columns.messages
        if self.kind == "kto":
            prompt, response = aligned[:-1], self._kto_response(row, aligned, problems)
        elif self.spec.ranking:
            prompt, response = aligned, self._ranking_response(row, problems)
        else:
            prompt, response = aligned[:-1], aligned[-1:]
            if not response[0][1].strip():
                problems.append(
                    _problem("empty_response", "the last message (the answer) is empty", column)
                )
        if not prompt or not prompt[-1][1].strip():
            self._empty(problems, "empty_prompt", "the prompt (last user turn) is empty", column)
        return prompt, response, system

    def _message_list(self, row: dict, problems: list[Issue]) -> list[dict]:
        """The messages column: a list of objects that each carry the role tag."""
        column = self.columns.messages
        if not column:
            self._fail(problems, "column_missing", "the entry names no 'messages' column")
        if column not in row:
            self._missing(row, column, problems)
        messages = row[column]
        if not isinstance(messages, list):
            self._fail(
                problems,
                "wrong_type",
                f"'{column}' is {_json_type(messages)}, expected a list of messages",
                column,
            )
        role_tag = self.tags.role_tag
        for index, message in enumerate(messages):
            if not isinstance(message, dict):
                self._fail(
                    problems,
                    "wrong_type",
                    f"message {index + 1} is {_json_type(message)}, expected an object",
                    f"{column}[{index}]",
                )
            if role_tag not in message:
                self._fail(
                    problems,
                    "column_missing",
                    f"message {index + 1} has no '{role_tag}' key (the entry's role_tag)",
                    f"{column}[{index}]",
                )
        return messages

    def _system(self, row: dict, messages: list[dict], problems: list[Issue]) -> tuple[str, int]:
        """(system prompt, index of the first turn): a leading system message, or the column."""
        tags = self.tags
        if tags.system_tag and messages and messages[0][tags.role_tag] == tags.system_tag:
            return self._content(messages[0], 0, problems), 1
        if self.columns.system:
            return self._string(row, self.columns.system, problems, required=False), 0
        return "", 0

    def _align(self, messages: list[dict], offset: int, problems: list[Issue]) -> Turns:
        """The turns after the system message, checked to alternate from the user."""
        role_tag, mapping = self.tags.role_tag, self.mapping
        user_tags, assistant_tags = self.user_tags, self.assistant_tags
        column = self.columns.messages
        aligned: Turns = []
        for index in range(offset, len(messages)):
            message = messages[index]
            role = self._role(message, index, problems)
            content = self._content(message, index, problems)
            expected = user_tags if len(aligned) % 2 == 0 else assistant_tags
            if role not in expected:
                self._fail(
                    problems,
                    "role_order",
                    f"message {index + 1} is {role!r} but a "
                    f"{' or '.join(repr(tag) for tag in expected if tag)} turn is expected there "
                    "(user/observation and assistant/function turns must alternate, starting "
                    "with the user)",
                    f"{column}[{index}].{role_tag}",
                )
            aligned.append((mapping[role], content))
        return aligned

    def _role(self, message: dict, index: int, problems: list[Issue]) -> str:
        """The message's role tag, which must be one this entry declares (system only first)."""
        tags, mapping = self.tags, self.mapping
        role_tag, column = tags.role_tag, self.columns.messages
        role = message[role_tag]
        if role == tags.system_tag and role not in mapping:
            self._fail(
                problems,
                "role_order",
                f"message {index + 1} is a system message ({role_tag} {role!r}); "
                "only the first message may be one",
                f"{column}[{index}].{role_tag}",
            )
        if not isinstance(role, str) or role not in mapping:
            self._fail(
                problems,
                "unknown_role",
                f"message {index + 1} has {role_tag} {role!r}, which is none of the role "
                f"tags this entry declares ({self._declared_tags()})",
                f"{column}[{index}].{role_tag}",
            )
        return role

    def _check_count(self, aligned: Turns, problems: list[Issue]) -> None:
        ranking = self.spec.ranking
        count = len(aligned)
        if (not ranking and count % 2) or (ranking and count % 2 == 0) or count == 0:
            need = "an odd number (the prompt turns)" if ranking else "an even number"
            self._fail(
                problems,
                "message_count",
                f"{count} message(s) after the system message; a "
                f"{'ranking' if ranking else self.kind} row needs {need}"
                + ("" if ranking else " of user/assistant turns, ending with the answer"),
                self.columns.messages,
            )

    def _kto_response(self, row: dict, aligned: Turns, problems: list[Issue]) -> Turns:
        tag = self._kto_tag(row, problems)
        response = aligned[-1:]
        if not response[0][1].strip():
            problems.append(
                _problem("empty_response", "the last message is empty", self.columns.messages)
            )
        response = response + [("assistant", "")]
        if not tag:
            response.reverse()
        return response

    def _ranking_response(self, row: dict, problems: list[Issue]) -> Turns:
        """The chosen and rejected answers, each one assistant message object."""
        role_tag, content_tag = self.tags.role_tag, self.tags.content_tag
        response: Turns = []
        for name in ("chosen", "rejected"):
            column = getattr(self.columns, name)
            if not column:
                self._fail(
                    problems,
                    "ranking_columns",
                    "a ranking entry needs 'chosen' and 'rejected' columns",
                )
            if column not in row:
                self._missing(row, column, problems)
            answer = row[column]
            if not isinstance(answer, dict) or role_tag not in answer:
                self._fail(
                    problems,
                    "wrong_type",
                    f"'{column}' is {_json_type(answer)}, expected a message object "
                    f"with '{role_tag}' and '{content_tag}'",
                    column,
                )
            if answer[role_tag] not in self.assistant_tags:
                self._fail(
                    problems,
                    "role_order",
                    f"'{column}' has {role_tag} {answer[role_tag]!r}; the answer must "
                    f"be {' or '.join(repr(tag) for tag in self.assistant_tags if tag)}",
                    column,
                )
            text = self._content(answer, None, problems, column=column)
            if not text.strip():
                problems.append(_problem("empty_response", f"'{column}' is empty", column))
            response.append((self.mapping[answer[role_tag]], text))
        return response

    def _content(
        self, message: dict, index: int | None, problems: list[Issue], column: str | None = None
    ) -> str:
        """A message's text (content_tag), which must be a string."""
        tag = self.tags.content_tag
        if tag not in message:
            self._no_content(index, problems, column)
        content = message[tag]
        if not isinstance(content, str):
            where, label = self._where(index, column)
            self._fail(
                problems,
                "wrong_type",
                f"{label} has {_json_type(content)} as {tag}, expected a string",
                where,
            )
        return content

    def _no_content(self, index: int | None, problems: list[Issue], column: str | None) -> None:
        where, label = self._where(index, column)
        self._fail(
            problems,
            "column_missing",
            f"{label} has no '{self.tags.content_tag}' key (the entry's content_tag)",
            where,
        )

    def _where(self, index: int | None, column: str | None) -> tuple[str, str]:
        """(column path, how to name it) of a message in the list or in its own column."""
        where = column or f"{self.columns.messages}[{index}]"
        label = f"message {index + 1}" if index is not None else f"'{column}'"
        return where, label

    def _declared_tags(self) -> str:
        tags = self.tags
        pairs = [
            ("user_tag", tags.user_tag),
            ("assistant_tag", tags.assistant_tag),
            ("observation_tag", tags.observation_tag),
            ("function_tag", tags.function_tag),
            ("system_tag", tags.system_tag),
        ]
        declared = ", ".join(f"{name} {tag!r}" for name, tag in pairs if tag)
        return declared or "none"


@register("openai")
class OpenaiConverter(SharegptConverter):
    """OpenAI chat messages: tool_calls become function turns, consecutive tool results one
    observation turn, content may be null; tools may be a JSON list or object."""

    def _align(self, messages: list[dict], offset: int, problems: list[Issue]) -> Turns:
        tags, mapping = self.tags, self.mapping
        column = self.columns.messages
        aligned: Turns = []
        pending_tools: list[str] = []
        for index in range(offset, len(messages)):
            message = messages[index]
            role = self._role(message, index, problems)
            content = self._turn_content(message, index, problems)
            if role in self.assistant_tags and message.get("tool_calls"):
                content = self._tool_calls(message, index, problems)
                role = tags.function_tag
            if role == tags.observation_tag:
                pending_tools.append(content)
                continue
            if pending_tools:
                aligned.append(("observation", TOOL_RESPONSE_JOIN.join(pending_tools)))
                pending_tools = []
            aligned.append((mapping[role], content))
        if pending_tools:
            aligned.append(("observation", TOOL_RESPONSE_JOIN.join(pending_tools)))
        for position, (role, _) in enumerate(aligned):
            expected = ("user", "observation") if position % 2 == 0 else ("assistant", "function")
            if role not in expected:
                self._fail(
                    problems,
                    "role_order",
                    f"turn {position + 1} (after the system message) is {role} but "
                    f"{' or '.join(expected)} is expected there",
                    column,
                )
        return aligned

    def _turn_content(self, message: dict, index: int, problems: list[Issue]) -> str:
        """Content of a turn: may be missing beside tool_calls, or null."""
        tag = self.tags.content_tag
        if tag not in message:
            if message.get("tool_calls"):
                return ""
            self._no_content(index, problems, None)
        if message[tag] is None:
            return ""
        return self._content(message, index, problems)

    def _tool_calls(self, message: dict, index: int, problems: list[Issue]) -> str:
        """An assistant's tool_calls as the JSON list of their `function` objects."""
        try:
            return json.dumps(
                [call["function"] for call in message["tool_calls"]], ensure_ascii=False
            )
        except (TypeError, KeyError):
            self._fail(
                problems,
                "wrong_type",
                f"message {index + 1}: 'tool_calls' must be a list of {{'function': ...}} objects",
                f"{self.columns.messages}[{index}].tool_calls",
            )
        return ""

    def _tools(self, row: dict, problems: list[Issue]) -> str:
        column = self.columns.tools
        tools = row.get(column) if column else None
        if isinstance(tools, (list, dict)):
            return json.dumps(tools, ensure_ascii=False)
        return super()._tools(row, problems)


def _tag_mapping(tags: Tags) -> dict[str, str]:
    """Role tag -> role, the first declaration of a tag winning."""
    mapping: dict[str, str] = {}
    for tag, role in (
        (tags.user_tag, "user"),
        (tags.assistant_tag, "assistant"),
        (tags.observation_tag, "observation"),
        (tags.function_tag, "function"),
    ):
        if tag:
            mapping.setdefault(tag, role)
    return mapping
