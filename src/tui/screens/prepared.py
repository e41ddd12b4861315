"""Prepared data: what runs on a host have tokenized and cached, and removing it.

Opened from Hosts (p) for the selected host. Per folder its key, size, examples, datasets,
template, model and when a run last read it; d removes the folder under the cursor, c all of
them, each after a question. Both go through core jobs.prepared_cache, as `tunedeck data prepared`.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from tunedeck.core.jobs.prepared_cache import CELLS, CachedData, prepared_on
from tunedeck.core.jobs.store import human_bytes
from tunedeck.core.text import inert
from tunedeck.tui.palette import Palette
from tunedeck.tui.screens.base import DeckScreen
from tunedeck.tui.screens.confirm import ConfirmScreen


class PreparedScreen(DeckScreen):
    """One host's prepared-data cache; Esc goes back."""

    MODE = "hosts"
    DEFAULT_CSS = "PreparedScreen #prepared-table { height: 1fr; }"
    BINDINGS = [
        Binding("d", "remove", "Remove", id="prepared.remove"),
        Binding("c", "clear", "Remove all", id="prepared.clear"),
        Binding("ctrl+r", "load", "Reload", id="prepared.reload"),
        Binding("escape", "back", "Back", id="prepared.back"),
    ]

    def __init__(self, host: str | None = None) -> None:
        super().__init__()
        self.host = host
        self.entries: list[CachedData] = []
        self.folder = ""

    def compose_body(self) -> ComposeResult:
        yield Static("", id="prepared-status", classes="status-line")
        yield DataTable(id="prepared-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.query_one("#prepared-table", DataTable).add_columns(*CELLS)
        self.action_load()

    def action_load(self) -> None:
        self._status(Text(f"reading the prepared data on {self._where()}…", style="dim"))
        self.ask()

    def action_remove(self) -> None:
        table = self.query_one("#prepared-table", DataTable)
        if not self.entries or table.row_count == 0:
            self.notify("no prepared data here", severity="warning")
            return
        entry = self.entries[table.cursor_row]
        question = inert(f"Remove prepared data {entry.key[:12]} on {self._where()}?")
        detail = f"frees {human_bytes(entry.size)}; a later run prepares it again"
        self._confirm(question, detail, remove=[entry.key])

    def action_clear(self) -> None:
        if not self.entries:
            self.notify("no prepared data here", severity="warning")
            return
        total = human_bytes(sum(e.size for e in self.entries))
        question = f"Remove all {len(self.entries)} prepared data folders on {self._where()}?"
        self._confirm(inert(question), f"frees {total}", clear=True)

    def _confirm(self, question: str, detail: str, **ask) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self._status(Text("removing…", style="dim"))
                self.ask(**ask)

        self.app.push_screen(ConfirmScreen(question, detail, yes="Remove"), answered)

    @work(thread=True, exclusive=True, group="prepared", exit_on_error=False)
    def ask(self, **ask) -> None:
        folder, entries, removed = prepared_on(self.host, **ask)
        if removed:  # the listing less what went: no second round trip to the host
            freed = human_bytes(sum(e.size for e in entries))
            self.from_thread(self.notify, f"removed {len(entries)} folder(s), {freed} freed")
            gone = {e.key for e in entries}
            entries = [e for e in self.entries if e.key not in gone]
        self.from_thread(self._show, folder, entries)

    def worker_failed(self, group: str, error: BaseException) -> None:
        if group != "prepared":
            super().worker_failed(group, error)
            return
        text = Text(inert(str(error)), style=Palette.of(self.app).style("error"))
        if getattr(error, "hint", None):
            text.append(f"  hint: {inert(error.hint)}", style="dim")
        self._status(text)

    def _show(self, folder: str, entries: list[CachedData]) -> None:
        self.folder, self.entries = folder, entries
        table = self.query_one("#prepared-table", DataTable)
        table.clear()
        now = time.time()
        for e in entries:
            table.add_row(*(inert(cell) for cell in e.cells(now)))
        total = human_bytes(sum(e.size for e in entries))
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{len(entries)} prepared", style="bold")
        text.append(f" · {total} · {inert(folder)}")
        self._status(text)
        table.focus()

    def action_back(self) -> None:
        self.app.pop_screen()

    def key_escape(self) -> None:
        """Esc is the Back binding here."""

    def _where(self) -> str:
        return self.host or "this box"

    def _status(self, text: Text) -> None:
        self.query_one("#prepared-status", Static).update(text)
