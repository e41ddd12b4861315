"""Runs: every job on every host, live; the selected run's log follows and its loss is drawn."""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Input, ProgressBar, Static
from textual.worker import Worker, WorkerState

from tunedeck.core.jobs.backend import DEFAULT_GRACE
from tunedeck.core.jobs.logs import RemoteLogFile
from tunedeck.core.jobs.metrics import metrics_stamp
from tunedeck.core.jobs.model import LOCAL_HOST
from tunedeck.core.jobs.pool import REST_SECONDS, BackendPool
from tunedeck.tui.messages import (
    JobCancelled,
    JobsListed,
    JobSubmitted,
    MetricsLoaded,
    PullNeedsConsent,
    PullProgressed,
    RunPulled,
    SelectJob,
)
from tunedeck.tui.palette import Palette, follow_theme
from tunedeck.tui.screens.base import DeckScreen
from tunedeck.tui.screens.confirm import ConfirmScreen
from tunedeck.tui.widgets.log_view import LogView, inert, plain
from tunedeck.tui.widgets.loss_chart import LossChart
from tunedeck.tui.widgets.series import MinMaxSeries

LIST_SECONDS = 1.0
REMOTE_LIST_SECONDS = 3.0
REMOTE_RETRY_SECONDS = REST_SECONDS  # after a host failed, the pool leaves it alone this long
METRICS_SECONDS = 1.0
REMOTE_METRICS_SECONDS = 3.0
CANCEL_GRACE = DEFAULT_GRACE  # the same grace as `tunedeck runs cancel`
RECENT_RUNS = 200  # the table lists the newest runs; `a` lists every one
# job state -> (palette role, modifiers); a queued run is dim, in no colour of its own
STATE_STYLES = {
    "queued": (None, "dim"),
    "running": ("running", "bold"),
    "stale": ("stale", ""),
    "succeeded": ("succeeded", ""),
    "failed": ("failed", "bold"),
    "cancelled": ("cancelled", ""),
    "lost": ("lost", ""),
}


