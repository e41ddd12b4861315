"""Datasets: the entries of dataset_info.json, their validity, spec, stats, issues and rows."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Input, ProgressBar, Static, TabbedContent, TabPane

from tunedeck.core.errors import TunedeckError
from tunedeck.tui.messages import (
    DatasetInfoLoaded,
    OpenDatasetRow,
    PreviewDataset,
    ReportsReady,
    RowLoaded,
    StatsLoaded,
    ValidationFinished,
    ValidationProgressed,
)
from tunedeck.tui.palette import Palette, follow_theme
from tunedeck.tui.screens.base import DeckScreen
from tunedeck.tui.sidecar import EntryFailed, SidecarClient, ValidationProgress
from tunedeck.tui.widgets.conversation_text import conversation_text, raw_text
from tunedeck.tui.widgets.log_view import inert, plain

if TYPE_CHECKING:
    from tunedeck.core.datasets import DatasetInfo, DatasetReport, DatasetStats, Issue

REPORT_BATCH_SECONDS = 0.3
# status -> (symbol, palette role or None for no colour, modifiers)
BADGES = {
    "pending": ("…", None, "dim"),
    "ok": ("✓", "ok", ""),
    "warning": ("!", "warning", ""),
    "error": ("✗", "error", "bold"),
    "remote": ("☁", "remote", ""),
}


class DatasetsScreen(DeckScreen):
    """Browse and validate the open data folder; Enter on an issue opens its row."""

    MODE = "datasets"
    AUTO_FOCUS = "#datasets-table"
    DEFAULT_CSS = """
    #issue-detail { height: auto; max-height: 8; padding: 0 1; background: $panel; }
    """
    BINDINGS = [
        Binding("v", "validate", "Validate", id="datasets.validate"),
        Binding("p", "preview", "Preview", id="datasets.preview"),
        Binding("slash", "filter", "Filter", key_display="/", id="datasets.filter"),
        Binding("r", "toggle_raw", "Raw/norm", id="datasets.raw"),
        Binding(
            "left_square_bracket",
            "step_row(-1)",
            "Prev row",
            key_display="[",
            id="datasets.prev_row",
        ),
        Binding(
            "right_square_bracket",
            "step_row(1)",
            "Next row",
            key_display="]",
            id="datasets.next_row",
        ),
        Binding("i", "show_tab('tab-issues')", "Issues", show=False, id="datasets.issues"),
        Binding("s", "show_tab('tab-spec')", "Spec", show=False, id="datasets.spec"),
        Binding("o", "show_tab('tab-rows')", "Rows", show=False, id="datasets.rows"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.info: DatasetInfo | None = None
        self.reports: dict[str, DatasetReport] = {}
        self.stats: dict[str, DatasetStats | TunedeckError] = {}
        self.selected: str | None = None
        self.row_index = 0
        self.show_raw = False
        self._filter = ""
        self._validator = SidecarClient()
        self._stats_sidecar = SidecarClient()
        self._load_error: Exception | None = None
        self._row_shown: RowLoaded | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="split"):
            with Vertical(classes="left-pane"):
                box = Input(placeholder="filter datasets (Esc to close)", id="dataset-filter")
                box.display = False  # hidden (and not focusable) until / is pressed
                yield box
                yield DataTable(id="datasets-table", cursor_type="row", zebra_stripes=True)
                yield ProgressBar(id="validate-progress", show_eta=False)
                yield Static(
                    "loading dataset_info.json…", id="datasets-status", classes="status-line"
                )
            with TabbedContent(id="dataset-detail", classes="right-pane"):
                with TabPane("Spec", id="tab-spec"):
                    yield VerticalScroll(Static(id="spec-text"))
                with TabPane("Issues", id="tab-issues"):
                    yield DataTable(id="issues-table", cursor_type="row")
                    yield Static("", id="issue-detail")
                with TabPane("Rows", id="tab-rows"):
                    yield Static("", id="row-header", classes="status-line")
                    yield VerticalScroll(Static(id="row-text"))

    def on_unmount(self) -> None:
        self._validator.close()
        self._stats_sidecar.close()

    def on_mount(self) -> None:
        self.query_one("#validate-progress").display = False
        table = self.query_one("#datasets-table", DataTable)
        table.add_column(" ", key="badge", width=1)
        table.add_column("dataset", key="name")
        table.add_column("kind", key="kind")
        table.add_column("rows", key="rows", width=7)
        issues = self.query_one("#issues-table", DataTable)
        for label in ("sev", "where", "code", "message"):
            issues.add_column(label, key=label)
        follow_theme(self, self._recolour)
        self.load_info()

    def _recolour(self) -> None:
        """Redraw every coloured text with the new theme's colours."""
        if self._load_error is not None:
            self._show_load_error(self._load_error)
        if self.info is None:
            return
        table = self.query_one("#datasets-table", DataTable)
        for key in table.rows:
            report = self.reports.get(str(key.value))
            table.update_cell(key, "badge", self._badge(report.status if report else "pending"))
        if self.reports and not self.query_one("#validate-progress").display:
            self._show_checked()
        if self.selected:
            self._show_detail()
        if self._row_shown is not None:
            self._show_row(self._row_shown)

    @property
    def palette(self) -> Palette:
        return Palette.of(self.app)

    def _badge(self, status: str) -> Text:
        return _badge(status, self.palette)

    # Loading and validation (workers post what they found; base reports failures) ------------

    @work(thread=True, exclusive=True, group="datasets-load", exit_on_error=False)
    def load_info(self) -> None:
        from tunedeck.core.datasets import load_dataset_info

        self.post_message(DatasetInfoLoaded(load_dataset_info(self.app.data_dir)))

    @work(thread=True, exclusive=True, group="datasets-validate", exit_on_error=False)
    def validate_all(self, data_dir: str) -> None:
        """Validation runs in a sidecar process (streaming one report per entry), so a long
        walk over big files never competes with the event loop for the GIL."""
        batch: list[DatasetReport] = []
        failed: list[EntryFailed] = []
        flushed = time.monotonic()
        for found in self._validator.validate(data_dir):
            if isinstance(found, ValidationProgress):
                self.post_message(ValidationProgressed(found))
            elif isinstance(found, EntryFailed):
                failed.append(found)
            else:
                batch.append(found)
            if batch and time.monotonic() - flushed > REPORT_BATCH_SECONDS:
                self.post_message(ReportsReady(tuple(batch)))  # one table redraw per batch
                batch, flushed = [], time.monotonic()
        self.post_message(ReportsReady(tuple(batch)))
        self.post_message(ValidationFinished(tuple(failed)))

    @work(thread=True, exclusive=True, group="datasets-stats", exit_on_error=False)
    def load_stats(self, name: str) -> None:
        try:
            stats: DatasetStats | TunedeckError = self._stats_sidecar.stats(
                str(self.info.path), name
            )
        except TunedeckError as error:  # shown in the spec pane, in place of the stats
            stats = error
        self.post_message(StatsLoaded(name, stats))

    @work(thread=True, exclusive=True, group="datasets-row", exit_on_error=False)
    def load_row(self, name: str, index: int) -> None:
        from tunedeck.core.datasets import get_row

        self.post_message(
            RowLoaded(name, get_row(self.info.specs[name], self.info.data_dir, index))
        )

    def worker_failed(self, group: str, error: BaseException) -> None:
        if group == "datasets-load" and isinstance(error, (TunedeckError, ImportError)):
            self._show_load_error(error)
        elif group == "datasets-row" and isinstance(error, TunedeckError):
            self.query_one("#row-header", Static).update(
                plain(error, style=self.palette.style("error"))
            )
        else:
            super().worker_failed(group, error)

    def _show_load_error(self, error: Exception) -> None:
        self._load_error = error
        error_style = self.palette.style("error")
        hint = getattr(error, "hint", None)
        message = Text()
        message.append("Cannot open this data folder\n\n", style=f"bold {error_style}")
        message.append(f"{inert(error)}\n\n")
        if hint:
            message.append(f"hint: {inert(hint)}\n", style="dim")
        message.append(
            "Open a folder that holds a LLaMA-Factory dataset_info.json:\n"
            "  tunedeck tui PATH/TO/data",
            style="dim",
        )
        self.query_one("#spec-text", Static).update(message)
        self.query_one("#datasets-status", Static).update(
            plain(f"no dataset_info.json in {self.app.data_dir}", style=error_style)
        )

    @on(DatasetInfoLoaded)
    def _show_info(self, message: DatasetInfoLoaded) -> None:
        info = message.info
        self.info = info
        self._fill_table()
        count = len(info.specs)
        broken = len(info.issues)
        status = f"{count} datasets in {info.path}"
        if broken:
            status += f" · {broken} entry problems"
        self.query_one("#datasets-status", Static).update(plain(status))
        self.set_context(inert(info.path))
        table = self.query_one("#datasets-table", DataTable)
        if table.row_count:
            table.focus()
            self._select(str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value))
        self.action_validate()

    def _fill_table(self) -> None:
        from tunedeck.core.datasets import dataset_kind

        table = self.query_one("#datasets-table", DataTable)
        table.clear()
        for name, spec in self.info.specs.items():
            if self._filter and self._filter.lower() not in name.lower():
                continue
            report = self.reports.get(name)
            table.add_row(
                self._badge(report.status if report else "pending"),
                plain(name),
                plain(dataset_kind(spec)),
                f"{report.rows:,}" if report and report.rows is not None else "",
                key=name,
            )

    def action_validate(self) -> None:
        if self.info is None:
            return
        self.reports.clear()
        table = self.query_one("#datasets-table", DataTable)
        for key in table.rows:  # mark, do not rebuild: one cheap redraw
            table.update_cell(key, "badge", self._badge("pending"))
        self.query_one("#validate-progress").display = True
        self.validate_all(str(self.info.path))

    @on(ValidationProgressed)
    def _progress(self, message: ValidationProgressed) -> None:
        progress = message.progress
        bar = self.query_one("#validate-progress", ProgressBar)
        bar.update(total=max(progress.total, 1), progress=progress.done)
        self.query_one("#datasets-status", Static).update(plain(f"validating {progress.dataset}…"))

    @on(ReportsReady)
    def _show_reports(self, message: ReportsReady) -> None:
        table = self.query_one("#datasets-table", DataTable)
        for report in message.reports:
            self.reports[report.name] = report
            if report.name in table.rows:
                table.update_cell(report.name, "badge", self._badge(report.status))
                rows = f"{report.rows:,}" if report.rows is not None else ""
                table.update_cell(report.name, "rows", Text(rows))
            if report.name == self.selected:
                self._show_detail()

    @on(ValidationFinished)
    def _validation_done(self, message: ValidationFinished) -> None:
        for failure in message.failed:
            self.notify(
                inert(f"{failure.dataset}: {failure.error}"), severity="error", markup=False
            )
        self.query_one("#validate-progress").display = False
        self._show_checked()

    def _show_checked(self) -> None:
        """The status line after validation: how many entries have errors and warnings."""
        palette = self.palette
        errors = sum(r.status == "error" for r in self.reports.values())
        warnings = sum(r.status == "warning" for r in self.reports.values())
        status = Text(f"{len(self.reports)} checked · ")
        status.append(f"{errors} errors", style=palette.style("error" if errors else "ok"))
        status.append(f" · {warnings} warnings", style=palette.style("warning") if warnings else "")
        self.query_one("#datasets-status", Static).update(status)

    @on(StatsLoaded)
    def _show_stats(self, message: StatsLoaded) -> None:
        self.stats[message.dataset] = message.stats
        if message.dataset == self.selected:
            self._show_detail()

    # Display ------------------------------------------------------------------------------------

    def _select(self, name: str) -> None:
        if name == self.selected or self.info is None or name not in self.info.specs:
            return
        self.selected = name
        self.row_index = 0
        self._show_detail()
        if name not in self.stats and self.info.specs[name].is_local:
            self.load_stats(name)
        self.load_row(name, 0)

    def _show_detail(self) -> None:
        name = self.selected
        spec = self.info.specs[name]
        report = self.reports.get(name)
        self.query_one("#spec-text", Static).update(
            _spec_text(spec, report, self.stats.get(name), self.palette)
        )
        issues = self.query_one("#issues-table", DataTable)
        issues.clear()
        for number, issue in enumerate(report.issues if report else ()):
            issues.add_row(
                _severity(issue, self.palette),
                plain(_where(issue)),
                plain(issue.code),
                plain(issue.message),
                key=str(number),
            )
        self._show_issue(report.issues[0] if report and report.issues else None)
        tab = self.query_one("#dataset-detail", TabbedContent)
        count = report.issue_count if report else 0
        tab.get_tab("tab-issues").label = f"Issues ({count})" if count else "Issues"

    def _show_issue(self, issue: Issue | None) -> None:
        """The highlighted issue in full, wrapped: the table cuts long messages."""
        detail = self.query_one("#issue-detail", Static)
        if issue is None:
            detail.update("")
            return
        text = _severity(issue, self.palette)
        text.append(f" · {inert(issue.code)}", style="dim")
        if issue.where:
            text.append(f" · {inert(issue.where)}", style="dim")
        text.append(f"\n{inert(issue.message)}")
        detail.update(text)

    @on(RowLoaded)
    def _show_row(self, message: RowLoaded) -> None:
        view = message.view
        if message.dataset != self.selected:
            return
        self.row_index = view.index
        self._row_shown = message
        palette = self.palette
        header = Text(f"row {view.index + 1}", style="bold")
        header.append(inert(f"  {view.file}:{view.row}"), style="dim")
        header.append("  raw" if self.show_raw else "  normalised", style="italic")
        self.query_one("#row-header", Static).update(header)
        body = Text()
        if view.issues:
            for issue in view.issues:
                body.append(
                    f"{issue.severity}: {inert(issue.message)}\n", style=palette.style("error")
                )
            body.append("\n")
        if view.conversation is None and isinstance(view.raw, str):
            body.append(inert(view.raw))  # an unreadable row: the text as stored
        elif self.show_raw or view.conversation is None:
            body.append_text(raw_text(view.raw))
        else:
            body.append_text(conversation_text(view.conversation, palette))
        self.query_one("#row-text", Static).update(body)

    # Events and actions --------------------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#datasets-table")
    def _dataset_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self._select(str(event.row_key.value))

    @on(DataTable.RowSelected, "#datasets-table")
    def _dataset_selected(self, event: DataTable.RowSelected) -> None:
        self.action_show_tab("tab-rows")

    @on(DataTable.RowHighlighted, "#issues-table")
    def _issue_highlighted(self, event: DataTable.RowHighlighted) -> None:
        report = self.reports.get(self.selected or "")
        if report is not None and event.row_key.value is not None:
            self._show_issue(report.issues[int(str(event.row_key.value))])

    @on(DataTable.RowSelected, "#issues-table")
    def _issue_selected(self, event: DataTable.RowSelected) -> None:
        report = self.reports.get(self.selected or "")
        if report is None:
            return
        issue = report.issues[int(str(event.row_key.value))]
        if issue.row is not None:
            self.post_message(OpenDatasetRow(self.selected, issue.row - 1))

    @on(OpenDatasetRow)
    def _open_row(self, message: OpenDatasetRow) -> None:
        self.action_show_tab("tab-rows")
        self.load_row(message.dataset, message.row)

    def action_show_tab(self, tab: str) -> None:
        self.query_one("#dataset-detail", TabbedContent).active = tab

    def action_step_row(self, delta: int) -> None:
        if self.selected:
            self.action_show_tab("tab-rows")
            self.load_row(self.selected, max(0, self.row_index + delta))

    def action_toggle_raw(self) -> None:
        self.show_raw = not self.show_raw
        if self.selected:
            self.action_show_tab("tab-rows")
            self.load_row(self.selected, self.row_index)

    def action_preview(self) -> None:
        if self.selected:
            self.post_message(PreviewDataset(self.selected))

    def action_filter(self) -> None:
        box = self.query_one("#dataset-filter", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#dataset-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self._filter = event.value.strip()
        if self.info is not None:
            self._fill_table()

    @on(Input.Submitted, "#dataset-filter")
    def _filter_submitted(self) -> None:
        self.query_one("#datasets-table").focus()

    def key_escape(self) -> None:
        box = self.query_one("#dataset-filter", Input)
        if box.display:
            box.value = ""
            box.display = False
            self.query_one("#datasets-table").focus()
        else:
            super().key_escape()


def _badge(status: str, palette: Palette) -> Text:
    symbol, style = _badge_style(status, palette)
    return Text(symbol, style=style)


def _badge_style(status: str, palette: Palette) -> tuple[str, str]:
    """A status's symbol and its style in the current theme."""
    symbol, role, modifiers = BADGES.get(status, ("?", None, "dim"))
    return symbol, palette.style(role, modifiers) if role else modifiers


def _severity(issue: Issue, palette: Palette) -> Text:
    """The whole severity word, in the error colour for errors, warning colour otherwise."""
    return Text(str(issue.severity), style=palette.style("error" if issue.is_error else "warning"))


def _where(issue: Issue) -> str:
    from pathlib import Path

    file = Path(issue.file).name if issue.file else ""
    if issue.row is not None:
        return f"{file}:{issue.row}"
    if issue.line is not None:
        return f"{file}:{issue.line}"
    return file


def _spec_text(spec: Any, report: Any, stats: Any, palette: Palette) -> Text:
    from dataclasses import fields

    from tunedeck.core.datasets import dataset_kind

    text = Text()
    text.append(f"{inert(spec.name)}\n", style="bold")
    text.append(inert(f"{dataset_kind(spec)} · {spec.formatting}"), style=palette.style("info"))
    text.append(inert(f" · {spec.load_from}: {spec.source}") + "\n")
    if report is not None:
        symbol, style = _badge_style(report.status, palette)
        text.append(f"{symbol} {report.status}", style=style)
        rows = f"{report.rows:,} rows" if report.rows is not None else "rows unknown"
        text.append(f" · {rows} · {report.issue_count} issues\n")
    else:
        text.append("… validating\n", style="dim")
    for label, group in (("columns", spec.columns), ("tags", spec.tags)):
        if label == "tags" and spec.formatting == "alpaca":
            continue
        values = [(f.name, getattr(group, f.name)) for f in fields(group)]
        skip = {"messages"} if spec.formatting == "alpaca" else {"prompt", "query", "response"}
        values = [(key, value) for key, value in values if key not in skip]
        text.append(f"\n{label}\n", style="bold")
        for key, value in values:
            if value is not None:
                text.append(f"  {key:<16}", style="dim")
                text.append(f"{inert(value)}\n")
    for key in ("ranking", "subset", "split", "folder", "num_samples"):
        value = getattr(spec, key, None)
        if value not in (None, False, "train"):
            text.append(f"  {key:<16}", style="dim")
            text.append(f"{inert(value)}\n")
    if isinstance(stats, Exception):
        text.append(f"\nstats: {inert(stats)}\n", style=palette.style("error"))
    elif stats is not None:
        text.append("\nstats\n", style="bold")
        text.append(f"  rows {stats.rows:,} · with issues {stats.rows_with_issues:,}\n")
        if stats.roles:
            roles = inert(", ".join(f"{k} {v:,}" for k, v in stats.roles.items()))
            text.append(f"  roles {roles}\n")
        for label, summary in (("prompt", stats.prompt_chars), ("response", stats.response_chars)):
            if summary is not None and getattr(summary, "min", None) is not None:
                text.append(
                    f"  {label} chars  min {summary.min:,} · median {summary.median:,}"
                    f" · p95 {summary.p95:,} · max {summary.max:,}\n"
                )
        media = [
            f"{k} {getattr(stats, k):,}"
            for k in ("images", "videos", "audios")
            if getattr(stats, k, 0)
        ]
        if media:
            text.append(f"  media {', '.join(media)}\n")
    return text


SCREEN = DatasetsScreen
