"""Cheap tests that pass the common clean row (or a whole batch of them) before the full walk.

They return True only for rows the converter's walk finds no problem in; anything unusual
returns False, and the caller runs the walk to name the problem. Only plain SFT rows in the
alpaca and sharegpt formats have a fast path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from itertools import chain, repeat
from operator import itemgetter
from typing import Any

from tunedeck.core.datasets.spec import DatasetSpec, dataset_kind

RowCheck = Callable[[Any], bool]
BatchCheck = Callable[[list[Any]], bool]

_ONLY_TEXT = frozenset((str,))
_ONLY_LIST = frozenset((list,))
_TEXT_OR_NULL = frozenset((str, type(None)))


def row_check(spec: DatasetSpec) -> RowCheck | None:
    """A test of one row, or None when this spec has no fast path."""
    if dataset_kind(spec) != "sft" or spec.ranking:
        return None
    if spec.formatting == "alpaca":
        return _alpaca_row(spec)
    if spec.formatting == "sharegpt" and spec.columns.messages:
        return _sharegpt_row(spec)
    return None


def batch_check(spec: DatasetSpec) -> BatchCheck | None:
    """A test that passes a whole list of rows when row_check would pass each one.

    It works column by column with map() and set operations, so a clean batch costs
    a few C-level passes instead of a Python call per row.
    """
    if row_check(spec) is None:
        return None
    if spec.formatting == "alpaca":
        return _alpaca_batch(spec)
    return _sharegpt_batch(spec)


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


def _alpaca_row(spec: DatasetSpec) -> RowCheck | None:
    columns = spec.columns
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


def _sharegpt_row(spec: DatasetSpec) -> RowCheck:
    columns, tags = spec.columns, spec.tags
    messages_column, role_tag, content_tag = columns.messages, tags.role_tag, tags.content_tag
    system_tag = tags.system_tag
    user_roles = frozenset(tag for tag in (tags.user_tag, tags.observation_tag) if tag)
    assistant_roles = frozenset(tag for tag in (tags.assistant_tag, tags.function_tag) if tag)
    system_column, tools_column = columns.system, columns.tools
    only_text = _ONLY_TEXT

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


def _alpaca_batch(spec: DatasetSpec) -> BatchCheck:
    columns = spec.columns
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


def _sharegpt_batch(spec: DatasetSpec) -> BatchCheck:
    columns, tags = spec.columns, spec.tags
    messages_of = itemgetter(columns.messages)
    role_of, content_of = itemgetter(tags.role_tag), itemgetter(tags.content_tag)
    last, second_last = itemgetter(-1), itemgetter(-2)
    optional = tuple(name for name in (columns.system, columns.tools) if name)
    patterns: dict[tuple, bool] = {}  # role sequence -> whether the walk accepts it
    row_ok = _sharegpt_row(spec)
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
                    known = patterns[roles] = row_ok(row)
                if not known:
                    return False
            for turn in (last, second_last):
                if not _all_text(map(content_of, map(turn, conversations))):
                    return False
        except (KeyError, TypeError, IndexError):  # TypeError: not an object, or a list role
            return False
        return all(
            _TEXT_OR_NULL.issuperset(map(type, map(get, rows, repeat(name)))) for name in optional
        )

    return check
