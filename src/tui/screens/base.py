"""What every screen shares: the navigation bar on top, the footer of keys at the bottom, and
one place where a failed worker is reported."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Input, TextArea
from textual.worker import Worker, WorkerState

from tunedeck.core.text import inert, inert_lines
from tunedeck.tui.screens.order import SCREENS_IN_ORDER
from tunedeck.tui.widgets.nav_bar import NavBar


class DeckScreen(Screen):
    """A top-level screen of the app; subclasses fill `compose_body`."""

    MODE = ""

    def compose(self) -> ComposeResult:
        yield NavBar(SCREENS_IN_ORDER, self.MODE, self.context_text())
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> ComposeResult:
        yield from ()

    def context_text(self) -> str:
        return str(getattr(self.app, "data_dir", ""))

    def set_context(self, text: str) -> None:
        self.query_one(NavBar).context = text

    @on(Worker.StateChanged)
    def _worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.worker_failed(event.worker.group, event.worker.error)

    def worker_failed(self, group: str, error: BaseException) -> None:
        """Say why a worker of `group` failed (workers raise; they never notify); screens
        show the failures they expect in place by overriding this."""
        hint = getattr(error, "hint", None)
        text = f"{error}" + (f"\nhint: {hint}" if hint else "")
        self.notify(text, severity="error")

    def notify(self, message: str, *, title: str = "", markup: bool = False, **options) -> None:
        """A notification whose text (names, paths, errors) is shown as is: no markup by default,
        control characters written out."""
        super().notify(inert_lines(str(message)), title=inert(title), markup=markup, **options)

    def from_thread(self, callback, *args, **kwargs) -> None:
        """Run `callback` on the event loop from a thread worker; dropped once this screen or
        the app is gone (a late worker must not crash shutdown)."""

        def guarded() -> None:
            if self.is_attached and self.app.is_running:
                callback(*args, **kwargs)

        try:
            self.app.call_from_thread(guarded)
        except RuntimeError:  # the app has stopped
            pass

    def key_escape(self) -> None:
        """Leave a text field, so that the screen keys (1-5, q, ...) work again."""
        if isinstance(self.focused, (Input, TextArea)):
            self.set_focus(None)
