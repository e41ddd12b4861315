"""Shared terminal output for CLI commands: one error style, one JSON style."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console

from tunedeck.core.errors import TunedeckError

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def print_error(error: TunedeckError) -> None:
    """Print a typed error as `error: <where>: <what>` plus its hint, never a traceback."""
    err.print(f"[bold red]error:[/] {error}", markup=True, soft_wrap=True)
    if error.hint:
        err.print(f"[dim]hint:[/] {error.hint}", markup=True, soft_wrap=True)


def print_json(document: Any) -> None:
    """Print a JSON document to stdout (plain, for scripts)."""
    import orjson

    sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
    sys.stdout.flush()
