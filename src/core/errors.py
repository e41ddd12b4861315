"""Typed errors a user can cause. Each carries a location and, where we know one, a fix hint."""

from __future__ import annotations

import reprlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """How bad a reported problem is; its value is what JSON output shows."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Location:
    """Where a problem is: a file, a 1-based row or text line, a column or key."""

    file: str | None = None
    row: int | None = None
    line: int | None = None
    column: str | None = None

    def __str__(self) -> str:
        parts = [self.file or ""]
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.column:
            parts.append(f"'{self.column}'")
        return ", ".join(p for p in parts if p)


class TunedeckError(Exception):
    """Base of every error a user can cause; the CLI prints it without a traceback."""

    exit_code = 1

    def __init__(self, message: str, *, location: Location | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location and str(self.location) else ""
        return f"{where}{self.message}"


class UsageError(TunedeckError):
    """The command line itself is wrong (exit code 2)."""

    exit_code = 2


class DatasetError(TunedeckError):
    """A dataset_info.json or a data file cannot be used."""


class TemplateError(TunedeckError):
    """An unknown template or a conversation it cannot render."""


class ConfigError(TunedeckError):
    """A run config is invalid."""


class JobError(TunedeckError):
    """A job cannot be submitted, found or controlled."""


class HostError(TunedeckError):
    """A host is unreachable, refuses us, or lacks what a job needs."""


class MissingExtraError(TunedeckError):
    """An optional dependency is not installed."""

    def __init__(self, module: str, extra: str):
        super().__init__(
            f"this needs '{module}', which is not installed",
            hint=f"pip install 'tunedeck[{extra}]'",
        )


SHOWN_CHARS = 80


class _ShortRepr(reprlib.Repr):
    """reprlib's bounded repr; a huge integer is described, never converted to digits."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxstring = self.maxother = self.maxlong = 60

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 200:
            return f"<an integer of about {int(x.bit_length() * 0.30103)} digits>"
        return super().repr_int(x, level)


_SHORT_REPR = _ShortRepr()


def shorten(value: Any, limit: int = SHOWN_CHARS) -> str:
    """A value as a message shows it: its repr, cut to `limit` characters without ever building
    the whole repr (a YAML alias bomb or a megabyte string stays cheap)."""
    text = _SHORT_REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class StateError(TunedeckError):
    """tunedeck's own files (state dir, job registry, ssh socket dir) are damaged or unsafe."""


class DiskFullError(HostError):
    """No space is left where tunedeck or a job must write."""