class RunsScreen(DeckScreen):
    """Jobs table on top; the selected job's log (left) and loss chart (right) below."""

    MODE = "runs"
    DEFAULT_CSS = """
    #runs-filter { display: none; }
    #runs-filter.-visible { display: block; }
    #pull-progress { display: none; height: 1; }
    #pull-progress.-pulling { display: block; }
    """
    BINDINGS = [
        Binding("x", "cancel_job", "Cancel", id="runs.cancel"),
        Binding("R", "resume_job", "Resume", id="runs.resume"),
        Binding("o", "output_dir", "Output dir", id="runs.output"),
        Binding("p", "pull_run", "Pull", id="runs.pull"),
        Binding("y", "copy_command", "Copy cmd", id="runs.copy"),
        Binding("l", "focus_log", "Log", id="runs.log"),
        Binding("space", "mark_run", "Mark", show=False, id="runs.mark"),
        Binding("c", "compare_runs", "Compare", show=False, id="runs.compare"),
        Binding("a", "toggle_all", "All runs", id="runs.all"),
        Binding("slash", "start_filter", "Filter", key_display="/", id="runs.filter"),
        Binding("t", "focus_table", "Jobs", show=False, id="runs.table"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.jobs: dict[str, Any] = {}
        self.selected: str | None = None
        self._metrics_key: tuple | None = None
        self._wanted: str | None = None  # a job handed over by SelectJob, selected once listed
        self._remote_metrics_at = 0.0
        self.show_all = False  # every run in the registry, not only the newest RECENT_RUNS
        self.filter = ""  # shown: the runs whose id, name, kind, host, state or sweep holds this
        self.marked: list[str] = []  # runs marked with space, in the order marked: c compares them
        self.total = 0  # runs in the registry
        self.cell_updates = 0  # cells sent to the table: a refresh that changes nothing sends none
        self._shown: dict[str, tuple] = {}  # row key -> what its cells showed (see _signature)
        self._listed: tuple[Any, ...] = ()  # the worker's last read, reused while unchanged
        self._listed_key: tuple | None = None
        # one warm agent session per remote host, asked every few seconds
        self.pool = BackendPool(rest_seconds=REMOTE_RETRY_SECONDS, remote_every=REMOTE_LIST_SECONDS)

    def compose_body(self) -> ComposeResult:
        with Vertical(id="runs-top"):
            yield Input(placeholder="filter runs (Enter: apply, Esc: close)", id="runs-filter")
            yield DataTable(id="jobs-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="job-detail", classes="status-line")
            yield Static("", id="runs-count", classes="status-line")
            yield ProgressBar(id="pull-progress", show_eta=True)
        with Horizontal(id="runs-bottom"):
            yield LogView(id="job-log")
            yield LossChart(id="job-chart")

    def on_mount(self) -> None:
        table = self.query_one("#jobs-table", DataTable)
        for label in ("id", "name", "kind", "host", "state", "progress", "eta", "loss"):
            table.add_column(label, key=label)
        table.focus()
        follow_theme(self, self._recolour)
        self.refresh_jobs()
        self.set_interval(LIST_SECONDS, self.refresh_jobs)
        self.set_interval(METRICS_SECONDS, self._refresh_metrics)

    # Job list ----------------------------------------------------------------------------------

    def _recolour(self) -> None:
        """Redraw states and progress bars in the new theme's colours."""
        self._show_jobs(list(self.jobs.values()))

    @work(thread=True, exclusive=True, group="runs-list", exit_on_error=False)
    def refresh_jobs(self) -> None:
        listed, total = self._read_registry()
        refreshed = self.pool.refresh(listed)  # only unfinished runs are checked
        ordered = sorted(refreshed.jobs, key=lambda job: job.created_at, reverse=True)
        self.post_message(JobsListed(tuple(ordered), dict(refreshed.unreachable), total))

    def _read_registry(self) -> tuple[tuple[Any, ...], int]:
        """The runs to list (read again only when the registry files changed), and the total."""
        registry = self.pool.backend(LOCAL_HOST).registry
        key = (self.show_all, _registry_stamp(registry.path))
        if key != self._listed_key:
            if self.show_all:
                jobs = registry.list()
                self._listed, self.total = tuple(jobs), len(jobs)
            else:
                jobs, self.total = registry.recent(RECENT_RUNS)
                self._listed = tuple(jobs)
            self._listed_key = key
        return self._listed, self.total

    @on(JobsListed)
    def _jobs_listed(self, message: JobsListed) -> None:
        for host, why in message.unreachable.items():
            self._say(f"{host}: {why}", title="Host unreachable", severity="warning")
        self.total = message.total
        self._show_jobs(list(message.jobs))

    def on_unmount(self) -> None:
        self.pool.close()

    def _say(self, text: str, **kwargs: Any) -> None:
        """A notification whose text may hold untrusted names: shown as is, never markup."""
        self.notify(inert(text), markup=False, **kwargs)

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        """The one place a failed worker of this screen is reported."""
        if event.state == WorkerState.ERROR:
            self._say(str(event.worker.error), title="Runs", severity="error")
        if event.worker.group == "runs-pull" and event.state in (
            WorkerState.ERROR,
            WorkerState.CANCELLED,
        ):
            self.query_one("#pull-progress", ProgressBar).remove_class("-pulling")

    def _show_jobs(self, jobs: list[Any]) -> None:
        self.jobs = {job.id: job for job in jobs}
        self._show_rows(self._listed_rows())
        if self._wanted in self.jobs:
            wanted, self._wanted = self._wanted, None
            self.select_job(wanted)
        if not jobs:
            self.query_one("#job-detail", Static).update(
                Text("no runs yet: press 4 to launch one", style="dim")
            )
        elif self.selected is None:
            self._select(jobs[0].id)
        elif self.selected in self.jobs:
            self._show_detail()

    def _listed_rows(self) -> list[Any]:
        """The runs the filter lets through, newest first, a sweep's members together."""
        return grouped([job for job in self.jobs.values() if _matches(job, self.filter)])

    def _show_rows(self, jobs: list[Any]) -> None:
        """Send the table only what changed: new rows, gone rows, and cells that differ."""
        table = self.query_one("#jobs-table", DataTable)
        wanted = {job.id for job in jobs}
        for key in [key for key in self._shown if key not in wanted]:
            table.remove_row(key)
            del self._shown[key]
        added = False
        palette = Palette.of(self.app)
        places = sweep_places(jobs)
        marked = set(self.marked)
        for job in jobs:
            cells = _job_cells(job, palette, job.id in marked, places.get(job.id))
            shown = tuple(_signature(cell) for cell in cells)
            before = self._shown.get(job.id)
            if before is None:
                table.add_row(*cells, key=job.id)
                added = True
            elif before != shown:
                for column, cell, old, new in zip(_COLUMNS, cells, before, shown, strict=True):
                    if old != new:
                        table.update_cell(job.id, column, cell, update_width=True)
                        self.cell_updates += 1
            self._shown[job.id] = shown
        if added:  # newest first, as `jobs` is
            order = {job.id: index for index, job in enumerate(jobs)}
            table.sort("id", key=lambda cell: order[cell.plain])
        self._show_count(len(jobs))

    def _show_count(self, shown: int) -> None:
        text = Text(f"{shown:,} of {self.total:,} runs", style="dim")
        if self.filter:
            text.append(" matching ", style="dim")
            text.append(inert(self.filter))
        text.append(" · a: " + ("newest only" if self.show_all else "all") + " · /: filter")
        marked = [job_id for job_id in self.marked if job_id in self.jobs]
        if marked:
            text.append(f" · {len(marked)} marked", style=Palette.of(self.app).style("marker"))
            text.append(" (c: compare, esc: clear)" if len(marked) > 1 else " (mark another)")
        else:
            text.append(" · space: mark, c: compare")
        self.query_one("#runs-count", Static).update(text)

    def action_toggle_all(self) -> None:
        """List every run in the registry, or only the newest."""
        self.show_all = not self.show_all
        self.refresh_jobs()

    def action_start_filter(self) -> None:
        box = self.query_one("#runs-filter", Input)
        box.add_class("-visible")
        box.value = self.filter
        box.focus()

    @on(Input.Changed, "#runs-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter = event.value.strip()
        self._show_rows(self._listed_rows())

    @on(Input.Submitted, "#runs-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        event.input.remove_class("-visible")
        self.action_focus_table()

    def key_escape(self) -> None:
        box = self.query_one("#runs-filter", Input)
        if box.has_class("-visible"):
            box.remove_class("-visible")
            self.action_focus_table()
        elif self.marked:
            self.marked = []
            self._show_rows(self._listed_rows())

    # Marks and compare -------------------------------------------------------------------------

    def action_mark_run(self) -> None:
        """Mark the run under the cursor for compare (or unmark it), then go to the next row."""
        table = self.query_one("#jobs-table", DataTable)
        if not table.row_count:
            self._say("no run to mark", severity="warning")
            return
        row_key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        job = self.jobs.get(str(row_key))
        if job is None:
            return
        if job.id in self.marked:
            self.marked.remove(job.id)
        else:
            self.marked.append(job.id)
        self._show_rows(self._listed_rows())
        if table.cursor_row < table.row_count - 1:
            table.move_cursor(row=table.cursor_row + 1)

    def action_compare_runs(self) -> None:
        """Compare the marked runs; with none marked, the selected run's sweep."""
        refs = [job_id for job_id in self.marked if job_id in self.jobs]
        job = self.jobs.get(self.selected or "")
        if not refs and job is not None and job.group:
            refs = [job.group]
        elif len(refs) < 2:
            self._say("mark two or more runs with space, then c", severity="warning")
            return
        from tunedeck.tui.screens.compare import CompareScreen

        self.app.push_screen(CompareScreen(refs, self.pool))

    @on(DataTable.RowHighlighted, "#jobs-table")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self._select(str(event.row_key.value))

    @on(DataTable.RowSelected, "#jobs-table")
    def _row_selected(self) -> None:
        self.action_focus_log()

    def _select(self, job_id: str) -> None:
        if job_id == self.selected:
            return
        self.selected = job_id
        job = self.jobs[job_id]
        self._show_detail()
        log_view = self.query_one("#job-log", LogView)
        if job.is_local:
            log_view.open(job.log_path)
        else:
            log_view.open(_remote_log(job, self.pool))
        self._metrics_key = None
        self.query_one("#job-chart", LossChart).replace([])
        self._refresh_metrics()

    def select_job(self, job_id: str) -> None:
        """Select a job (e.g. one just submitted from Launch)."""
        table = self.query_one("#jobs-table", DataTable)
        if job_id in table.rows:
            table.move_cursor(row=table.get_row_index(job_id))
        elif job_id in self.jobs:
            self._select(job_id)

    def _show_detail(self) -> None:
        job = self.jobs.get(self.selected or "")
        if job is None:
            return
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{inert(job.id)} ", style="bold")
        text.append(job.state.value, style=_state_style(job.state.value, Palette.of(self.app)))
        if job.exit_code is not None:
            text.append(f" exit {job.exit_code}")
        if job.scheduler_id:
            text.append(f" · slurm {inert(job.scheduler_id)}", style="dim")
            if job.scheduler_state:
                text.append(f" {inert(job.scheduler_state)}", style="dim")
            if job.reason:
                text.append(f": {inert(job.reason)}", style="dim")
            if getattr(job, "queue_position", None):
                text.append(f", queue position {job.queue_position}", style="dim")
        if job.group:
            text.append(f" · sweep {inert(job.group)}", style="dim")
        if job.message:
            text.append(f" · {inert(job.message)}", style="dim")
        if job.output_dir:
            text.append(f" · out {inert(job.output_dir)}", style="dim")
        text.append(f" · {inert(shlex.join(job.argv))}", style="dim")
        self.query_one("#job-detail", Static).update(text)

    # Metrics -----------------------------------------------------------------------------------

    def _refresh_metrics(self) -> None:
        job = self.jobs.get(self.selected or "")
        if job is None:
            return
        if not job.is_local:  # a round trip over SSH: every few seconds is enough
            now = time.monotonic()
            if now - self._remote_metrics_at < REMOTE_METRICS_SECONDS:
                return
            self._remote_metrics_at = now
        self.load_metrics(job)

    @work(thread=True, exclusive=True, group="runs-metrics")
    def load_metrics(self, job: Any) -> None:
        key = metrics_stamp(job)
        if key is not None and key == self._metrics_key:
            return
        try:
            points = self.pool.metrics(job)
        except Exception:  # metrics are a view: a broken file must not stop the screen
            return
        loss = MinMaxSeries((p.step, p.loss) for p in points if p.loss is not None)
        evals = MinMaxSeries((p.step, p.eval_loss) for p in points if p.eval_loss is not None)
        self.post_message(MetricsLoaded(job.id, key, loss, evals))

    @on(MetricsLoaded)
    def _metrics_loaded(self, message: MetricsLoaded) -> None:
        if message.job_id != self.selected:
            return
        self._metrics_key = message.key
        chart = self.query_one("#job-chart", LossChart)
        chart.loss, chart.eval_loss = message.loss, message.eval_loss
        chart.refresh()

    # Actions -----------------------------------------------------------------------------------

    def _current(self) -> Any:
        job = self.jobs.get(self.selected or "")
        if job is None:
            self._say("no run selected", severity="warning")
        return job

    def action_cancel_job(self) -> None:
        job = self._current()
        if job is None:
            return
        if job.state.is_final:
            self._say(f"{job.id} already {job.state.value}")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._say(f"cancelling {job.id}: SIGTERM, SIGKILL after {CANCEL_GRACE:.0f} s")
                self.cancel_job(job)

        self.app.push_screen(
            ConfirmScreen(
                inert(f"Cancel run {job.name} ({job.id}) on {job.host}?"),
                f"It gets SIGTERM, then SIGKILL after {CANCEL_GRACE:.0f} s if still running.",
                yes="Cancel run",
            ),
            answered,
        )

    @work(thread=True, group="runs-cancel", exit_on_error=False)
    def cancel_job(self, job: Any) -> None:
        self.post_message(JobCancelled(self.pool.cancel(job, grace=CANCEL_GRACE)))

    @on(JobCancelled)
    def _job_cancelled(self, message: JobCancelled) -> None:
        result = message.result
        self._say(f"{result.job.id} cancelled with {result.signal or 'nothing (already finished)'}")
        self.refresh_jobs()

    def action_resume_job(self) -> None:
        job = self._current()
        if job is not None:
            self.resubmit(job)

    @work(thread=True, group="runs-submit", exit_on_error=False)
    def resubmit(self, job: Any) -> None:
        from tunedeck.core.runners.launch import resume_run

        new = resume_run(job)
        self._say(f"re-submitted {job.name} as {new.id}")
        self.post_message(JobSubmitted(new.id))

    def action_output_dir(self) -> None:
        job = self._current()
        if job is None:
            return
        if not job.output_dir:
            self._say("this run has no output dir", severity="warning")
            return
        self.app.copy_to_clipboard(job.output_dir)
        self._say(job.output_dir, title="Output dir (copied)")

    def action_pull_run(self) -> None:
        """Bring the selected run's output dir here (./<run name>), as `tunedeck runs pull`."""
        job = self._current()
        if job is None:
            return
        if not job.output_dir:
            self._say("this run has no output dir to pull", severity="warning")
            return
        self._say(f"pulling {job.name} ({job.id}) from {job.host}", title="Pull")
        self.pull_run(job)

    @work(thread=True, exclusive=True, group="runs-pull", exit_on_error=False)
    def pull_run(self, job: Any, plan: Any = None) -> None:
        """Plan the pull, ask about newer local files through the screen, then fetch."""
        from tunedeck.core.jobs.pull import plan_pull, pull

        if plan is None:
            plan = plan_pull(job)
            if plan.conflicts:
                self.post_message(PullNeedsConsent(plan))
                return
        self.post_message(PullProgressed(job.id, None))
        result = pull(
            plan,
            overwrite_newer=bool(plan.conflicts),
            on_progress=lambda progress: self.post_message(PullProgressed(job.id, progress)),
        )
        self.post_message(RunPulled(result))

    @on(PullNeedsConsent)
    def _pull_needs_consent(self, message: PullNeedsConsent) -> None:
        plan = message.plan
        names = ", ".join(c.path for c in plan.conflicts[:5])

        def answered(yes: bool | None) -> None:
            if yes:
                self.pull_run(plan.job, plan)
            else:
                self._say("nothing pulled: the newer local files were kept", title="Pull")

        self.app.push_screen(
            ConfirmScreen(
                inert(f"Replace {len(plan.conflicts)} newer local file(s) in {plan.dest}?"),
                inert(f"They differ from the host's copy: {names}"),
                yes="Replace",
            ),
            answered,
        )

    @on(PullProgressed)
    def _pull_progressed(self, message: PullProgressed) -> None:
        bar = self.query_one("#pull-progress", ProgressBar)
        bar.add_class("-pulling")
        if message.progress is not None:
            bar.update(
                total=max(message.progress.bytes_total, 1), progress=message.progress.bytes_done
            )

    @on(RunPulled)
    def _run_pulled(self, message: RunPulled) -> None:
        self.query_one("#pull-progress", ProgressBar).remove_class("-pulling")
        self._say(message.result.summary(), title="Pulled")
        self.refresh_jobs()

    def action_copy_command(self) -> None:
        job = self._current()
        if job is not None:
            command = rerun_command(job)
            self.app.copy_to_clipboard(command)
            self._say(command, title="Command copied")

    def action_focus_log(self) -> None:
        self.query_one("#job-log", LogView).lines_widget.focus()

    def action_focus_table(self) -> None:
        self.query_one("#jobs-table").focus()

    @on(SelectJob)
    def _select_job(self, message: SelectJob) -> None:
        """The app handed over a job (e.g. one just submitted): select it once it is listed."""
        if message.job_id in self.jobs:
            self.select_job(message.job_id)
        else:
            self._wanted = message.job_id
            self.refresh_jobs()


def rerun_command(job: Any) -> str:
    """What `y` copies: the `tunedeck ...` line a user can rerun, else the job's own argv."""
    return job.command_line or shlex.join(job.argv)


def _remote_log(job: Any, pool: BackendPool) -> RemoteLogFile:
    """The job's log on its host, read by offset over the pool's warm session."""
    return RemoteLogFile(
        f"{job.host}:{job.log_path or job.id}",
        lambda offset, limit: pool.read_log(job, offset, limit),
    )


_COLUMNS = ("id", "name", "kind", "host", "state", "progress", "eta", "loss")


def _state_style(state: str, palette: Palette) -> str:
    """A job state's style in the current theme."""
    role, modifiers = STATE_STYLES.get(state, (None, ""))
    return palette.style(role, modifiers) if role else modifiers


def grouped(jobs: list[Any]) -> list[Any]:
    """`jobs` (newest first) with each sweep's members listed together, in sweep order, where
    its newest member is."""
    members: dict[str, list[Any]] = {}
    for job in jobs:
        if job.group:
            members.setdefault(job.group, []).append(job)
    out = []
    for job in jobs:
        if not job.group:
            out.append(job)
        elif job.group in members:
            out.extend(sorted(members.pop(job.group), key=_sweep_order))
    return out


def sweep_places(jobs: list[Any]) -> dict[str, tuple[int, int]]:
    """Each listed sweep member's place: (k, N), k counting from 1 in the listed order."""
    sizes: dict[str, int] = {}
    for job in jobs:
        if job.group:
            sizes[job.group] = sizes.get(job.group, 0) + 1
    seen: dict[str, int] = {}
    places = {}
    for job in jobs:
        if job.group and sizes[job.group] > 1:
            seen[job.group] = seen.get(job.group, 0) + 1
            places[job.id] = (seen[job.group], sizes[job.group])
    return places


def _sweep_order(job: Any) -> tuple:
    return (job.group_index if job.group_index is not None else 1 << 30, job.created_at)


def _name_cell(job: Any, palette: Palette, marked: bool, place: tuple[int, int] | None) -> Text:
    """The run's name; `● ` when marked; a sweep member drawn as a branch with [k/N]."""
    text = Text(no_wrap=True, overflow="ellipsis")
    if marked:
        text.append("● ", style=palette.style("marker", "bold"))
    if place is not None:
        k, total = place
        text.append("┌ " if k == 1 else "└ " if k == total else "├ ", style="dim")
    text.append(inert(job.name))
    if place is not None:
        text.append(f" [{place[0]}/{place[1]}]", style="dim")
    return text


def _state_cell(job: Any, palette: Palette) -> Text:
    """The state; a job a scheduler holds says so in the scheduler's words (pending: Resources)."""
    style = _state_style(job.state.value, palette)
    if job.state.value == "queued" and job.scheduler_state:
        text = Text(inert(job.scheduler_state.lower()), style=style)
        if job.reason:
            text.append(f" ({inert(job.reason)})", style="dim")
        if getattr(job, "queue_position", None):
            text.append(f" #{job.queue_position}", style=style)
        return text
    return Text(job.state.value, style=style)


def _job_cells(
    job: Any, palette: Palette, marked: bool = False, place: tuple[int, int] | None = None
) -> tuple:
    state = _state_cell(job, palette)
    return (
        plain(job.id),
        _name_cell(job, palette, marked, place),
        plain(job.kind),
        plain(job.host),
        state,
        _progress_bar(job.progress, palette),
        Text(_eta(job)),
        Text(f"{job.last_loss:.4f}" if job.last_loss is not None else ""),
    )


def _signature(cell: Text) -> tuple:
    """What a cell shows: its text and styles (Text equality ignores the base style)."""
    return (cell.plain, str(cell.style), tuple((s.start, s.end, str(s.style)) for s in cell.spans))


def _matches(job: Any, needle: str) -> bool:
    """Whether a run's id, name, kind, host or state holds `needle` (any case)."""
    if not needle:
        return True
    needle = needle.casefold()
    fields = (job.id, job.name, job.kind, job.host, job.state.value, job.group or "")
    return any(needle in str(value).casefold() for value in fields)


def _registry_stamp(path: Path) -> tuple:
    """The registry database and its write-ahead log as they are now: changed by every write."""
    stamp = []
    for name in (path, path.with_name(path.name + "-wal")):
        try:
            stat = os.stat(name)
        except FileNotFoundError:
            stamp.append(None)
            continue
        stamp.append((stat.st_ino, stat.st_size, stat.st_mtime_ns))
    return tuple(stamp)


def _progress_bar(fraction: float | None, palette: Palette, width: int = 8) -> Text:
    if fraction is None:
        return Text("")
    fraction = min(max(fraction, 0.0), 1.0)
    filled = int(round(fraction * width))
    text = Text("█" * filled, style=palette.style("info"))
    text.append("░" * (width - filled), style="dim")
    text.append(f" {fraction * 100:3.0f}%")
    return text


def _eta(job: Any) -> str:
    if job.state.is_final or job.state.value == "stale" or not job.progress or not job.started_at:
        return ""
    elapsed = time.time() - job.started_at
    remaining = elapsed / job.progress * (1 - job.progress)
    minutes, seconds = divmod(int(remaining), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


SCREEN = RunsScreen
