"""Shared by the app tests and the TUI bench: paths, waiting for the app, reading its screen."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_DATA = REPO / "examples" / "workspace" / "data"
TOKENIZER = REPO / "tests" / "fixtures" / "tokenizer"


async def wait_until(pilot, predicate: Callable[[], bool], what: str, timeout: float = 30.0):
    """Let the app run until `predicate()` holds (workers finish, messages land)."""
    waited = 0.0
    while not predicate():
        if waited > timeout:
            raise AssertionError(f"the app never reached: {what}")
        await pilot.pause(0.05)
        waited += 0.05


def screen_text(app) -> str:
    """Everything visible on the app's screen (top layer included), as plain text lines."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(segment.text for segment in strip) for strip in strips)
