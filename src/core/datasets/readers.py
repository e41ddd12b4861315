"""Streaming readers for the files a local entry names: rows come one at a time, with place.

Supported as LLaMA-Factory loads them: json (an array, or one object per line), jsonl,
csv, parquet, arrow, txt (one row `{"text": line}` per line). A folder is read file by
file in name order; its files must share one type. No file is ever read whole: JSON
arrays are split element by element by a small bracket/string scanner.
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
CHUNK = 1 << 20

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
        yield from _read_json(path, progress)
    elif kind == "text":
        yield from _read_text(path, progress)
    else:
        yield from _read_columnar(path, kind, progress)


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


def _read_json(path: Path, progress: Progress | None) -> Iterator[tuple]:
    import orjson

    if json_layout(path) == "array":
        for row, line, _start, _end, value, error in scan_json_array(path, progress):
            yield row, line, value, error
        return
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    with open(path, "rb") as handle:
        row = 0
        line = 0
        for text in handle:
            line += 1
            try:
                value = loads(text)
            except decode_error as error:
                if not text.strip():
                    continue
                row += 1
                yield row, line, None, f"invalid JSON on line {line}: {error.msg}"
                continue
            row += 1
            if progress is not None and not row % 50_000:
                progress(handle.tell())
            yield row, line, value, None


# A run of anything but brackets, strings skipped whole, up to the next bracket.
if sys.version_info >= (3, 11):
    _TO_BRACKET = re.compile(rb'(?:[^\[\]{}"]++|"[^"\\]*+(?:\\.[^"\\]*+)*+")*+([\[\]{}])', re.S)
else:  # pragma: no cover - no possessive quantifiers before 3.11
    _TO_BRACKET = re.compile(rb'(?:[^\[\]{}"]|"[^"\\]*(?:\\.[^"\\]*)*")*([\[\]{}])', re.S)
_SCALAR = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[^,\]\s]+')
_BLANK = re.compile(rb"[ \t\r\n]*")
_OPEN = (0x7B, 0x5B)  # { [
_AFTER_ELEMENT = (0x2C, 0x5D)  # , ]


def scan_json_array(
    path: Path, progress: Progress | None = None
) -> Iterator[tuple[int, int, int, int, Any, str | None]]:
    """(row, line, start, end, value, error) for each top-level element of a JSON array.

    start/end are byte offsets of the element in the file. When the array itself is
    malformed, the last item has end -1 and an error; a bad element alone has an error.
    """
    with open(path, "rb") as handle:
        yield from _ArrayScanner(handle, progress).elements()


def split_json_array(path: Path) -> Iterator[tuple[int, int, int, Any]]:
    """(row, line, byte offset, value) for each readable element of a JSON array."""
    for row, line, start, _end, value, error in scan_json_array(path):
        if error is None:
            yield row, line, start, value


class _ArrayScanner:
    """Finds element boundaries of a JSON array without reading the file whole.

    Exact path: bracket depth outside strings (a regex skips strings and plain text).
    Fast path: raw newlines never occur inside JSON strings, so once the first element
    shows how elements close (e.g. "\\n  }"), the next closing is guessed with one
    bytes.find and confirmed by parsing the slice; a wrong guess falls back to the exact
    path, so the result never depends on the guess.
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
        self.tail: bytes | None = None  # how an element ends, learnt from the first one
        self.misses = 0

    def more(self, at_least: int = CHUNK) -> bool:
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
        return 0

    def blank(self, pos: int) -> int:
        while True:
            end = _BLANK.match(self.buf, pos).end()
            if end < len(self.buf) or not self.more():
                return end

    def elements(self) -> Iterator[tuple[int, int, int, int, Any, str | None]]:
        self.more()
        pos = 3 if self.buf.startswith(b"\xef\xbb\xbf") else 0
        pos = self.blank(pos) + 1  # past the '[' json_layout saw
        row = 0
        while True:
            pos = self.blank(pos)
            if pos >= len(self.buf):
                at = self.base + pos
                yield row + 1, self.line_at(pos), at, -1, None, "the JSON array is not closed"
                return
            byte = self.buf[pos]
            if byte == 0x5D:  # ]
                pos = self.blank(pos + 1)
                if pos < len(self.buf):
                    at = self.base + pos
                    yield (
                        row + 1,
                        self.line_at(pos),
                        at,
                        -1,
                        None,
                        "unexpected text after the array",
                    )
                return
            if row:
                if byte != 0x2C:  # ,
                    message = "expected ',' or ']' between array elements"
                    yield row + 1, self.line_at(pos), self.base + pos, -1, None, message
                    return
                pos = self.blank(pos + 1)
                if pos >= len(self.buf):
                    continue
            if pos > CHUNK:
                pos = self.trim(pos)
            row += 1
            start = pos
            line = self.line_at(start)
            end, value, error = self.element(start)
            if end < 0:
                yield row, line, self.base + start, -1, None, error
                return
            yield row, line, self.base + start, self.base + end, value, error
            pos = end

    def element(self, start: int) -> tuple[int, Any, str | None]:
        """(end, value, error) of the element at start; end -1 when the file ends inside it."""
        if self.tail is not None and self.buf[start] in _OPEN:
            guessed = self.guess(start)
            if guessed is not None:
                return guessed
        end = self.exact_end(start)
        if end < 0:
            return -1, None, "the file ends inside this element"
        data = self.buf[start:end]
        if self.tail is None and data[:1] in (b"{", b"["):
            newline = data.rfind(b"\n")
            self.tail = data[newline:] if newline >= 0 else data[-1:]
        try:
            return end, self.loads(data), None
        except self.decode_error as error:
            return end, None, f"invalid JSON: {error.msg}"

    def guess(self, start: int) -> tuple[int, Any, None] | None:
        tail = self.tail
        search = start
        for _attempt in range(3):
            found = self.buf.find(tail, search)
            while found < 0:
                if not self.more(len(self.buf) - start):
                    return None
                found = self.buf.find(tail, search)
            end = found + len(tail)
            after = self.blank(end)
            if after < len(self.buf) and self.buf[after] in _AFTER_ELEMENT:
                try:
                    return end, self.loads(self.buf[start:end]), None
                except self.decode_error:
                    pass
            search = found + 1
        self.misses += 1
        if self.misses > 64:
            self.tail = None  # this file's layout defeats guessing: stay exact
        return None

    def exact_end(self, start: int) -> int:
        """End offset (exclusive) in buf of the element at start, or -1 at a premature end."""
        if self.buf[start] not in _OPEN:
            while True:
                match = _SCALAR.match(self.buf, start)
                if match and (match.end() < len(self.buf) or self.eof):
                    return match.end()
                if match is None and start < len(self.buf):
                    return start + 1  # a stray byte: let the JSON parser name it
                if not self.more():
                    return match.end() if match else -1
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
