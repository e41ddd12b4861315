"""Shared terminal output for CLI commands: one error style, one JSON style, inert untrusted text.

Names, hosts, messages, paths and log text come from users and processes: they reach Rich as
`Text` (never markup) and pass through `tunedeck.core.text` so no control sequence reaches the
terminal.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import Any

from rich.cells import cell_len, set_cell_size
from rich.console import Console
from rich.text import Text

from tunedeck.core.errors import TunedeckError
from tunedeck.core.text import InertStream, inert, inert_lines

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

_DEL_AND_C1 = re.compile("[\x7f-\x9f]")
COLUMN_GAP = "  "
NARROWEST = 8


def print_error(error: TunedeckError) -> None:
    """Print a typed error as `error: <where>: <what>` plus its hint, never a traceback."""
    err.print(Text.assemble(("error:", "bold red"), " ", inert_lines(str(error))), soft_wrap=True)
    if error.hint:
        err.print(Text.assemble(("hint:", "dim"), " ", inert_lines(error.hint)), soft_wrap=True)


def note(text: str) -> None:
    """A line for the user on stderr (plain text: whatever it quotes is shown, never obeyed)."""
    err.print(Text(inert_lines(text)), soft_wrap=True)


def print_json(document: Any) -> None:
    """Print a JSON document to stdout (plain, for scripts), every control character escaped."""
    import orjson

    text = orjson.dumps(document, option=orjson.OPT_INDENT_2).decode()
    # orjson escapes C0 only; DEL and C1 (a CSI on some terminals) can only sit inside strings
    sys.stdout.write(_DEL_AND_C1.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")
    sys.stdout.flush()


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]], squeeze: int) -> None:
    """Columns of inert cells, bold headers; on a terminal column `squeeze` is cut to fit.

    Laid out here rather than by rich.Table, which takes seconds for 10,000 rows.
    """
    cells = [[inert(cell) for cell in row] for row in rows]
    widths = [
        max([cell_len(h)] + [cell_len(row[i]) for row in cells]) for i, h in enumerate(headers)
    ]
    if out.is_terminal:
        spare = out.width - (sum(widths) + len(COLUMN_GAP) * (len(widths) - 1))
        if spare < 0:
            widths[squeeze] = max(NARROWEST, widths[squeeze] + spare)
    out.print(Text(_line(headers, widths), style="bold"), soft_wrap=True)
    body = "".join(_line(row, widths) + "\n" for row in cells)
    out.file.write(body)
    out.file.flush()


def print_field(key: str, value: str, width: int) -> None:
    """`key   value` with the value inert (one line)."""
    out.print(Text(f"{key:<{width}}  {inert(value)}"), soft_wrap=True)


class LogWriter:
    """Log bytes to stdout: as written (`raw`), or inert with control characters shown.

    `raw=None` decides by stdout: inert on a terminal, the exact bytes into a pipe or a file.
    """

    def __init__(self, raw: bool | None = None):
        self.raw = (not sys.stdout.isatty()) if raw is None else raw
        self._stream = None if self.raw else InertStream()
        self._sink = sys.stdout.buffer

    def write(self, data: bytes) -> None:
        self._sink.write(data if self._stream is None else self._stream.feed(data))
        self._sink.flush()

    def finish(self) -> None:
        if self._stream is not None:
            self._sink.write(self._stream.finish())
        self._sink.flush()


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return COLUMN_GAP.join(
        _fit(cell, width) for cell, width in zip(cells, widths, strict=True)
    ).rstrip()


def _fit(cell: str, width: int) -> str:
    if cell_len(cell) <= width:
        return cell + " " * (width - cell_len(cell))
    return set_cell_size(cell, width - 1) + "…"
