"""Compare: the marked runs' curves overlaid (loss or eval_loss, by step or tokens seen), their
final metrics and the config keys that differ; opened from Runs with `c`, left with escape."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Static

from tunedeck.core.jobs.compare import BY_STEP, BY_TOKENS, METRICS, Comparison, compare_runs
from tunedeck.core.text import inert_lines
from tunedeck.tui.commands.compare import count_text, duration_text, loss_text, value_text
from tunedeck.tui.palette import Palette, follow_theme
from tunedeck.tui.screens.base import DeckScreen
from tunedeck.tui.widgets.log_view import plain
from tunedeck.tui.widgets.loss_chart import CompareChart, run_colours
from tunedeck.tui.widgets.series import MinMaxSeries

RELOAD_SECONDS = 5.0  # while a compared run is unfinished, its points are read again this often
FINAL_COLUMNS = ("run", "id", "host", "state", "steps", "tokens", "loss", "best eval", "last eval")


class ComparisonLoaded(Message):
    """The worker read the runs: here is what to show."""

    def __init__(self, comparison: Comparison) -> None:
        super().__init__()
        self.comparison = comparison


class CompareScreen(DeckScreen):
    """Pushed over Runs for the runs named by `refs` (job ids, or a sweep's group id)."""

    MODE = "runs"
    DEFAULT_CSS = """
    CompareScreen #compare-chart { height: 1fr; min-height: 7; }
    CompareScreen #compare-final { max-height: 8; }
    CompareScreen #compare-diff { max-height: 30%; min-height: 3; }
    CompareScreen #compare-notes { height: auto; max-height: 3; padding: 0 1; color: $text-muted; }
    """
    BINDINGS = [
        Binding("escape", "back", "Back", id="compare.back"),
        Binding("e", "toggle_metric", "loss/eval", id="compare.metric"),
        Binding("t", "toggle_axis", "step/tokens", id="compare.axis"),
        Binding("r", "reload", "Reload", id="compare.reload"),
    ]

    def __init__(self, refs: list[str], pool: Any) -> None:
        super().__init__()
        self.refs = list(refs)
        self.pool = pool  # the Runs screen's: its warm sessions to the hosts
        self.comparison: Comparison | None = None
        self.metric = "loss"
        self.by = BY_STEP
        self._diff_shown: tuple | None = None

    def compose_body(self) -> ComposeResult:
        yield Static("reading the runs...", id="compare-title", classes="status-line")
        yield CompareChart(id="compare-chart")
        yield DataTable(id="compare-final", cursor_type="none", zebra_stripes=True)
        yield DataTable(id="compare-diff", cursor_type="row", zebra_stripes=True)
        yield Static("", id="compare-notes")

    def on_mount(self) -> None:
        self.query_one("#compare-diff", DataTable).focus()
        follow_theme(self, lambda: self._show(tables=True, recolour=True))
        self.load()
        self.set_interval(RELOAD_SECONDS, self._reload_unfinished)

    # Loading -----------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="compare-load", exit_on_error=False)
    def load(self) -> None:
        self.post_message(ComparisonLoaded(compare_runs(self.refs, self.pool)))

    def worker_failed(self, group: str, error: BaseException) -> None:
        """A run that cannot be compared is said in place (and notified)."""
        title = self.query_one("#compare-title", Static)
        title.update(Text(f"cannot compare: {error}", style="bold"))
        super().worker_failed(group, error)

    def _reload_unfinished(self) -> None:
        if self.comparison and any(not r.job.state.is_final for r in self.comparison.runs):
            self.load()

    @on(ComparisonLoaded)
    def _loaded(self, message: ComparisonLoaded) -> None:
        self.comparison = message.comparison
        self._show(tables=True)

    # Actions -----------------------------------------------------------------------------------

    def action_back(self) -> None:
        self.dismiss()

    def action_toggle_metric(self) -> None:
        """Draw eval_loss instead of loss, or back."""
        self.metric = METRICS[(METRICS.index(self.metric) + 1) % len(METRICS)]
        self._show()

    def action_toggle_axis(self) -> None:
        """Align the curves by tokens seen instead of steps, or back."""
        self.by = BY_TOKENS if self.by == BY_STEP else BY_STEP
        self._show()

    def action_reload(self) -> None:
        self.load()

    # Drawing -----------------------------------------------------------------------------------

    def _show(self, tables: bool = False, recolour: bool = False) -> None:
        """Draw the title, chart and notes; with `tables`, the final metrics and the config
        diff too (the diff only when it changed or the colours did: its cursor stays)."""
        comparison = self.comparison
        if comparison is None:
            return
        colours = run_colours(Palette.of(self.app), len(comparison.runs))
        self._show_title(comparison)
        lines = [
            (run.label, MinMaxSeries(run.curve(self.metric, self.by))) for run in comparison.runs
        ]
        unit = "steps" if self.by == BY_STEP else "tokens"
        self.query_one("#compare-chart", CompareChart).show(lines, self.metric, unit)
        if tables:
            self._show_final(comparison, colours)
            shown = (comparison.diff, tuple(run.label for run in comparison.runs))
            if recolour or shown != self._diff_shown:
                self._show_diff(comparison, colours)
                self._diff_shown = shown
        notes = Text(inert_lines("\n".join(comparison.notes_for(self.by))), style="dim")
        self.query_one("#compare-notes", Static).update(notes)

    def _show_title(self, comparison: Comparison) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        if comparison.group:
            text.append("sweep ", style="dim")
            text.append(plain(comparison.group, "bold"))
            text.append(" · ", style="dim")
        text.append(f"{len(comparison.runs)} runs", style="bold")
        text.append(f" · {self.metric} by {'step' if self.by == BY_STEP else 'tokens seen'}")
        text.append(" · e: loss/eval_loss · t: step/tokens · esc: back", style="dim")
        self.query_one("#compare-title", Static).update(text)

    def _show_final(self, comparison: Comparison, colours: list[str]) -> None:
        table = self.query_one("#compare-final", DataTable)
        table.clear(columns=True)
        for label in (*FINAL_COLUMNS, "runtime"):
            table.add_column(label, key=label)
        for run, colour in zip(comparison.runs, colours, strict=True):
            final = run.final()
            name = Text("━ ", style=f"bold {colour}")
            name.append(plain(run.label))
            table.add_row(
                name,
                plain("+".join(run.ids)),
                plain(run.job.host),
                Text(final.state),
                Text(count_text(final.steps)),
                Text(count_text(final.tokens)),
                Text(loss_text(final.last_loss)),
                Text(loss_text(final.best_eval_loss)),
                Text(loss_text(final.last_eval_loss)),
                Text(duration_text(final.runtime)),
                key="+".join(run.ids),
            )
        self._fit_height(table)

    def _show_diff(self, comparison: Comparison, colours: list[str]) -> None:
        table = self.query_one("#compare-diff", DataTable)
        table.clear(columns=True)
        same = comparison.diff.same
        table.add_column(Text(f"key ({same} more the same)" if same else "key"), key="key")
        for index, (run, colour) in enumerate(zip(comparison.runs, colours, strict=True)):
            table.add_column(plain(run.label, f"bold {colour}"), key=f"run-{index}")
        if not comparison.diff.keys:
            kept = any(run.config is not None for run in comparison.runs)
            why = "the configs do not differ" if kept else "no run kept its config"
            table.add_row(Text(why, style="dim"), *[""] * len(colours))
        for key, values in comparison.diff.rows():
            table.add_row(plain(key), *(plain(value_text(v)) for v in values), key=key)
        self._fit_height(table)

    def _fit_height(self, table: DataTable) -> None:
        """A row per line and the header, no blank lines below; one more for the horizontal
        scrollbar when the columns are wider than the screen (80 columns, many runs)."""
        table.styles.height = table.row_count + 1

        def with_scrollbar() -> None:
            if table.virtual_size.width > table.size.width:
                table.styles.height = table.row_count + 2

        self.call_after_refresh(with_scrollbar)
