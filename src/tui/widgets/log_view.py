"""A log view that follows a file by byte offset: it reads only the lines it shows.

It reads through the core log reader (`tunedeck.core.jobs.logs.LogFile`, or `RemoteLogFile`
for a job on a host). Following polls the file every 50 ms in a thread worker and reads only
the appended bytes; a truncated or rotated file is shown from its new end. Scrolling,
searching and jumping read small windows in thread workers, never on the event loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.cells import chop_cells
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Input, Static
from textual.worker import get_current_worker

from tunedeck.core import text as untrusted
from tunedeck.core.jobs.logs import Line, LogFile
from tunedeck.tui.messages import LogAppended


def inert(value: object) -> str:
    """Untrusted text (a name, path, error...) on one line, its control characters shown."""
    return untrusted.inert(str(value))


def plain(value: object, style: str = "") -> Text:
    """Untrusted text as a Rich Text: never read as markup, its control characters shown."""
    return Text(inert(value), style=style)


class LogLines(Widget, can_focus=True):
    """Draws a window of lines; anchored to the bottom while following."""

    DEFAULT_CSS = """
    LogLines { height: 1fr; background: $surface; text-wrap: nowrap; text-overflow: clip; }
    LogLines:focus { background-tint: $foreground 3%; }
    """

    def __init__(self, view: LogView, **kwargs):
        super().__init__(**kwargs)
        self._view = view

    def render(self) -> Text:
        view = self._view
        width, height = max(1, self.size.width), max(1, self.size.height)
        rows: list[Text] = []
        for line in view.window:
            shown = untrusted.inert(untrusted.inert_lines(line.text))
            pieces = chop_cells(shown, width) if view.wrap else [shown[view.x_offset :]]
            for piece in pieces or [""]:
                row = Text(piece, no_wrap=True, overflow="crop", end="")
                if view.search:
                    row.highlight_words([view.search], "reverse", case_sensitive=False)
                rows.append(row)
        rows = rows[-height:] if view.follow else rows[:height]
        if not rows and view.message:
            return plain(view.message, style="dim")
        # Rows are cut to the width already: a wrapped long row (text-wrap: nowrap in the CSS)
        # would push the last rows below the bottom edge while the status says FOLLOW end.
        return Text("\n", no_wrap=True, overflow="crop", end="").join(rows)

    def on_mouse_scroll_up(self) -> None:
        self._view.scroll_lines(-3)

    def on_mouse_scroll_down(self) -> None:
        self._view.scroll_lines(3)


class LogView(Vertical):
    """A followed log: toggle follow (f) and wrap (w), search (/ n N), jump to end (G)."""

    DEFAULT_CSS = """
    LogView { height: 1fr; }
    LogView > .log-status { height: 1; background: $panel; color: $text-muted; padding: 0 1; }
    LogView > Input { dock: bottom; display: none; }
    LogView > Input.-visible { display: block; }
    """

    BINDINGS = [
        Binding("f", "toggle_follow", "Follow", id="log.follow"),
        Binding("w", "toggle_wrap", "Wrap", id="log.wrap"),
        Binding("slash", "start_search", "Search", key_display="/", id="log.search"),
        Binding("n", "find(False)", "Next", show=False, id="log.next"),
        Binding("N", "find(True)", "Prev", show=False, id="log.prev"),
        Binding("G,end", "jump_end", "End", id="log.end"),
        Binding("g,home", "jump_start", "Start", show=False, id="log.start"),
        Binding("up,k", "scroll_lines(-1)", "Up", show=False, id="log.up"),
        Binding("down,j", "scroll_lines(1)", "Down", show=False, id="log.down"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="log.pageup"),
        Binding("pagedown,space", "page(1)", "Page down", show=False, id="log.pagedown"),
        Binding("left", "pan(-8)", "Left", show=False, id="log.left"),
        Binding("right", "pan(8)", "Right", show=False, id="log.right"),
    ]

    follow: reactive[bool] = reactive(True)
    wrap: reactive[bool] = reactive(False)
    search: reactive[str] = reactive("")
    x_offset: reactive[int] = reactive(0)

    def __init__(self, path: Path | str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.path = Path(path) if path else None
        self.window: list[Line] = []
        self.message = "no log selected"
        self._file: LogFile | None = None
        self._end = 0  # offset after the last complete line read while following
        self._generation = 0
        self.appended_at: float | None = None  # monotonic time of the last append shown

    def compose(self) -> ComposeResult:
        yield LogLines(self)
        yield Static("", classes="log-status")
        yield Input(placeholder="search (Enter: find, Esc: close)", id="log-search")

    def on_mount(self) -> None:
        if self.path:
            self.open(self.path)

    @property
    def lines_widget(self) -> LogLines:
        return self.query_one(LogLines)

    def open(self, source: Path | str | LogFile | None) -> None:
        """Show another file (a path, or a LogFile-like source; None: nothing), at its end,
        following."""
        self._generation += 1
        self.workers.cancel_group(self, "log-watch")
        if self._file:
            self._file.close()
        log = source if isinstance(source, LogFile) or source is None else LogFile(source)
        self.path = log.path if log is not None else None
        self._file = None
        self.window = []
        self.message = "no log selected" if log is None else f"waiting for {log.path}"
        self.follow = True
        self._refresh()
        if log is not None:
            self._file = log
            self._open_file(log, self._generation)

    def on_unmount(self) -> None:
        self._generation += 1
        if self._file:
            self._file.close()

    # Reading (thread workers) ------------------------------------------------------------

    @dataclass
    class LinesRead(Message):
        """A reading worker's lines: the file's `tail`, lines `appended`, or a `window`."""

        generation: int
        kind: str
        lines: list[Line]
        end: int = 0
        note: str = ""

    @on(LinesRead)
    def _lines_read(self, message: LinesRead) -> None:
        message.stop()
        if message.kind == "tail":
            self._apply_tail(message.generation, message.lines, message.end, message.note)
        elif message.kind == "appended":
            self._apply_appended(message.generation, message.lines, message.end)
        else:
            self._apply_window(message.generation, message.lines)

    @work(thread=True, group="log-watch")
    def _open_file(self, log: LogFile, generation: int) -> None:
        log.open()
        self._read_tail(log, generation)
        worker = get_current_worker()
        while not worker.is_cancelled and generation == self._generation:
            time.sleep(log.poll_seconds)
            change = log.poll()
            if change.rotated or change.truncated:
                self._read_tail(
                    log,
                    generation,
                    note="file was replaced" if change.rotated else "file was truncated",
                )
            elif change.grew:
                self.post_message(LogAppended(log.path, change.size))

    def _read_tail(self, log: LogFile, generation: int, note: str = "") -> None:
        lines, end = log.tail(self._rows_wanted())
        self.post_message(self.LinesRead(generation, "tail", lines, end, note))

    def _apply_tail(self, generation: int, lines: list[Line], end: int, note: str) -> None:
        if generation != self._generation or (not self.follow and not note):
            return  # paused on another part of the file: a late tail read must not move it
        if note:  # the old offsets mean nothing in the new content: show its end
            self.set_reactive(LogView.follow, True)
        self.window, self._end = lines, end
        self.message = "empty log" if not lines else ""
        if note:
            self.notify(inert(f"{self.path.name}: {note}"), severity="warning", markup=False)
        self._refresh()

    @on(LogAppended)
    def _on_appended(self, message: LogAppended) -> None:
        message.stop()
        if self.follow:
            self._read_appended(self._generation)
        else:
            self._refresh()

    @work(thread=True, group="log-read", exclusive=True)
    def _read_appended(self, generation: int) -> None:
        log = self._file
        if log is None:
            return
        result = log.read_appended(self._end)
        if result is None:
            lines, end = log.tail(self._rows_wanted())
            self.post_message(self.LinesRead(generation, "tail", lines, end))
            return
        lines, end = result
        self.post_message(self.LinesRead(generation, "appended", lines, end))

    def _apply_appended(self, generation: int, lines: list[Line], end: int) -> None:
        if generation != self._generation or not self.follow:
            return
        keep = [line for line in self.window if line.offset < self._end]
        self.window = (keep + lines)[-self._rows_wanted() :]
        self._end = end
        self.message = ""
        self.appended_at = time.monotonic()
        self._refresh()

    @work(thread=True, group="log-read", exclusive=True)
    def _read_window(self, generation: int, start: int, delta: int) -> None:
        """Move the window by `delta` lines from the line starting at `start`."""
        log = self._file
        if log is None:
            return
        rows = self._rows_wanted()
        if delta < 0:
            before = log.lines_before(start, -delta)
            lines = before + log.lines_after(start, max(0, rows - len(before)))
        else:
            fetched = log.lines_after(start, rows + delta)
            lines = fetched[delta:] if len(fetched) - delta >= rows else log.tail(rows)[0]
        self.post_message(self.LinesRead(generation, "window", lines))

    def _apply_window(self, generation: int, lines: list[Line]) -> None:
        if generation == self._generation and not self.follow:
            self.window = lines
            self._refresh()

    @work(thread=True, group="log-read", exclusive=True)
    def _find(self, generation: int, needle: str, start: int, backwards: bool) -> None:
        log = self._file
        if log is None:
            return
        found = log.find(needle, start, backwards=backwards)
        if found is None:
            self.notify(inert(f"'{needle}' not found"), severity="warning", markup=False)
            return
        lines = log.lines_after(found, self._rows_wanted())
        self.post_message(self.LinesRead(generation, "window", lines))

    # Actions -------------------------------------------------------------------------------

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow

    def action_toggle_wrap(self) -> None:
        self.wrap = not self.wrap

    def action_jump_end(self) -> None:
        """Show the end and follow it; when already following, read the end again."""
        if self.follow and self._file is not None:
            self._tail_now(self._generation)
        self.follow = True

    def action_jump_start(self) -> None:
        self.follow = False
        self._read_window(self._generation, 0, 0)

    def action_scroll_lines(self, delta: int) -> None:
        self.scroll_lines(delta)

    def action_page(self, direction: int) -> None:
        self.scroll_lines(direction * max(1, self.lines_widget.size.height - 1))

    def action_pan(self, delta: int) -> None:
        self.x_offset = max(0, self.x_offset + delta)

    def action_start_search(self) -> None:
        box = self.query_one("#log-search", Input)
        box.add_class("-visible")
        box.value = self.search
        box.focus()

    def action_find(self, backwards: bool) -> None:
        if not self.search or not self.window:
            return
        self.follow = False
        top = self.window[0].offset
        start = top if backwards else top + 1
        self._find(self._generation, self.search, start, backwards)

    def scroll_lines(self, delta: int) -> None:
        """Scroll by lines; scrolling stops following, scrolling past the end resumes it."""
        if not self.window or self._file is None:
            return
        top = self._top_line()
        self.follow = False
        self._read_window(self._generation, top.offset, delta)

    def _top_line(self) -> Line:
        if self.follow:  # the top line on screen is not window[0] when anchored at the bottom
            height = max(1, self.lines_widget.size.height)
            return self.window[max(0, len(self.window) - height)]
        return self.window[0]

    @on(Input.Submitted, "#log-search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.search = event.value.strip()
        event.input.remove_class("-visible")
        self.lines_widget.focus()
        if self.search:
            self.action_find(False)

    def key_escape(self) -> None:
        box = self.query_one("#log-search", Input)
        if box.has_class("-visible"):
            box.remove_class("-visible")
            self.lines_widget.focus()

    # Reactions --------------------------------------------------------------------------------

    def watch_follow(self, follow: bool) -> None:
        if follow and self._file is not None and self.is_mounted:
            self._tail_now(self._generation)
        self._refresh()

    @work(thread=True, group="log-read", exclusive=True)
    def _tail_now(self, generation: int) -> None:
        log = self._file
        if log is not None:
            self._read_tail(log, generation)

    def watch_wrap(self) -> None:
        self._refresh()

    def watch_search(self) -> None:
        self._refresh()

    def watch_x_offset(self) -> None:
        self._refresh()

    def on_resize(self) -> None:
        if self.follow and self._file is not None:
            self._tail_now(self._generation)

    def _rows_wanted(self) -> int:
        try:
            return max(1, self.lines_widget.size.height) + 1
        except Exception:
            return 50

    def _refresh(self) -> None:
        if not self.is_mounted:
            return
        self.lines_widget.refresh()
        self.query_one(".log-status", Static).update(self._status_text())

    def _status_text(self) -> Text:
        if self.path is None:
            return Text("no log")
        size = self._file.size if self._file else 0
        top = self.window[0].offset if self.window else 0
        where = "end" if self.follow else f"{(100 * top // size) if size else 0}%"
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("FOLLOW " if self.follow else "PAUSED ", style="bold")
        text.append(f"{where}  {_human(size)}  ")
        text.append("wrap " if self.wrap else "")
        if self.search:
            text.append(f"/{inert(self.search)}  ")
        text.append(inert(self.path), style="dim")
        return text


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
