"""Job logs read by byte offset, so a follower resumes exactly where it stopped."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

DEFAULT_LIMIT = 1 << 20


@dataclass(frozen=True)
class LogChunk:
    """Bytes [offset, next_offset) of a log; `truncated` says the file shrank below our offset."""

    data: bytes
    offset: int
    next_offset: int
    size: int
    truncated: bool = False


def read_log_file(path: str | Path, offset: int = 0, limit: int = DEFAULT_LIMIT) -> LogChunk:
    """Up to `limit` bytes from `offset`; a missing file reads as empty, a shrunk one from 0."""
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
    """The byte offset where the last `lines` lines of the file begin."""
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

    Truncation restarts from 0 (flagged); a replaced file (new inode, i.e. rotation) is read
    to its end first, then the new file is followed from its start.
    """
    from watchfiles import watch

    path = Path(path)
    reader = _FileReader(path, offset)
    try:
        done = finished()
        yield from reader.drain(limit)
        if done or (stop_event and stop_event.is_set()):
            return
        for _changes in watch(
            path.parent,
            debounce=100,
            step=5,
            rust_timeout=250,
            yield_on_timeout=True,
            stop_event=stop_event,
            recursive=False,
        ):
            done = finished()
            yield from reader.drain(limit)
            if done:
                return
    finally:
        reader.close()


class _FileReader:
    """Keeps the open file and its inode, to notice truncation and rotation."""

    def __init__(self, path: Path, offset: int):
        self.path, self.offset = path, offset
        self.file = None
        self.inode: int | None = None

    def drain(self, limit: int) -> Iterator[LogChunk]:
        if self.file is None and not self._open():
            return
        while True:
            size = os.fstat(self.file.fileno()).st_size
            truncated = self.offset > size
            if truncated:
                self.offset = 0
            if self.offset < size:
                self.file.seek(self.offset)
                data = self.file.read(min(limit, size - self.offset))
                chunk = LogChunk(data, self.offset, self.offset + len(data), size, truncated)
                self.offset = chunk.next_offset
                yield chunk
                continue
            if truncated:
                yield LogChunk(b"", 0, 0, size, True)
            if self._rotated():
                self.file.close()
                self.file, self.offset = None, 0
                if not self._open():
                    return
                continue
            return

    def _open(self) -> bool:
        try:
            self.file = open(self.path, "rb")
        except FileNotFoundError:
            return False
        self.inode = os.fstat(self.file.fileno()).st_ino
        return True

    def _rotated(self) -> bool:
        try:
            return os.stat(self.path).st_ino != self.inode
        except FileNotFoundError:
            return False

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
