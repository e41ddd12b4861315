"""Rows of a local entry: a stream of Conversations, and random access by index.

Random access (for row browsers) keeps a byte-offset index per JSON/text file under
cache_dir()/datasets, keyed by the file's path, size and mtime, so reopening a large file
costs one seek per row.
"""

from __future__ import annotations

import hashlib
import os
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunedeck.core.datasets.conversation import Conversation, RowLocation
from tunedeck.core.datasets.convert import converter_for
from tunedeck.core.datasets.decoding import BOM, json_problem, utf8_message
from tunedeck.core.datasets.issues import ERROR, Issue
from tunedeck.core.datasets.json_array import scan_json_array
from tunedeck.core.datasets.readers import data_files, json_layout, read_file_rows
from tunedeck.core.datasets.spec import DatasetSpec
from tunedeck.core.errors import DatasetError, Location
from tunedeck.core.locations import cache_dir, ensure


@dataclass(frozen=True)
class RowView:
    """One row for display: where it is, what is stored, and what the model would see."""

    index: int  # 0-based over all files of the entry
    file: str
    row: int
    line: int | None
    raw: Any  # the decoded row; for an unreadable JSON row, its text as stored
    conversation: Conversation | None
    issues: tuple[Issue, ...] = ()


def iter_conversations(spec: DatasetSpec, data_dir: str | Path) -> Iterator[Conversation]:
    """The usable rows of a local entry as Conversations (rows LLaMA-Factory drops are skipped)."""
    files, kind = data_files(spec, data_dir)
    converter = converter_for(spec, data_dir)
    for path in files:
        name = str(path)
        for row, _line, value, error in read_file_rows(path, kind):
            if error is not None:
                continue
            conversation, _ = converter.convert(value, RowLocation(name, row))
            if conversation is not None:
                yield conversation


def count_rows(spec: DatasetSpec, data_dir: str | Path) -> int:
    """How many rows the entry has (readable or not)."""
    files, kind = data_files(spec, data_dir)
    return sum(_file_row_count(path, kind) for path in files)


def get_row(spec: DatasetSpec, data_dir: str | Path, index: int) -> RowView:
    """Row `index` (0-based over all files of the entry), raw and normalised."""
    files, kind = data_files(spec, data_dir)
    if index < 0:
        raise DatasetError(f"row index {index} is negative", location=Location(column=spec.name))
    remaining = index
    for path in files:
        count = _file_row_count(path, kind)
        if remaining < count:
            row, line, value, error = _read_one(path, kind, remaining)
            name = str(path)
            converter = converter_for(spec, data_dir)
            if error is not None:
                issue = Issue(ERROR, "row_unreadable", error, name, row, None, line, spec.name)
                return RowView(index, name, row, line, value, None, (issue,))
            conversation, problems = converter.convert(value, RowLocation(name, row))
            issues = tuple(
                Issue(p.severity, p.code, p.message, name, row, p.column, line, spec.name)
                for p in problems
            )
            return RowView(index, name, row, line, value, conversation, issues)
        remaining -= count
    total = index - remaining
    raise DatasetError(
        f"row index {index} is out of range: '{spec.name}' has {total} rows",
        location=Location(column=spec.name),
    )


# ---------------------------------------------------------------------------- index


def _file_row_count(path: Path, kind: str) -> int:
    if kind in ("json", "text"):
        return len(_offsets(path, kind)) // 3
    if kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(path).metadata.num_rows
        except (pa.ArrowException, OSError):
            pass  # not parquet after all: the reader reports it as one unreadable row
    return sum(1 for _ in read_file_rows(path, kind))


def _read_one(path: Path, kind: str, position: int) -> tuple[int, int | None, Any, str | None]:
    """(row, line, value, error) of the row at 0-based position in one file; the value of
    an unreadable JSON row is its text, so that a row browser can show what is broken."""
    if kind not in ("json", "text"):
        for item in read_file_rows(path, kind):
            if item[0] == position + 1:
                return item
        raise DatasetError("row vanished while reading", location=Location(file=str(path)))
    import orjson

    offsets = _offsets(path, kind)
    start, end, line = offsets[3 * position : 3 * position + 3]
    if end < 0:
        return position + 1, line, None, "the JSON array is broken here"
    with open(path, "rb") as handle:
        handle.seek(start)
        data = handle.read(end - start)
    row = position + 1
    if kind == "text":
        row = line
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            return row, line, None, utf8_message(data, error, start, line)
        if start == 0 and text.startswith("\ufeff"):
            text = text[1:]
        return row, line, {"text": text.rstrip("\r\n")}, None
    if start == 0 and data.startswith(BOM):
        data, start = data[len(BOM) :], len(BOM)
    try:
        return row, line, orjson.loads(data), None
    except orjson.JSONDecodeError as error:
        text = data.decode("utf-8", "replace").rstrip("\r\n")
        return row, line, text, json_problem(data, error.msg, start, line)


def _offsets(path: Path, kind: str) -> array:
    """Flat (start, end, line) triples, one per row, cached on disk by path+size+mtime."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{kind}|1"
    cache = cache_dir() / "datasets" / (hashlib.sha1(key.encode()).hexdigest() + ".idx")
    offsets = array("q")
    try:
        with open(cache, "rb") as handle:
            offsets.frombytes(handle.read())
        return offsets
    except (OSError, ValueError):
        offsets = array("q")
    if kind == "json" and json_layout(path) == "array":
        for _row, line, start, end, _value, _error in scan_json_array(path):
            offsets.extend((start, end, line))
    else:
        blank_skips = kind == "json"
        with open(path, "rb") as handle:
            position = 0
            line = 0
            for raw in handle:
                line += 1
                if not (blank_skips and not raw.strip()):
                    offsets.extend((position, position + len(raw), line))
                position += len(raw)
    try:
        ensure(cache.parent)
        temporary = cache.with_suffix(f".{os.getpid()}.tmp")
        with open(temporary, "wb") as handle:
            handle.write(offsets.tobytes())
        os.replace(temporary, cache)
    except OSError:
        pass  # an unwritable cache only costs speed
    return offsets
