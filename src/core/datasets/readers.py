"""Streaming readers for the files a local entry names: rows come one at a time, with place.

Supported as LLaMA-Factory loads them: json (an array, or one object per line), jsonl,
csv, parquet, arrow, txt (one row `{"text": line}` per line). A folder is read file by
file in name order; its files must share one type. No file is ever read whole: JSON
arrays are split by the scanner in json_array.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunedeck.core.datasets.batch import BATCH, Progress, RowBatch, grouped
from tunedeck.core.datasets.decoding import BOM, json_problem, utf8_message
from tunedeck.core.datasets.json_array import array_batches
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
    return grouped(read_file_rows(path, kind, progress))


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
        yield from array_batches(path, progress)
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
    row = line = offset = 0
    with open(path, "rb") as handle:
        while texts := handle.readlines(BATCH):
            if not line and texts[0].startswith(BOM):  # as the .json and .csv readers do
                texts[0] = texts[0][len(BOM) :]
                offset = len(BOM)
            try:
                values = list(map(loads, texts))
            except decode_error:
                for batch in grouped(_json_lines_one_by_one(texts, row, line, offset)):
                    row = batch.row + len(batch.values) - 1
                    yield batch
            else:
                yield RowBatch(row + 1, values, (line + 1).__add__)
                row += len(values)
            line += len(texts)
            offset = handle.tell()
            if progress is not None:
                progress(offset)


def _json_lines_one_by_one(texts: list[bytes], row: int, line: int, offset: int) -> Iterator[tuple]:
    """(row, line, value, error) per line; blank lines are skipped, as LLaMA-Factory does.
    `offset` is where the first text starts in the file."""
    import orjson

    for text in texts:
        line += 1
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as error:
            if text.strip():
                row += 1
                yield row, line, None, json_problem(text, error.msg, offset, line)
        else:
            row += 1
            yield row, line, value, None
        offset += len(text)


# ---------------------------------------------------------------------------- text


def _read_text(path: Path, progress: Progress | None) -> Iterator[tuple]:
    with open(path, "rb") as handle:
        line = 0
        for raw in handle:
            line += 1
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                where = handle.tell() - len(raw)
                yield line, line, None, utf8_message(raw, error, where, line)
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
    ragged = _RaggedRows(path) if kind == "csv" else None
    row = 0
    try:
        for batch in _batches(path, kind, ragged):
            if ragged is not None and (ragged.pending or _has_binary(batch)):
                for item in ragged.interleave(_text_rows(batch), row):
                    row = item[0]
                    yield item
            else:
                for value in batch.to_pylist():
                    row += 1
                    yield row, None, value, None
            if progress is not None:
                progress(0)
        if ragged is not None:
            yield from ragged.interleave([], row)
    except (pa.ArrowException, OSError, ValueError) as error:
        yield row + 1, None, None, f"cannot read {kind} data: {error}"


def _batches(path: Path, kind: str, ragged: _RaggedRows | None = None) -> Iterator[Any]:
    import pyarrow as pa

    if kind == "parquet":
        import pyarrow.parquet as pq

        yield from pq.ParquetFile(path).iter_batches(batch_size=1024)
    elif kind == "csv":
        import pyarrow.csv as pcsv

        # one thread, so that pyarrow numbers a ragged row; it is then skipped and reported
        read = pcsv.ReadOptions(block_size=1 << 20, use_threads=False)
        parse = pcsv.ParseOptions(invalid_row_handler=ragged.skip if ragged else None)
        yield from pcsv.open_csv(path, read_options=read, parse_options=parse)
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


LINE = "{line}"  # where a CSV row's message names its line, once _RaggedRows knows it


class _RaggedRows:
    """CSV rows with the wrong number of fields: pyarrow skips them, we report each one as an
    unreadable row at its own place, with the line it is on (as for rows that are not UTF-8)."""

    def __init__(self, path: Path):
        self.path = path
        self.pending: list[tuple[int, str]] = []  # (row, message without its line)
        self.seen = (0, 0)  # the last (record number, line) _line_of read
        self.lines: Iterator[tuple[int, int]] | None = None

    def skip(self, invalid: Any) -> str:
        # pyarrow numbers records (the header is 1) when it reads on one thread
        row = invalid.number - 1 if invalid.number is not None else 0
        count = invalid.actual_columns
        self.pending.append(
            (
                row,
                f"line {LINE} has {count} field{'s' * (count != 1)} where the header has "
                f"{invalid.expected_columns}: {invalid.text[:80]}",
            )
        )
        return "skip"

    def interleave(self, items: list[tuple[Any, str | None]], row: int) -> Iterator[tuple]:
        """(row, line, value, error) for a batch's rows with the ragged rows in place; a row
        with an error gets its line."""
        pending = self.pending
        for value, error in items:
            while pending and pending[0][0] <= row + 1:
                row += 1
                yield self._unreadable(row, pending.pop(0)[1])
            row += 1
            yield (row, None, value, None) if error is None else self._unreadable(row, error)
        if not items:
            while pending:
                row += 1
                yield self._unreadable(row, pending.pop(0)[1])

    def _unreadable(self, row: int, message: str) -> tuple:
        line = self._line_of(row + 1)
        return row, line, None, message.replace(LINE, str(line), 1)

    def _line_of(self, record: int) -> int:
        """The line of a record (1 is the header); blank lines hold no record."""
        if self.lines is None or record <= self.seen[0]:
            self.lines = _records(self.path)
        for seen in self.lines:
            self.seen = seen
            if seen[0] == record:
                return seen[1]
        return record


def _records(path: Path) -> Iterator[tuple[int, int]]:
    """(record number, line number) of each non-blank line of a file, as pyarrow counts them."""
    with open(path, "rb") as handle:
        number = 0
        for line, text in enumerate(handle, 1):
            if text.strip():
                number += 1
                yield number, line


def _has_binary(batch: Any) -> bool:
    import pyarrow as pa

    return any(pa.types.is_binary(field.type) for field in batch.schema)


def _text_rows(batch: Any) -> list[tuple[Any, str | None]]:
    """(value, error) per row; a CSV column pyarrow left as bytes (some value is not UTF-8)
    is decoded row by row, and the row whose value does not decode is unreadable."""
    items: list[tuple[Any, str | None]] = []
    for value in batch.to_pylist():
        error = None
        for column, cell in value.items():
            if isinstance(cell, bytes):
                try:
                    value[column] = cell.decode("utf-8")
                except UnicodeDecodeError as problem:
                    bad = cell[problem.start]
                    error = (
                        f"invalid UTF-8 on line {LINE}: '{column}' has byte 0x{bad:02x} "
                        f"at byte {problem.start} of its value"
                    )
                    break
        items.append((None, error) if error else (value, None))
    return items
