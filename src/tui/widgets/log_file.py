"""A log file read by byte offset: the tail, the lines around an offset, a search, what changed.

Nothing here loads a whole file: every read is a bounded `os.pread`, so memory stays flat for
files of any size. Truncation (size below our offset) and rotation (a new inode at the same
path) are reported by `poll`. This module never renders.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CHUNK = 64 * 1024
MAX_LINE = 64 * 1024  # a longer line is shown cut; we never read further for one line
APPEND_READ_LIMIT = 64 * 1024  # a bigger burst is skipped: we read the new tail instead
MARK_BYTES = 64  # the bytes compared to tell an append from a rewrite


@dataclass(frozen=True)
class Line:
    """One line of text and the byte offset where it starts."""

    offset: int
    text: str


@dataclass(frozen=True)
class Change:
    """What `poll` saw since the last poll."""

    size: int
    grew: bool = False
    truncated: bool = False
    rotated: bool = False
    missing: bool = False


class LogFile:
    """A file opened once and read with `os.pread`; reopened when rotated."""

    poll_seconds = 0.05  # a stat of a local file is cheap

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._fd: int | None = None
        self._inode: tuple[int, int] | None = None
        self.size = 0
        self._mark = b""  # the last bytes before `size`: if they change, the file was rewritten

    def open(self) -> int:
        """Open (or reopen) the file and return its size; a missing file has size 0."""
        self.close()
        try:
            self._fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            self.size = 0
            return 0
        stat = os.fstat(self._fd)
        self._inode = (stat.st_dev, stat.st_ino)
        self.size = stat.st_size
        self._mark = self._read_mark()
        return self.size

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def poll(self) -> Change:
        """Stat the path: has the file grown, been truncated, or been replaced by a new one?"""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return Change(size=self.size, missing=True)
        if self._fd is None or (stat.st_dev, stat.st_ino) != self._inode:
            had_file = self._fd is not None
            self.open()
            return Change(size=self.size, rotated=had_file, grew=not had_file and self.size > 0)
        previous, self.size = self.size, stat.st_size
        rewritten = (
            stat.st_size > previous and self._mark and self._read_mark(previous) != self._mark
        )
        if stat.st_size < previous or rewritten:
            self._mark = self._read_mark()
            return Change(size=stat.st_size, truncated=True)
        if stat.st_size > previous:
            self._mark = self._read_mark()
        return Change(size=stat.st_size, grew=stat.st_size > previous)

    def read(self, offset: int, length: int) -> bytes:
        """Up to `length` bytes at `offset` (fewer at the end of the file)."""
        if self._fd is None or length <= 0 or offset < 0:
            return b""
        return os.pread(self._fd, length, offset)

    def _read_mark(self, end: int | None = None) -> bytes:
        end = self.size if end is None else end
        return self.read(max(0, end - MARK_BYTES), min(end, MARK_BYTES))

    def tail(self, count: int, end: int | None = None) -> tuple[list[Line], int]:
        """The last `count` lines ending at `end` (default: the file size), and the offset after
        the last complete line (a partial last line is included but not counted as read)."""
        end = self.size if end is None else end
        position, buffer = end, b""
        while position > 0 and buffer.count(b"\n") <= count and len(buffer) < count * MAX_LINE:
            step = min(CHUNK, position)
            position -= step
            buffer = self.read(position, step) + buffer
        lines = _split(buffer, position, drop_first_partial=position > 0)
        return lines[-count:] if count else [], _complete_end(buffer, position)

    def lines_after(self, offset: int, count: int) -> list[Line]:
        """Up to `count` lines starting at `offset` (which should be a line start)."""
        lines: list[Line] = []
        position = offset
        while len(lines) < count and position < self.size:
            buffer = self.read(position, CHUNK)
            if not buffer:
                break
            cut = buffer.rfind(b"\n")
            if cut < 0:  # a line longer than a chunk, or the partial last line
                text = buffer if position + len(buffer) >= self.size else buffer[:MAX_LINE]
                lines.append(Line(position, _decode(text)))
                position = self._next_line_start(position + len(buffer))
                continue
            block = _split(buffer[: cut + 1], position, drop_first_partial=False)
            lines.extend(block)
            position += cut + 1
        return lines[:count]

    def lines_before(self, offset: int, count: int) -> list[Line]:
        """Up to `count` lines that end just before `offset` (a line start)."""
        if offset <= 0:
            return []
        lines, _ = self.tail(count, end=offset)
        return lines

    def read_appended(self, offset: int) -> tuple[list[Line], int] | None:
        """Lines added after `offset` (a line start) and the new complete-line end; None when
        the burst is too large to read whole (the caller then shows the tail instead)."""
        if self.size - offset > APPEND_READ_LIMIT:
            return None
        buffer = self.read(offset, self.size - offset)
        return _split(buffer, offset, drop_first_partial=False), _complete_end(buffer, offset)

    def find(self, needle: str, start: int, *, backwards: bool = False) -> int | None:
        """Offset of the start of the next line containing `needle` (case-insensitive),
        searching from `start` forwards or backwards, one chunk at a time."""
        pattern = needle.lower().encode()
        if not pattern:
            return None
        overlap = len(pattern) - 1
        if not backwards:
            position = start
            while position < self.size:
                chunk = self.read(position, CHUNK + overlap).lower()
                hit = chunk.find(pattern)
                if hit >= 0:
                    return self._line_start(position + hit)
                position += CHUNK
            return None
        position = start
        while position > 0:
            begin = max(0, position - CHUNK)
            chunk = self.read(begin, position - begin + overlap).lower()
            hit = chunk.rfind(pattern, 0, position - begin + overlap)
            if hit >= 0 and begin + hit < position:
                return self._line_start(begin + hit)
            position = begin
        return None

    def _line_start(self, offset: int) -> int:
        position = offset
        while position > 0:
            begin = max(0, position - CHUNK)
            chunk = self.read(begin, position - begin)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                return begin + cut + 1
            if offset - begin > MAX_LINE:
                return offset
            position = begin
        return 0

    def _next_line_start(self, offset: int) -> int:
        position = offset
        while position < self.size:
            chunk = self.read(position, CHUNK)
            cut = chunk.find(b"\n")
            if cut >= 0:
                return position + cut + 1
            position += len(chunk)
        return self.size


def _split(buffer: bytes, base: int, *, drop_first_partial: bool) -> list[Line]:
    lines: list[Line] = []
    offset = base
    parts = buffer.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
    for index, part in enumerate(parts):
        if not (index == 0 and drop_first_partial):
            lines.append(Line(offset, _decode(part[:MAX_LINE])))
        offset += len(part) + 1
    return lines


def _complete_end(buffer: bytes, base: int) -> int:
    cut = buffer.rfind(b"\n")
    return base + cut + 1 if cut >= 0 else base


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").rstrip("\r").replace("\t", "    ")
