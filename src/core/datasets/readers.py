"""Streaming readers for the files a local entry names: rows come one at a time, with place.

Supported as LLaMA-Factory loads them: json (an array, or one object per line), jsonl,
csv, parquet, arrow, txt (one row `{"text": line}` per line). A folder is read file by
file in name order; its files must share one type. No file is ever read whole: JSON
arrays are split by a small bracket/string scanner or, for the common regular layouts,
parsed a run of elements at a time, cut where their learnt junction occurs.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunedeck.core.datasets.spec import DatasetSpec
from tunedeck.core.errors import DatasetError, Location

FILE_TYPES = {
    "arrow": "arrow",
    "csv": "csv",
    "json": "json",
    "jsonl": "json",
    "parquet": "parquet",
    "txt": "text",
}
CHUNK = 1 << 20  # bytes read at a time
BATCH = 1 << 15  # bytes of rows decoded together: small enough to stay in the CPU cache

Progress = Callable[[int], None]  # bytes read so far in the current file


class DataFileError(DatasetError):
    """A data source that cannot be read at all; `code` is the issue code it maps to."""

    def __init__(self, code: str, message: str, *, location: Location, hint: str | None = None):
        super().__init__(message, location=location, hint=hint)
        self.code = code


@dataclass(frozen=True)
class RawRow:
    """One row as stored: `value` is the decoded row, or None with `error` when unreadable."""

    file: str
    row: int
    line: int | None
    value: Any
    error: str | None = None


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


def data_files(spec: DatasetSpec, data_dir: str | Path) -> tuple[list[Path], str]:
    """The files a local entry names and their shared type, or DataFileError."""
    data_dir = Path(data_dir)
    if not spec.is_local:
        raise DataFileError(
            "remote",
            f"'{spec.name}' loads from {spec.load_from} ({spec.source}), not from a local file",
            location=Location(column=spec.name),
        )
    path = data_dir / (spec.file_name or "")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if not p.name.startswith("."))
        if not files:
            raise DataFileError(
                "folder_empty", "the folder holds no data files", location=Location(file=str(path))
            )
        types: dict[str, list[str]] = {}
        for file in files:
            types.setdefault(file_type(file), []).append(file.name)
        if len(types) > 1:
            listing = "; ".join(f"{kind}: {', '.join(names[:3])}" for kind, names in types.items())
            raise DataFileError(
                "folder_mixed_types",
                f"the files of a folder must share one type, found {listing}",
                location=Location(file=str(path)),
            )
        return files, file_type(files[0])
    if not path.is_file():
        raise DataFileError(
            "file_missing",
            f"'{spec.file_name}' does not exist in {data_dir}",
            location=Location(file=str(path)),
            hint="file_name is relative to the folder that holds dataset_info.json",
        )
    return [path], file_type(path)


def file_type(path: Path) -> str:
    """The reader for a file, by extension (DataFileError for an unsupported one)."""
    extension = path.name.rsplit(".", 1)[-1].lower() if "." in path.name else ""
    kind = FILE_TYPES.get(extension)
    if kind is None or path.is_dir():
        raise DataFileError(
            "unsupported_extension",
            f"'{path.name}' is not a supported data file; use one of "
            + ", ".join(f".{ext}" for ext in FILE_TYPES),
            location=Location(file=str(path)),
        )
    return kind


def iter_rows(spec: DatasetSpec, data_dir: str | Path) -> Iterator[RawRow]:
    """Every row of a local entry, in order, each with its file, 1-based row and line."""
    files, kind = data_files(spec, data_dir)
    for path in files:
        for row, line, value, error in read_file_rows(path, kind):
            yield RawRow(str(path), row, line, value, error)


def read_file_rows(
    path: Path, kind: str, progress: Progress | None = None
) -> Iterator[tuple[int, int | None, Any, str | None]]:
    """(row, line, value, error) for each row of one file of the given type."""
    if kind == "json":
        for batch in _json_batches(path, progress):
            line = batch.line
            if batch.error is not None:
                yield batch.row, line(0), None, batch.error
                continue
            row = batch.row
            for index, value in enumerate(batch.values):
                yield row + index, line(index), value, None
    elif kind == "text":
        yield from _read_text(path, progress)
    else:
        yield from _read_columnar(path, kind, progress)


def read_file_batches(
    path: Path, kind: str, progress: Progress | None = None
) -> Iterator[RowBatch]:
    """The rows of one file as RowBatches (same rows, lines and errors as read_file_rows)."""
    if kind == "json":
        return _json_batches(path, progress)
    return _grouped(read_file_rows(path, kind, progress))


def json_layout(path: Path) -> str:
    """'array' when the file's first non-blank byte is '[', else 'lines' (JSON Lines)."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
        while head and not head.lstrip(b"\xef\xbb\xbf \t\r\n"):
            more = handle.read(4096)
            if not more:
                break
            head = more
    return "array" if head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"[" else "lines"


# ---------------------------------------------------------------------------- json


def _json_batches(path: Path, progress: Progress | None) -> Iterator[RowBatch]:
    if json_layout(path) == "array":
        with open(path, "rb") as handle:
            yield from _ArrayScanner(handle, progress).batches()
    else:
        yield from _json_line_batches(path, progress)


def _json_line_batches(path: Path, progress: Progress | None) -> Iterator[RowBatch]:
    """JSON Lines, BATCH bytes of lines per batch.

    A group of lines that all parse becomes one batch with consecutive line numbers; a
    group with a blank or broken line is read again line by line.
    """
    import orjson

    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    row = line = 0
    with open(path, "rb") as handle:
        while texts := handle.readlines(BATCH):
            try:
                values = list(map(loads, texts))
            except decode_error:
                for batch in _grouped(_json_lines_one_by_one(texts, row, line)):
                    row = batch.row + len(batch.values) - 1
                    yield batch
            else:
                yield RowBatch(row + 1, values, (line + 1).__add__)
                row += len(values)
            line += len(texts)
            if progress is not None:
                progress(handle.tell())


def _json_lines_one_by_one(texts: list[bytes], row: int, line: int) -> Iterator[tuple]:
    """(row, line, value, error) per line; blank lines are skipped, as LLaMA-Factory does."""
    import orjson

    for text in texts:
        line += 1
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as error:
            if not text.strip():
                continue
            row += 1
            yield row, line, None, f"invalid JSON on line {line}: {error.msg}"
            continue
        row += 1
        yield row, line, value, None


def _grouped(rows: Iterator[tuple], size: int = 4096) -> Iterator[RowBatch]:
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


def scan_json_array(
    path: Path, progress: Progress | None = None
) -> Iterator[tuple[int, int, int, int, Any, str | None]]:
    """(row, line, start, end, value, error) for each top-level element of a JSON array.

    start/end are byte offsets of the element in the file. When the array itself is
    malformed, the last item has end -1 and an error; a bad element alone has an error.
    """
    with open(path, "rb") as handle:
        for batch in _ArrayScanner(handle, progress).batches():
            row, line, span, error = batch.row, batch.line, batch.span, batch.error
            for index, value in enumerate(batch.values):
                yield (row + index, line(index), *span(index), value, error)


def split_json_array(path: Path) -> Iterator[tuple[int, int, int, Any]]:
    """(row, line, byte offset, value) for each readable element of a JSON array."""
    for row, line, start, _end, value, error in scan_json_array(path):
        if error is None:
            yield row, line, start, value


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
            return end, None, f"invalid JSON: {error.msg}"

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


# ---------------------------------------------------------------------------- text


def _read_text(path: Path, progress: Progress | None) -> Iterator[tuple]:
    with open(path, "rb") as handle:
        line = 0
        for raw in handle:
            line += 1
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                yield line, line, None, f"not UTF-8 text: {error.reason}"
                continue
            if line == 1 and text.startswith("\ufeff"):
                text = text[1:]
            if progress is not None and not line % 50_000:
                progress(handle.tell())
            yield line, line, {"text": text.rstrip("\r\n")}, None


# ---------------------------------------------------------------------------- columnar


def _read_columnar(path: Path, kind: str, progress: Progress | None) -> Iterator[tuple]:
    try:
        import pyarrow as pa
    except ImportError:  # pragma: no cover - pyarrow is a base dependency
        from tunedeck.core.errors import MissingExtraError

        raise MissingExtraError("pyarrow", "data") from None
    row = 0
    try:
        for batch in _batches(path, kind):
            for value in batch.to_pylist():
                row += 1
                yield row, None, value, None
            if progress is not None:
                progress(0)
    except (pa.ArrowException, OSError, ValueError) as error:
        yield row + 1, None, None, f"cannot read {kind} data: {error}"


def _batches(path: Path, kind: str) -> Iterator[Any]:
    import pyarrow as pa

    if kind == "parquet":
        import pyarrow.parquet as pq

        yield from pq.ParquetFile(path).iter_batches(batch_size=1024)
    elif kind == "csv":
        import pyarrow.csv as pcsv

        reader = pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=1 << 20))
        yield from reader
    else:  # arrow: the IPC stream format (what `datasets` writes), or the IPC file format
        with pa.memory_map(str(path)) as source:
            try:
                reader = pa.ipc.open_stream(source)
                yield from reader
            except pa.ArrowInvalid:
                source.seek(0)
                file_reader = pa.ipc.open_file(source)
                for index in range(file_reader.num_record_batches):
                    yield file_reader.get_batch(index)
