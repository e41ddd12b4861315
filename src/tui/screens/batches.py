"""Batches: a run config's first N training batches as the engine will feed them.

Per batch, its rows (dataset and row index), each row's tokens, trained tokens (in the loss)
and padding. Opened from Preview (b) or Launch (ctrl+b); Enter opens a row in Preview with the
config's template, tokenizer and cutoff_len. The batches come from the sidecar (core
batch_sources over preview_batches), so this process never imports transformers.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Input, Label, Static

from tunedeck.core.runners.batch_sources import BatchPreview
from tunedeck.core.text import inert
from tunedeck.tui.messages import PreviewDataset
from tunedeck.tui.palette import Palette
from tunedeck.tui.screens.base import DeckScreen
from tunedeck.tui.sidecar import SidecarClient

DEFAULT_COUNT = 4
COLUMNS = ("batch", "dataset", "sample", "tokens", "trained", "padding")
_remembered: list[str] = []  # the run config last used on Launch or typed here


def remember_config(path: str) -> None:
    """Keep `path` as the run config the Batches view offers next."""
    if path.strip():
        _remembered[:] = [path.strip()]


def last_config() -> str:
    """The run config last used on Launch or typed in the Batches view ('' when none)."""
    return _remembered[0] if _remembered else ""


def open_batches(app: App, config: str | None = None) -> None:
    """Show the Batches view over the current screen, for `config` or the remembered one."""
    app.push_screen(BatchesScreen(config if config else last_config()))


class BatchesScreen(DeckScreen):
    """A run config's first batches; Enter on a row opens it in Preview; Esc goes back."""

    MODE = "preview"
    DEFAULT_CSS = """
    BatchesScreen #batches-config { width: 1fr; }
    BatchesScreen #batches-count { width: 8; }
    BatchesScreen #batches-table { height: 1fr; }
    """
    BINDINGS = [
        Binding("enter", "enter", "Open row", priority=True, id="batches.open_row"),
        Binding("ctrl+r", "load", "Reload", id="batches.reload"),
        Binding("escape", "back", "Back", id="batches.back"),
    ]

    def __init__(self, config: str = "", count: int = DEFAULT_COUNT) -> None:
        super().__init__()
        self._config, self._count = config, count
        self._sidecar = SidecarClient()
        self.preview: BatchPreview | None = None
        self.rows: list[tuple[int, int]] = []  # (batch index, place in batch) per table line
        self.error: BaseException | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="batches-controls", classes="form-row"):
            yield Label("run config")
            yield Input(
                self._config, placeholder="path/to/run.yaml", id="batches-config", compact=True
            )
            yield Label("batches")
            yield Input(str(self._count), id="batches-count", type="integer", compact=True)
        yield Static("", id="batches-status", classes="status-line")
        yield DataTable(id="batches-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.query_one("#batches-table", DataTable).add_columns(*COLUMNS)
        if self._config:
            self.action_load()
        else:
            self._status(Text("give a run config (YAML) and press Enter", style="dim"))
            self.query_one("#batches-config", Input).focus()

    def on_unmount(self) -> None:
        self._sidecar.close()

    def action_enter(self) -> None:
        """Enter in a field reads the batches; on the table it opens the row."""
        if isinstance(self.focused, Input):
            self.action_load()
        else:
            self.action_open_row()

    def action_load(self) -> None:
        config = self.query_one("#batches-config", Input).value.strip()
        count_text = self.query_one("#batches-count", Input).value.strip()
        count = int(count_text) if count_text.isdigit() and int(count_text) > 0 else DEFAULT_COUNT
        if not config:
            self._status(Text("give a run config (YAML) and press Enter", style="dim"))
            return
        remember_config(config)
        self.preview = self.error = None
        self.query_one("#batches-table", DataTable).clear()
        self.rows = []
        self._status(Text(f"reading the first {count} batches of {inert(config)}…", style="dim"))
        self.load_batches(config, count)

    @work(thread=True, exclusive=True, group="batches-load", exit_on_error=False)
    def load_batches(self, config: str, count: int) -> None:
        for answer in self._sidecar.batches(config, count):
            if isinstance(answer, BatchPreview):
                self.from_thread(self._show, config, answer)
            else:
                done, total = answer
                note = f"preparing the data of {inert(config)}: {done:,}/{total:,} rows…"
                self.from_thread(self._status, Text(note, style="dim"))

    def worker_failed(self, group: str, error: BaseException) -> None:
        if group != "batches-load":
            super().worker_failed(group, error)
            return
        self.error = error
        text = Text(inert(str(error)), style=Palette.of(self.app).style("error"))
        if getattr(error, "hint", None):
            text.append(f"  hint: {inert(error.hint)}", style="dim")
        self._status(text)

    def _show(self, config: str, preview: BatchPreview) -> None:
        self.preview = preview
        table = self.query_one("#batches-table", DataTable)
        table.clear()
        self.rows = [
            (b, p) for b, batch in enumerate(preview.batches) for p in range(len(batch.rows))
        ]
        for batch in preview.batches:
            for place, row in enumerate(batch.rows):
                source = preview.source(row.example)
                table.add_row(
                    batch_cell(batch) if place == 0 else "",
                    "(packed)" if source is None else inert(source.dataset),
                    f"#{row.example}" if source is None else f"{source.row + 1}",
                    f"{row.tokens:,}",
                    f"{row.trained:,}",
                    f"{row.padded - row.tokens:,}",
                )
        self._status(status_text(preview))
        table.focus()

    def action_open_row(self) -> None:
        """Open the row under the cursor in Preview, as the run encodes it."""
        found = self._chosen()
        if found is None:
            return
        source, preview = found
        if Path(preview.dataset_dir).resolve() != Path(self.app.data_dir).resolve():
            self.notify(
                f"the config's dataset_dir {preview.dataset_dir} is not the app's data folder"
                f" {self.app.data_dir}: start the app there to preview its rows",
                severity="warning",
            )
            return
        message = PreviewDataset(
            source.dataset,
            row=source.row,
            template=preview.template,
            tokenizer=preview.tokenizer,
            cutoff_len=preview.cutoff_len,
        )
        app = self.app
        app.pop_screen()
        app.hand_over("preview", message)

    def _chosen(self):
        preview, table = self.preview, self.query_one("#batches-table", DataTable)
        if preview is None or table.row_count == 0:
            self.notify("no batches shown yet", severity="warning")
            return None
        batch, place = self.rows[table.cursor_row]
        row = preview.batches[batch].rows[place]
        source = preview.source(row.example)
        if source is None:
            self.notify("a packed example mixes several rows: no single row to open")
            return None
        return source, preview

    def action_back(self) -> None:
        if isinstance(self.focused, Input) and self.preview is not None:
            self.set_focus(None)
            return
        self.app.pop_screen()

    def key_escape(self) -> None:
        """Esc is the Back binding here."""

    def _status(self, text: Text) -> None:
        self.query_one("#batches-status", Static).update(text)


def batch_cell(batch) -> str:
    """A batch's number and shape: rows x padded length."""
    return f"{batch.step}  {len(batch.rows)}×{batch.rows[0].padded}"


def status_text(preview: BatchPreview) -> Text:
    """What the table shows and how the rows were encoded."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"{len(preview.batches)} batches", style="bold")
    text.append(f" · template {preview.template or 'hf'} · cutoff {preview.cutoff_len}")
    text.append(" · packed" if preview.packed else " · Enter: the row in Preview", style="dim")
    return text


SCREEN = BatchesScreen
