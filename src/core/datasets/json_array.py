"""The top-level elements of a JSON array, found without reading the file whole.

A small bracket/string scanner splits the array exactly; for the common regular layouts
a run of elements is parsed with one orjson call, cut where their learnt junction occurs.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tunedeck.core.datasets.batch import BATCH, Progress, RowBatch
from tunedeck.core.datasets.decoding import json_problem

CHUNK = 1 << 20  # bytes read at a time

# A run of anything but brackets, strings skipped whole, up to the next bracket.
if sys.version_info >= (3, 11):
    _TO_BRACKET = re.compile(rb'(?:[^\[\]{}"]++|"[^"\\]*+(?:\\.[^"\\]*+)*+")*+([\[\]{}])', re.S)
else:  # pragma: no cover - no possessive quantifiers before 3.11
    _TO_BRACKET = re.compile(rb'(?:[^\[\]{}"]|"[^"\\]*(?:\\.[^"\\]*)*")*([\[\]{}])', re.S)
_SCALAR = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[^,\]\s]+')
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_BLANK = re.compile(rb"[ \t\r\n]*")
_SEPARATOR = re.compile(rb"[ \t\r\n]*,?[ \t\r\n]*")
_OPEN = (0x7B, 0x5B)  # { [
_MAX_MISSES = 64


def array_batches(path: Path, progress: Progress | None = None) -> Iterator[RowBatch]:
    """The elements of the JSON array in `path` as RowBatches, unreadable ones alone."""
    with open(path, "rb") as handle:
        yield from _ArrayScanner(handle, progress).batches()


def scan_json_array(
    path: Path, progress: Progress | None = None
) -> Iterator[tuple[int, int, int, int, Any, str | None]]:
    """(row, line, start, end, value, error) for each top-level element of a JSON array.

    start/end are byte offsets of the element in the file. When the array itself is
    malformed, the last item has end -1 and an error; a bad element alone has an error.
    """
    for rows in array_batches(path, progress):
        row, line, span, error = rows.row, rows.line, rows.span, rows.error
        for index, value in enumerate(rows.values):
            yield (row + index, line(index), *span(index), value, error)


class _ArrayScanner:
    """Finds element boundaries of a JSON array without reading the file whole.

    Exact path: bracket depth outside strings (a regex skips strings and plain text), one
    element at a time. Fast path (runs): the first elements show how one element ends and
    the next begins (e.g. "\\n  },\\n  {"); the text from an element's start to the
    last such junction within BATCH bytes is parsed with one orjson call as
    "[" + text + "]". Raw newlines never occur inside JSON strings, but whatever the
    junction, a parse that succeeds proves the text is whole elements, so the values are
    exact. Where each element lies is worked out only when asked (_RunSpans). A parse
    that fails (a broken element) is redone piece by piece up to the broken element,
    which then takes the exact path.
    """

    def __init__(self, handle: Any, progress: Progress | None):
        import orjson

        self.loads = orjson.loads
        self.decode_error = orjson.JSONDecodeError
        self.handle = handle
        self.progress = progress
        self.buf = b""
        self.base = 0  # file offset of buf[0]
        self.eof = False
        self.lines = 1  # line number at buf[counted]
        self.counted = 0
        self.junction: bytes | None = None  # previous element's tail + separator + opener
        self.tail_size = 0  # bytes of the junction that belong to the previous element
        self.misses = 0
        self.broken_at = -1  # where piecewise parsing stopped: that element goes exact

    def more(self, at_least: int = 0) -> bool:
        if self.eof:
            return False
        data = self.handle.read(max(CHUNK, at_least))
        if not data:
            self.eof = True
            return False
        self.buf += data
        if self.progress is not None:
            self.progress(self.base + len(self.buf))
        return True

    def line_at(self, pos: int) -> int:
        self.lines += self.buf.count(b"\n", self.counted, pos)
        self.counted = pos
        return self.lines

    def trim(self, pos: int) -> int:
        """Drop consumed bytes before pos; returns the new position (0)."""
        self.line_at(pos)
        self.buf = self.buf[pos:]
        self.base += pos
        self.counted = 0
        self.broken_at -= pos
        return 0

    def blank(self, pos: int) -> int:
        while True:
            end = _BLANK.match(self.buf, pos).end()
            if end < len(self.buf) or not self.more():
                return end

    def batches(self) -> Iterator[RowBatch]:
        """Runs of elements (fast path) or single elements, errors included, in order."""
        self.more()
        pos = 3 if self.buf.startswith(b"\xef\xbb\xbf") else 0
        pos = self.blank(pos) + 1  # past the '[' json_layout saw
        row = 0
        start = end = -1  # the previous element, when read alone
        while True:
            pos = self.blank(pos)
            if row and end >= 0:  # after an element read alone: ',' or ']' must follow
                pos, error = self.separator(pos, start, end)
            else:  # at the start, or right after a run (which ends past a ',')
                pos, error = self.opening(pos, row)
            if error is not None:
                if error:
                    yield self.failure(row + 1, pos, error)
                return
            if pos > CHUNK:
                pos = self.trim(pos)
            if (
                self.junction is not None
                and self.buf[pos] == self.junction[-1]
                and pos != self.broken_at
            ):
                batch, after = self.run(pos, row + 1)
                if batch is not None:
                    row += len(batch.values)
                    pos, end = after, -1
                    yield batch
                    continue
            row += 1
            start = pos
            line = self.line_at(start)
            end, value, error = self.element(start)
            if end < 0:
                yield self.failure(row, start, error)
                return
            span = (self.base + start, self.base + end)
            yield RowBatch(row, [value], line.__add__, [span].__getitem__, error)
            pos = end

    def opening(self, pos: int, row: int) -> tuple[int, str | None]:
        """At an element's start: (pos, None), or the array's end ('' when well closed)."""
        if pos >= len(self.buf):
            return pos, "the JSON array is not closed"
        if self.buf[pos] != 0x5D or row:  # ] ends the array here only when it is empty
            return pos, None
        return self.closing(pos)

    def separator(self, pos: int, start: int, end: int) -> tuple[int, str | None]:
        """Past the ',' after the element start:end (learning the junction), or the end."""
        if pos >= len(self.buf):
            return pos, "the JSON array is not closed"
        byte = self.buf[pos]
        if byte == 0x5D:  # ]
            return self.closing(pos)
        if byte != 0x2C:  # ,
            return pos, "expected ',' or ']' between array elements"
        pos = self.blank(pos + 1)
        if pos >= len(self.buf):
            return pos, "the JSON array is not closed"
        if self.junction is None and self.misses <= _MAX_MISSES:
            self.learn(start, end, pos)
        return pos, None

    def closing(self, pos: int) -> tuple[int, str]:
        pos = self.blank(pos + 1)
        return pos, "unexpected text after the array" if pos < len(self.buf) else ""

    def failure(self, row: int, pos: int, error: str) -> RowBatch:
        span = (self.base + pos, -1)
        return RowBatch(row, [None], self.line_at(pos).__add__, [span].__getitem__, error)

    def learn(self, start: int, end: int, following: int) -> None:
        """Remember how the element start:end joins the next one, at `following`.

        The junction is the element's last line (for a one-line element, its final run
        of closing brackets), the separator and the next element's opening bracket.
        """
        buf = self.buf
        if buf[start] not in _OPEN or buf[following] not in _OPEN:
            return
        tail_start = buf.rfind(b"\n", start, end)
        if tail_start < 0:
            tail_start = start + len(buf[start:end].rstrip(b"}] \t\r"))
        self.junction = buf[tail_start : following + 1]
        self.tail_size = end - tail_start

    def run(self, start: int, row: int) -> tuple[RowBatch | None, int]:
        """(batch, next element's start) for the elements from start up to the last
        junction in the buffer, parsed with one orjson call; (None, -1) when that fails.
        """
        junction = self.junction
        last = self.last_junction(start)
        if last < 0:  # the array's last element, or a huge one: the exact path reads it
            return self.miss()
        buf = self.buf
        end = last + self.tail_size
        try:
            values = self.loads(b"[" + buf[start:end] + b"]")
        except self.decode_error:
            values = None
        if values is None:  # a broken element (or a guess gone wrong) in the run
            return self.piecewise(start, row, last)
        spans = _RunSpans(self, start, end, len(values))
        return RowBatch(row, values, spans.line, spans.span), last + len(junction) - 1

    def last_junction(self, start: int) -> int:
        """The last junction within BATCH bytes of start (else the first one), or -1."""
        for _attempt in range(2):
            buf = self.buf
            last = buf.rfind(self.junction, start, start + BATCH)
            if last < 0:
                last = buf.find(self.junction, start)
            if last >= 0 or len(buf) - start >= CHUNK or not self.more():
                return last
        return -1

    def piecewise(self, start: int, row: int, last: int) -> tuple[RowBatch | None, int]:
        """The run from start parsed piece by piece, up to the first piece that fails."""
        junction, tail_size, buf, loads = self.junction, self.tail_size, self.buf, self.loads
        step = len(junction) - tail_size - 1
        values: list[Any] = []
        spans = _RunSpans(self, start, -1, 0)
        at = buf.find(junction, start, last + len(junction))
        while at >= 0:
            end = at + tail_size
            try:
                values.append(loads(buf[start:end]))
            except self.decode_error:
                self.broken_at = start
                break
            spans.ends.append(end)
            start = end + step
            spans.starts.append(start)
            at = buf.find(junction, start, last + len(junction))
        if not values:
            return self.miss()
        del spans.starts[len(values) :]
        spans.count, spans.end = len(values), spans.ends[-1]
        return RowBatch(row, values, spans.line, spans.span), start

    def miss(self) -> tuple[None, int]:
        self.misses += 1
        if self.misses > _MAX_MISSES:
            self.junction = None  # this file's layout defeats the guess: stay exact
        return None, -1

    def element(self, start: int) -> tuple[int, Any, str | None]:
        """(end, value, error) of the element at start; end -1 when the file ends inside it."""
        end = self.exact_end(start)
        if end < 0:
            return -1, None, "the file ends inside this element"
        try:
            return end, self.loads(self.buf[start:end]), None
        except self.decode_error as error:
            return end, None, json_problem(self.buf[start:end], error.msg, self.base + start)

    def exact_end(self, start: int) -> int:
        """End offset (exclusive) in buf of the element at start, or -1 at a premature end."""
        if self.buf[start] not in _OPEN:
            return self.scalar_end(start)
        depth = 0
        pos = start
        match_at = _TO_BRACKET.match
        while True:
            match = match_at(self.buf, pos)
            if match is None:
                if not self.more(len(self.buf) - start):
                    return -1
                continue
            pos = match.end()
            if self.buf[pos - 1] in _OPEN:
                depth += 1
            else:
                depth -= 1
                if depth == 0:
                    return pos

    def scalar_end(self, start: int) -> int:
        """End offset in buf of the string, number or literal at start."""
        while not self.eof:
            if self.buf[start] == 0x22:  # a string is whole only once its quote closes
                match = _STRING.match(self.buf, start)
            else:
                match = _SCALAR.match(self.buf, start)
                if match is None:
                    return start + 1  # a stray byte: let the JSON parser name it
            if match and match.end() < len(self.buf):
                return match.end()
            self.more()
        match = _SCALAR.match(self.buf, start)
        if match is None:
            return start + 1 if start < len(self.buf) else -1
        return match.end()


class _RunSpans:
    """Where the elements of a run lie, worked out on first use, forward from the last asked.

    An element's end is the next junction; that guess is confirmed by parsing the piece
    alone (see _ArrayScanner). Should one not parse, the run is split exactly instead.
    """

    def __init__(self, scanner: _ArrayScanner, start: int, end: int, count: int):
        self.buf = scanner.buf
        self.base = scanner.base
        self.junction = scanner.junction
        self.tail_size = scanner.tail_size
        self.loads = scanner.loads
        self.decode_error = scanner.decode_error
        self.end = end
        self.count = count
        self.starts = [start]
        self.ends: list[int] = []
        self.first_line = self.number = scanner.line_at(start)
        self.counted = start

    def span(self, index: int) -> tuple[int, int]:
        """File offsets (start, end) of element `index` of the run."""
        while len(self.ends) <= index:
            self.find_next()
        return self.base + self.starts[index], self.base + self.ends[index]

    def line(self, index: int) -> int:
        """The line element `index` of the run starts on."""
        start = self.span(index)[0] - self.base
        if start < self.counted:  # asked out of order: count again from the run's start
            self.counted, self.number = self.starts[0], self.first_line
        self.number += self.buf.count(b"\n", self.counted, start)
        self.counted = start
        return self.number

    def find_next(self) -> None:
        known = len(self.ends)
        start = self.starts[known]
        at = self.buf.find(self.junction, start, self.end)
        end = self.end if known == self.count - 1 else at + self.tail_size
        try:
            if at < 0 and end != self.end:
                raise ValueError("no junction")
            self.loads(self.buf[start:end])
        except (ValueError, self.decode_error):  # the guess was wrong here: split exactly
            self.starts, self.ends = _element_spans(self.buf, self.starts[0], self.end)
            return
        self.ends.append(end)
        if known + 1 < self.count:
            self.starts.append(end + len(self.junction) - self.tail_size - 1)


def _element_spans(buf: bytes, start: int, end: int) -> tuple[list[int], list[int]]:
    """Exact (starts, ends) of the elements in buf[start:end], a run of whole elements."""
    starts, ends = [], []
    pos = start
    while pos < end:
        starts.append(pos)
        if buf[pos] in _OPEN:
            depth = 0
            while True:
                pos = _TO_BRACKET.match(buf, pos).end()
                depth += 1 if buf[pos - 1] in _OPEN else -1
                if not depth:
                    break
        else:
            pos = _SCALAR.match(buf, pos).end()
        ends.append(pos)
        pos = _SEPARATOR.match(buf, pos).end()
    return starts, ends
