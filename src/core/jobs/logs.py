"""Job logs read by byte offset, so a follower resumes exactly where it stopped.

One reader for every face: `LogFile` opens a file once and reads it with bounded `os.pread`
calls (the tail, the lines around an offset, a search), so memory stays flat for files of any
size. What changed is told by one rule: size below our offset (or rewritten bytes before it)
is a truncation, a new (st_dev, st_ino) at the path is a rotation. `follow_file` (the CLI and
the agent) and the app's log view both read through it. Nothing here renders.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

DEFAULT_LIMIT = 1 << 20
CHUNK = 64 * 1024
MAX_LINE = 64 * 1024  # a longer line is shown cut; we never read further for one line
APPEND_READ_LIMIT = 64 * 1024  # a bigger burst is skipped: we read the new tail instead
MARK_BYTES = 64  # the bytes compared to tell an append from a rewrite


@dataclass(frozen=True)
class LogChunk:
    """Bytes [offset, next_offset) of a log; `truncated` says the file shrank below our offset."""

    data: bytes
    offset: int
    next_offset: int
    size: int
    truncated: bool = False


def read_log_file(path: str | Path, offset: int = 0, limit: int = DEFAULT_LIMIT) -> LogChunk:
    """Up to `limit` bytes from `offset`; a missing file (or none) reads as empty, a shrunk one
    from 0."""
    if not path:
        return LogChunk(b"", 0, 0, 0, truncated=offset > 0)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            truncated = offset > size
            if truncated:
                offset = 0
            f.seek(offset)
            data = f.read(max(0, min(limit, size - offset)))
    except FileNotFoundError:
        return LogChunk(b"", 0, 0, 0, truncated=offset > 0)
    return LogChunk(data, offset, offset + len(data), size, truncated)


def tail_offset(path: str | Path, lines: int) -> int:
    """The byte offset where the last `lines` lines of the file begin (0 for no file)."""
    if not path:
        return 0
    try:
        with open(path, "rb") as f:
            end = os.fstat(f.fileno()).st_size
            if lines <= 0:
                return end
            pos, found, block = end, 0, 64 * 1024
            f.seek(max(0, end - 1))
            skip_final_newline = end > 0 and f.read(1) == b"\n"
            while pos > 0:
                start = max(0, pos - block)
                f.seek(start)
                data = f.read(pos - start)
                if skip_final_newline and pos == end:
                    data = data[:-1]
                for i in range(len(data) - 1, -1, -1):
                    if data[i] == 10:
                        found += 1
                        if found == lines:
                            return start + i + 1
                pos = start
            return 0
    except FileNotFoundError:
        return 0


def follow_file(
    path: str | Path,
    offset: int = 0,
    *,
    finished: Callable[[], bool] = lambda: False,
    stop_event: threading.Event | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Iterator[LogChunk]:
    """New bytes as they are appended (watchfiles wakes us); ends once `finished()` and drained.

    Truncation restarts from 0 (flagged); a replaced file (rotation) is read to its end first,
    then the new file is followed from its start.
    """
    from watchfiles import watch

    log = LogFile(path)
    log.open()
    try:
        done = finished()
        offset = yield from _drain(log, offset, limit)
        if done or (stop_event and stop_event.is_set()):
            return
        for _changes in watch(
            log.path.parent,
            debounce=100,
            step=5,
            rust_timeout=250,
            yield_on_timeout=True,
            stop_event=stop_event,
            recursive=False,
        ):
            done = finished()
            offset = yield from _drain(log, offset, limit)
            if done:
                return
    finally:
        log.close()


def _drain(log: LogFile, offset: int, limit: int) -> Iterator[LogChunk]:
    """Yield every byte after `offset`, across truncation and rotation; return the new offset."""
    while True:
        if not log.is_open and not log.open_if_present():
            return offset
        size = log.current_size()
        truncated = offset > size
        if truncated:
            offset = 0
        if offset < size:
            data = log.read(offset, min(limit, size - offset))
            yield LogChunk(data, offset, offset + len(data), size, truncated)
            offset += len(data)
            continue
        if truncated:
            yield LogChunk(b"", 0, 0, size, True)
        if not log.replaced():
            return offset
        log.open()  # rotated: the old file is drained, follow the new one from its start
        offset = 0


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

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def open_if_present(self) -> bool:
        """Open the file if it exists now; True when it is open."""
        self.open()
        return self._fd is not None

    def current_size(self) -> int:
        """The open file's size now (it may have grown since `size` was read)."""
        return os.fstat(self._fd).st_size if self._fd is not None else 0

    def replaced(self) -> bool:
        """Rotation: the path now names another file than the one we hold (dev, ino)."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return False
        return (stat.st_dev, stat.st_ino) != self._inode

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


class RemoteLogFile(LogFile):
    """A job log on another host, read by byte offset through `read(offset, limit)` (a backend's
    read_log); the same line reading as a local file, one round trip per poll."""

    poll_seconds = 1.0

    def __init__(self, name: str, read: Callable[[int, int], LogChunk]):
        super().__init__(Path(name))
        self._read_chunk = read
        self._opened = False

    @property
    def is_open(self) -> bool:
        return self._opened

    def open(self) -> int:
        self.size = self._read_chunk(0, 0).size
        self._opened = True
        return self.size

    def close(self) -> None:
        self._opened = False

    def poll(self) -> Change:
        previous = self.size
        try:
            self.open()
        except Exception:  # an unreachable host reads as a missing file until it answers
            return Change(size=previous, missing=True)
        if self.size < previous:
            return Change(size=self.size, truncated=True)
        return Change(size=self.size, grew=self.size > previous)

    def read(self, offset: int, length: int) -> bytes:
        if not self._opened or length <= 0 or offset < 0:
            return b""
        return self._read_chunk(offset, length).data


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
