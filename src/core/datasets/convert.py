"""One raw row -> a `Conversation`, with LLaMA-Factory's alpaca/sharegpt/openai semantics.

The same walk names every reason a row would be dropped or break training (as
`Problem`s), so validation and conversion never disagree.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from itertools import chain, repeat
from operator import itemgetter
from pathlib import Path
from typing import Any

from tunedeck.core.datasets.conversation import Conversation, Message, Role, RowLocation
from tunedeck.core.datasets.spec import DatasetSpec, _json_type, dataset_kind
from tunedeck.core.errors import DatasetError, Location, Severity

PLACEHOLDERS = {"images": "<image>", "videos": "<video>", "audios": "<audio>"}
REMOTE_MEDIA = ("http://", "https://", "data:", "s3://", "gs://", "oss://")
TOOL_RESPONSE_JOIN = "\n</tool_response>\n<tool_response>\n"


@dataclass(frozen=True)
class Problem:
    """Why a row is not usable (or is suspicious, when severity is warning)."""

    code: str
    message: str
    column: str | None = None
    severity: Severity = Severity.ERROR


_ONLY_TEXT = frozenset((str,))
_ONLY_LIST = frozenset((list,))
_TEXT_OR_NULL = frozenset((str, type(None)))


def _all_text(values: Iterable[Any]) -> bool:
    """True when every value is a string with something besides whitespace.

    Raises TypeError at a value that is not a string (str.strip refuses it).
    """
    return all(map(str.strip, values))


def _plain_history(history: Any) -> bool:
    """True when an alpaca history is absent or a list of [prompt, response] string pairs."""
    if history is None:
        return True
    if history.__class__ is not list:
        return False
    for pair in history:
        if pair.__class__ is not list or len(pair) != 2:
            return False
        if pair[0].__class__ is not str or pair[1].__class__ is not str:
            return False
    return True


class RowInvalid(Exception):
    """Internal: stops the walk of one row at its first blocking problem."""


def to_conversation(
    value: Any,
    spec: DatasetSpec,
    data_dir: str | Path | None = None,
    location: RowLocation | None = None,
) -> Conversation:
    """Normalise one raw row; DatasetError (with file/row/column) when the row is invalid."""
    conversation, problems = RowChecker(spec, data_dir).convert(value, location)
    errors = [problem for problem in problems if problem.severity == "error"]
    if conversation is None or errors:
        first = errors[0]
        where = Location(
            file=location.file if location else None,
            row=location.row if location else None,
            column=first.column,
        )
        raise DatasetError(first.message, location=where)
    return conversation


class RowChecker:
    """The normaliser for one spec: settings resolved once, then applied row by row."""

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

    def problems(self, value: Any) -> list[Problem]:
        """Every problem of one row (empty when the row is fine)."""
        return self._walk(value, build=False)[1]

    def convert(
        self, value: Any, location: RowLocation | None = None
    ) -> tuple[Conversation | None, list[Problem]]:
        """(Conversation or None when unusable, problems) for one row."""
        parts, problems = self._walk(value, build=True)
        if parts is None or any(problem.severity == "error" for problem in problems):
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

    def fast_check(self) -> Callable[[Any], bool] | None:
        """A cheap test that passes the common clean row (None: no fast path for this spec).

        It returns True only for rows the full walk finds no problem in; anything unusual
        returns False, and the caller runs the walk to name the problem.
        """
        if self.kind != "sft" or self.spec.ranking:
            return None
        if self.spec.formatting == "alpaca":
            return self._alpaca_check()
        if self.spec.formatting == "sharegpt" and self.columns.messages:
            return self._sharegpt_check()
        return None

    def fast_batch_check(self) -> Callable[[list[Any]], bool] | None:
        """A test that passes a whole list of rows when fast_check would pass each one.

        It works column by column with map() and set operations, so a clean batch costs
        a few C-level passes instead of a Python call per row.
        """
        if self.fast_check() is None:
            return None
        if self.spec.formatting == "alpaca":
            return self._alpaca_batch_check()
        return self._sharegpt_batch_check()

    def _alpaca_check(self) -> Callable[[Any], bool] | None:
        columns = self.columns
        if not columns.prompt or not columns.response:
            return None
        prompt, query, response = columns.prompt, columns.query, columns.response
        optional = tuple(name for name in (query, columns.system, columns.tools) if name)
        history = columns.history
        text = str

        def check(row: Any) -> bool:
            try:
                p = row[prompt]
                r = row[response]
                if p.__class__ is not text or r.__class__ is not text:
                    return False
                for name in optional:
                    value = row.get(name)
                    if value is not None and value.__class__ is not text:
                        return False
                if history and not _plain_history(row.get(history)):
                    return False
            except (KeyError, TypeError, AttributeError):
                return False
            return bool(p.strip()) and bool(r.strip())

        return check

    def _sharegpt_check(self) -> Callable[[Any], bool]:
        columns, tags = self.columns, self.tags
        messages_column, role_tag, content_tag = columns.messages, tags.role_tag, tags.content_tag
        system_tag = tags.system_tag
        user_roles = frozenset(tag for tag in (tags.user_tag, tags.observation_tag) if tag)
        assistant_roles = frozenset(tag for tag in (tags.assistant_tag, tags.function_tag) if tag)
        system_column, tools_column = columns.system, columns.tools
        only_text = frozenset((str,))

        def check(row: Any) -> bool:
            try:
                messages = row[messages_column]
                if messages.__class__ is not list:
                    return False
                roles = [message[role_tag] for message in messages]  # TypeError: not a dict
                contents = [message[content_tag] for message in messages]
                if not only_text.issuperset(map(type, contents)):
                    return False
                if system_tag and roles and roles[0] == system_tag:
                    del roles[0], contents[0]
                elif system_column:
                    system = row.get(system_column)
                    if system is not None and system.__class__ is not str:
                        return False
                if tools_column:
                    tools = row.get(tools_column)
                    if tools is not None and tools.__class__ is not str:
                        return False
                return (
                    len(roles) % 2 == 0
                    and len(roles) > 0
                    and user_roles.issuperset(roles[0::2])
                    and assistant_roles.issuperset(roles[1::2])
                    and bool(contents[-1].strip())
                    and bool(contents[-2].strip())
                )
            except (KeyError, TypeError, AttributeError):
                return False

        return check

    def _alpaca_batch_check(self) -> Callable[[list[Any]], bool]:
        columns = self.columns
        required = tuple(itemgetter(name) for name in (columns.prompt, columns.response))
        optional = tuple(name for name in (columns.query, columns.system, columns.tools) if name)
        history = columns.history
        get = dict.get

        def check(rows: list[Any]) -> bool:
            try:
                for column in required:
                    if not _all_text(map(column, rows)):
                        return False
            except (KeyError, TypeError):  # TypeError: not an object, or not a string
                return False
            for name in optional:
                if not _TEXT_OR_NULL.issuperset(map(type, map(get, rows, repeat(name)))):
                    return False
            return not history or all(map(_plain_history, map(get, rows, repeat(history))))

        return check

    def _sharegpt_batch_check(self) -> Callable[[list[Any]], bool]:
        columns, tags = self.columns, self.tags
        messages_of = itemgetter(columns.messages)
        role_of, content_of = itemgetter(tags.role_tag), itemgetter(tags.content_tag)
        last, second_last = itemgetter(-1), itemgetter(-2)
        optional = tuple(name for name in (columns.system, columns.tools) if name)
        patterns: dict[tuple, bool] = {}  # role sequence -> whether the walk accepts it
        row_check = self._sharegpt_check()
        get = dict.get

        def check(rows: list[Any]) -> bool:
            try:
                conversations = list(map(messages_of, rows))
                if not _ONLY_LIST.issuperset(map(type, conversations)):
                    return False
                contents = map(content_of, chain.from_iterable(conversations))
                if not _ONLY_TEXT.issuperset(map(type, contents)):
                    return False
                for roles in set(map(tuple, map(partial(map, role_of), conversations))):
                    known = patterns.get(roles)
                    if known is None:
                        row = {
                            columns.messages: [
                                {tags.role_tag: role, tags.content_tag: "x"} for role in roles
                            ]
                        }
                        known = patterns[roles] = row_check(row)
                    if not known:
                        return False
                for turn in (last, second_last):
                    if not _all_text(map(content_of, map(turn, conversations))):
                        return False
            except (KeyError, TypeError, IndexError):  # TypeError: not an object, or a list role
                return False
            return all(
                _TEXT_OR_NULL.issuperset(map(type, map(get, rows, repeat(name))))
                for name in optional
            )

        return check

    # -- the walk ---------------------------------------------------------------

    def _walk(self, value: Any, build: bool) -> tuple[tuple | None, list[Problem]]:
        problems: list[Problem] = []
        if not isinstance(value, dict):
            problems.append(
                Problem("row_not_object", f"the row is {_json_type(value)}, expected an object")
            )
            return None, problems
        try:
            if self.spec.formatting == "alpaca":
                prompt, response, system = self._alpaca(value, problems)
            else:
                prompt, response, system = self._messages(value, problems)
            tools = self._tools(value, problems)
            media = self._media(value, prompt, response, problems)
        except RowInvalid:
            return None, problems
        kto = None
        if self.columns.kto_tag and isinstance(value.get(self.columns.kto_tag), bool):
            kto = value[self.columns.kto_tag]
        return (prompt, response, system, tools, media, kto), problems

    def _alpaca(self, row: dict, problems: list[Problem]) -> tuple[list, list, str]:
        columns = self.columns
        prompt: list[tuple[str, str]] = []
        if columns.history:
            history = row.get(columns.history)
            if history is not None:
                if not isinstance(history, list):
                    self._fail(
                        problems,
                        "wrong_type",
                        f"'{columns.history}' is {_json_type(history)}, expected a list of "
                        "[prompt, response] pairs",
                        columns.history,
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
                            f"{columns.history}[{index}]",
                        )
                    prompt.append(("user", pair[0]))
                    prompt.append(("assistant", pair[1]))

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
            self._fail(
                problems,
                "column_missing",
                f"the row has no '{wanted}' column{self._keys_hint(row)}",
                wanted,
            )
        content = "\n".join(texts)
        prompt.append(("user", content))
        if not content.strip():
            self._empty(problems, "empty_prompt", "the prompt is empty", columns.prompt)

        response: list[tuple[str, str]] = []
        if self.kind == "kto":
            text = self._string(row, columns.response, problems, required=True)
            tag = self._kto_tag(row, problems)
            if not text.strip():
                problems.append(
                    Problem("empty_response", "the response is empty", columns.response)
                )
            response = [("assistant", text), ("assistant", "")]
            if not tag:
                response.reverse()
        elif self.spec.ranking:
            for column in (columns.chosen, columns.rejected):
                if not column:
                    self._fail(
                        problems,
                        "ranking_columns",
                        "a ranking entry needs 'chosen' and 'rejected' columns",
                    )
                text = self._string(row, column, problems, required=True)
                if not text.strip():
                    problems.append(Problem("empty_response", f"'{column}' is empty", column))
                response.append(("assistant", text))
        elif columns.response:
            text = self._string(row, columns.response, problems, required=self.kind == "sft")
            if columns.response in row and row[columns.response] is not None:
                if not text.strip():
                    problems.append(
                        Problem("empty_response", "the response is empty", columns.response)
                    )
                response = [("assistant", text)]
            elif self.kind == "sft":
                problems.append(
                    Problem("empty_response", "the response is missing", columns.response)
                )

        system = self._string(row, columns.system, problems, required=False)
        return prompt, response, system

    def _messages(self, row: dict, problems: list[Problem]) -> tuple[list, list, str]:
        columns, tags = self.columns, self.tags
        column = columns.messages
        if not column:
            self._fail(problems, "column_missing", "the entry names no 'messages' column")
        if column not in row:
            self._fail(
                problems,
                "column_missing",
                f"the row has no '{column}' column{self._keys_hint(row)}",
                column,
            )
        messages = row[column]
        if not isinstance(messages, list):
            self._fail(
                problems,
                "wrong_type",
                f"'{column}' is {_json_type(messages)}, expected a list of messages",
                column,
            )
        role_tag, content_tag = tags.role_tag, tags.content_tag
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
        offset = 0
        system = ""
        if tags.system_tag and messages and messages[0][role_tag] == tags.system_tag:
            system = self._content(messages[0], 0, problems)
            offset = 1
        elif columns.system:
            system = self._string(row, columns.system, problems, required=False)

        user_tags = (tags.user_tag, tags.observation_tag)
        assistant_tags = (tags.assistant_tag, tags.function_tag)
        mapping = self._tag_mapping()
        aligned: list[tuple[str, str]] = []
        openai = self.spec.formatting == "openai"
        pending_tools: list[str] = []
        for index in range(offset, len(messages)):
            message = messages[index]
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
            content = self._content(message, index, problems, openai=openai)
            if openai:
                if role in assistant_tags and message.get("tool_calls"):
                    calls = message["tool_calls"]
                    try:
                        content = json.dumps(
                            [call["function"] for call in calls], ensure_ascii=False
                        )
                    except (TypeError, KeyError):
                        self._fail(
                            problems,
                            "wrong_type",
                            f"message {index + 1}: 'tool_calls' must be a list of "
                            "{'function': ...} objects",
                            f"{column}[{index}].tool_calls",
                        )
                    role = tags.function_tag
                if role == tags.observation_tag:
                    pending_tools.append(content)
                    continue
                if pending_tools:
                    aligned.append(("observation", TOOL_RESPONSE_JOIN.join(pending_tools)))
                    pending_tools = []
                aligned.append((mapping[role], content))
                continue
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
        if pending_tools:
            aligned.append(("observation", TOOL_RESPONSE_JOIN.join(pending_tools)))
        if openai:
            for position, (role, _) in enumerate(aligned):
                expected_roles = (
                    ("user", "observation") if position % 2 == 0 else ("assistant", "function")
                )
                if role not in expected_roles:
                    self._fail(
                        problems,
                        "role_order",
                        f"turn {position + 1} (after the system message) is {role} but "
                        f"{' or '.join(expected_roles)} is expected there",
                        column,
                    )

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
                column,
            )

        if self.kind == "kto":
            tag = self._kto_tag(row, problems)
            prompt, response = aligned[:-1], aligned[-1:]
            if not response[0][1].strip():
                problems.append(Problem("empty_response", "the last message is empty", column))
            response = response + [("assistant", "")]
            if not tag:
                response.reverse()
        elif ranking:
            prompt = aligned
            response = []
            for name in ("chosen", "rejected"):
                answer_column = getattr(columns, name)
                if not answer_column:
                    self._fail(
                        problems,
                        "ranking_columns",
                        "a ranking entry needs 'chosen' and 'rejected' columns",
                    )
                if answer_column not in row:
                    self._fail(
                        problems,
                        "column_missing",
                        f"the row has no '{answer_column}' column{self._keys_hint(row)}",
                        answer_column,
                    )
                answer = row[answer_column]
                if not isinstance(answer, dict) or role_tag not in answer:
                    self._fail(
                        problems,
                        "wrong_type",
                        f"'{answer_column}' is {_json_type(answer)}, expected a message object "
                        f"with '{role_tag}' and '{content_tag}'",
                        answer_column,
                    )
                if answer[role_tag] not in assistant_tags:
                    self._fail(
                        problems,
                        "role_order",
                        f"'{answer_column}' has {role_tag} {answer[role_tag]!r}; the answer must "
                        f"be {' or '.join(repr(tag) for tag in assistant_tags if tag)}",
                        answer_column,
                    )
                text = self._content(answer, None, problems, column=answer_column)
                if not text.strip():
                    problems.append(
                        Problem("empty_response", f"'{answer_column}' is empty", answer_column)
                    )
                response.append((mapping[answer[role_tag]], text))
        else:
            prompt, response = aligned[:-1], aligned[-1:]
            if not response[0][1].strip():
                problems.append(
                    Problem("empty_response", "the last message (the answer) is empty", column)
                )
        if not prompt or not prompt[-1][1].strip():
            self._empty(problems, "empty_prompt", "the prompt (last user turn) is empty", column)
        return prompt, response, system

    def _tools(self, row: dict, problems: list[Problem]) -> str:
        column = self.columns.tools
        if not column:
            return ""
        tools = row.get(column)
        if tools is None:
            return ""
        if isinstance(tools, str):
            return tools
        if self.spec.formatting == "openai" and isinstance(tools, (list, dict)):
            return json.dumps(tools, ensure_ascii=False)
        self._fail(
            problems,
            "wrong_type",
            f"'{column}' is {_json_type(tools)}, expected a JSON string describing the tools",
            column,
        )
        return ""

    def _media(
        self, row: dict, prompt: list, response: list, problems: list[Problem]
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
                    Problem(
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
                            Problem(
                                "wrong_type",
                                f"'{column}' holds {_json_type(frame)}, expected paths",
                                column,
                            )
                        )
            missing = [path for path in paths if not self._media_exists(path)]
            if missing:
                shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
                problems.append(
                    Problem(
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
                    Problem(
                        "media_count_mismatch",
                        f"{placeholders} {placeholder} placeholder(s) in the messages but "
                        f"{len(items)} file(s) in '{column}'",
                        column,
                    )
                )
            found[name] = tuple(self._resolve(item) for item in items)
        return found

    # -- helpers ----------------------------------------------------------------

    def _fail(self, problems: list[Problem], code: str, message: str, column: str | None = None):
        problems.append(Problem(code, message, column))
        raise RowInvalid

    def _empty(self, problems: list[Problem], code: str, message: str, column: str | None):
        severity = Severity.WARNING if self.kind == "pretrain" else Severity.ERROR
        problems.append(Problem(code, message, column, severity))

    def _string(
        self, row: dict, column: str | None, problems: list[Problem], required: bool
    ) -> str:
        if not column:
            return ""
        if column not in row:
            if required:
                self._fail(
                    problems,
                    "column_missing",
                    f"the row has no '{column}' column{self._keys_hint(row)}",
                    column,
                )
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

    def _content(
        self,
        message: dict,
        index: int | None,
        problems: list[Problem],
        openai: bool = False,
        column: str | None = None,
    ) -> str:
        tag = self.tags.content_tag
        where = column or f"{self.columns.messages}[{index}]"
        label = f"message {index + 1}" if index is not None else f"'{column}'"
        if tag not in message:
            if openai and message.get("tool_calls"):
                return ""
            self._fail(
                problems,
                "column_missing",
                f"{label} has no '{tag}' key (the entry's content_tag)",
                where,
            )
        content = message[tag]
        if content is None and openai:
            return ""
        if not isinstance(content, str):
            self._fail(
                problems,
                "wrong_type",
                f"{label} has {_json_type(content)} as {tag}, expected a string",
                where,
            )
        return content

    def _kto_tag(self, row: dict, problems: list[Problem]) -> bool:
        column = self.columns.kto_tag
        if column not in row:
            self._fail(
                problems,
                "column_missing",
                f"the row has no '{column}' column (the kto_tag){self._keys_hint(row)}",
                column,
            )
        tag = row[column]
        if not isinstance(tag, bool):
            self._fail(
                problems,
                "kto_tag_not_bool",
                f"'{column}' is {tag!r}; a KTO label must be true or false",
                column,
            )
        return tag

    def _tag_mapping(self) -> dict[str, str]:
        tags = self.tags
        mapping = {}
        for tag, role in (
            (tags.user_tag, "user"),
            (tags.assistant_tag, "assistant"),
            (tags.observation_tag, "observation"),
            (tags.function_tag, "function"),
        ):
            if tag:
                mapping.setdefault(tag, role)
        return mapping

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
