"""Shared by the app tests and the TUI bench: paths, waiting for the app, reading its screen.

Waiting, harlequin-style: record the messages the app handles (`Posted`, passed to
`app.run_test(message_hook=...)`), and `settle` the app (await its workers and the messages
they post) before asserting on what it did.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from textual.message import Message
from textual.worker import WorkerCancelled, WorkerFailed, WorkerState

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_DATA = REPO / "examples" / "workspace" / "data"
TOKENIZER = REPO / "tests" / "fixtures" / "tokenizer"

M = TypeVar("M", bound=Message)
SETTLE_ROUNDS = 200


class Posted:
    """Every message the app dispatches, in order: `run_test(message_hook=posted)`."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def __call__(self, message: Message) -> None:
        self.messages.append(message)

    def of(self, kind: type[M]) -> list[M]:
        """The messages of one type (subclasses included), oldest first."""
        return [message for message in self.messages if isinstance(message, kind)]

    def last(self, kind: type[M]) -> M:
        """The newest message of one type; fails the test when there is none."""
        found = self.of(kind)
        assert found, f"no {kind.__name__} was posted"
        return found[-1]


async def settle(pilot, group: str | None = None, *, failures: bool = False) -> None:
    """Await the app's workers (only those of `group` when given), and the workers their
    messages start, until none runs; a failed worker fails the test unless `failures`
    (the test expects one, and checks how the screen reports it)."""
    app = pilot.app
    for _ in range(SETTLE_ROUNDS):
        await pilot.pause()
        busy = [
            worker
            for worker in app.workers
            if worker.state in (WorkerState.PENDING, WorkerState.RUNNING)
            and (group is None or worker.group == group)
        ]
        if not busy:
            await pilot.pause()
            return
        for worker in busy:
            if worker.state == WorkerState.PENDING:
                continue
            try:
                await worker.wait()
            except WorkerCancelled:  # replaced by a newer one of its group (exclusive)
                pass
            except WorkerFailed:
                if not failures:
                    raise
    raise AssertionError(f"workers still running after {SETTLE_ROUNDS} rounds: {busy}")


async def settle_until(
    pilot, predicate: Callable[[], bool], what: str, *, failures: bool = False
) -> None:
    """Settle the app until `predicate()` holds (for work that a message starts later)."""
    for _ in range(SETTLE_ROUNDS):
        await settle(pilot, failures=failures)
        if predicate():
            return
    raise AssertionError(f"the app never reached: {what}")


async def wait_until(pilot, predicate: Callable[[], bool], what: str, timeout: float = 30.0):
    """Let the app run until `predicate()` holds (for processes outside the app: jobs, logs);
    fails at once if the app itself failed meanwhile."""
    waited = 0.0
    while not predicate():
        if pilot.app._exception is not None:
            raise AssertionError(f"the app failed before: {what}") from pilot.app._exception
        if waited > timeout:
            said = [str(n.message) for n in pilot.app._notifications][-5:]
            raise AssertionError(f"the app never reached: {what} (its last notices: {said})")
        await pilot.pause(0.05)
        waited += 0.05


def screen_text(app) -> str:
    """Everything visible on the app's screen (top layer included), as plain text lines."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(segment.text for segment in strip) for strip in strips)
