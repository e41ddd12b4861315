"""Rows of one file decoded together: how whole-file walks take rows without per-row overhead."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

BATCH = 1 << 15  # bytes of rows decoded together: small enough to stay in the CPU cache

Progress = Callable[[int], None]  # bytes read so far in the current file


class RowBatch:
    """Consecutive rows of one file: `values[i]` is row `row + i`, decoded together.

    Whole-file walks (validation) take rows a batch at a time to avoid per-row Python
    overhead; `line(i)` (and, for JSON arrays, `span(i)`: the element's byte offsets) is
    worked out only when asked for, since only broken rows need one. An unreadable row
    comes alone, as values [None] with `error` set.
    """

    __slots__ = ("row", "values", "line", "span", "error")

    def __init__(
        self,
        row: int,
        values: list[Any],
        line: Callable[[int], int | None],
        span: Callable[[int], tuple[int, int]] | None = None,
        error: str | None = None,
    ):
        self.row = row
        self.values = values
        self.line = line
        self.span = span
        self.error = error


def grouped(rows: Iterator[tuple], size: int = 4096) -> Iterator[RowBatch]:
    """(row, line, value, error) tuples of consecutive rows -> RowBatches."""
    values: list[Any] = []
    lines: list[int | None] = []
    first = 0
    for row, line, value, error in rows:
        if error is not None or len(values) >= size:
            if values:
                yield RowBatch(first, values, lines.__getitem__)
                values, lines = [], []
            if error is not None:
                yield RowBatch(row, [None], [line].__getitem__, error=error)
                continue
        if not values:
            first = row
        values.append(value)
        lines.append(line)
    if values:
        yield RowBatch(first, values, lines.__getitem__)
