"""Hosts: this box and the configured SSH hosts, whether they answer, and their GPUs (a Slurm
host: its partitions, nodes and GPUs in use);
`s` sets the selected host up (tunedeck installed there) with a progress bar; `p` shows the data
its runs prepared (tokenized, cached), to free its disk."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, ProgressBar, Static
from textual.worker import Worker, WorkerState, get_current_worker

from tunedeck.core.errors import TunedeckError
from tunedeck.core.jobs.hosts import get_host
from tunedeck.core.jobs.model import LOCAL_HOST
from tunedeck.core.jobs.pool import BackendPool, HostProbe
from tunedeck.core.jobs.setup import Progress, SetupOptions, SetupResult, setup_host
from tunedeck.tui.messages import HostProbed, HostsListed
from tunedeck.tui.palette import Palette, follow_theme
from tunedeck.tui.screens.base import DeckScreen
from tunedeck.tui.widgets.log_view import inert, plain

REFRESH_SECONDS = 15.0
HOSTS_FILE_SECONDS = 2.0  # how often hosts.toml is looked at (a stat, re-read when it changed)
COLUMNS = ("host", "target", "state", "latency", "gpus", "detail")


class SetupProgressed(Message):
    """A step of a host setup, from the setup worker."""

    def __init__(self, host: str, progress: Progress) -> None:
        super().__init__()
        self.host = host
        self.progress = progress


class SetupFinished(Message):
    """A host setup ended: its result, or the error a user can act on."""

    def __init__(self, host: str, result: SetupResult | None, error: str | None) -> None:
        super().__init__()
        self.host = host
        self.result = result
        self.error = error


class HostsScreen(DeckScreen):
    """Hosts on top (reachability, latency, GPU count); the selected host's GPUs below."""

    MODE = "hosts"
    BINDINGS = [
        Binding("r", "refresh_hosts", "Refresh", id="hosts.refresh"),
        Binding("s", "setup_host", "Set up", id="hosts.setup"),
        Binding("p", "prepared", "Prepared data", id="hosts.prepared"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.pool = BackendPool()
        self.targets: dict[str, str] = {}
        self.status: dict[str, HostProbe] = {}
        self.selected = LOCAL_HOST
        self.setup_options = SetupOptions()  # what `s` installs (the train extra by default)
        self.setting_up: str | None = None

    def compose_body(self) -> ComposeResult:
        with Vertical(id="hosts-top"):
            yield DataTable(id="hosts-table", cursor_type="row")
        yield Static("", id="hosts-detail", classes="status-line")
        yield DataTable(id="gpus-table", cursor_type="row")
        with Vertical(id="setup-pane"):
            yield Static("", id="setup-line", classes="status-line")
            yield ProgressBar(id="setup-bar", show_eta=True)

    def on_mount(self) -> None:
        hosts = self.query_one("#hosts-table", DataTable)
        for label in COLUMNS:
            hosts.add_column(label, key=label)
        gpus = self.query_one("#gpus-table", DataTable)
        for label in ("gpu", "name", "util", "memory", "processes"):
            gpus.add_column(label, key=label)
        hosts.focus()
        self.query_one("#setup-pane").display = False
        follow_theme(self, self._recolour)
        self.action_refresh_hosts()
        self.set_interval(REFRESH_SECONDS, self.action_refresh_hosts)
        self.set_interval(HOSTS_FILE_SECONDS, self.list_hosts)

    def _recolour(self) -> None:
        """Redraw host states and GPU bars in the new theme's colours."""
        for name in self.targets:
            self._show_row(name)
        self._show_gpus()

    def on_screen_resume(self) -> None:
        self.list_hosts()  # hosts added elsewhere while another screen was shown

    def on_unmount(self) -> None:
        self.pool.close()

    def action_refresh_hosts(self) -> None:
        self.probe_hosts(None)

    def action_setup_host(self) -> None:
        """Set the selected host up: tunedeck in a venv there, its command in hosts.toml."""
        name = self.selected
        if name == LOCAL_HOST:
            self.notify("this machine runs this tunedeck: nothing to set up", title="Set up")
            return
        if self.setting_up is not None:
            self.notify(f"setting {inert(self.setting_up)} up already", title="Set up")
            return
        self.setting_up = name
        self.query_one("#setup-pane").display = True
        self.query_one("#setup-line", Static).update(plain(f"{name}: setting up…"))
        self.query_one("#setup-bar", ProgressBar).update(total=None, progress=0)
        self.run_setup(name, self.setup_options)

    def action_prepared(self) -> None:
        """The selected host's prepared-data cache (what its runs tokenized), to free its disk."""
        from tunedeck.tui.screens.prepared import PreparedScreen

        self.app.push_screen(PreparedScreen(None if self.selected == LOCAL_HOST else self.selected))

    # Workers: they post what they found ---------------------------------------------------

    @work(thread=True, exclusive=True, group="hosts-list", exit_on_error=False)
    def list_hosts(self) -> None:
        hosts = self.pool.hosts.current()
        targets = {LOCAL_HOST: "this machine"} | {n: h.target for n, h in hosts.items()}
        self.post_message(HostsListed(targets))

    @work(thread=True, exclusive=True, group="hosts-probe", exit_on_error=False)
    def probe_hosts(self, names: list[str] | None) -> None:
        """Probe `names` (None: every host, hosts.toml read again first)."""
        if names is None:
            hosts = self.pool.hosts.current()
            self.post_message(
                HostsListed({LOCAL_HOST: "this machine"} | {n: h.target for n, h in hosts.items()})
            )
            names = [LOCAL_HOST, *hosts]
        for name in names:
            if get_current_worker().is_cancelled:
                return
            self.post_message(HostProbed(self.pool.probe(name)))

    @work(thread=True, exclusive=True, group="hosts-setup", exit_on_error=False)
    def run_setup(self, name: str, options: SetupOptions) -> None:
        host = self.pool.hosts.current().get(name) or get_host(name)
        try:
            result = setup_host(
                host, options, progress=lambda p: self.post_message(SetupProgressed(name, p))
            )
        except TunedeckError as error:
            hint = f" ({error.hint})" if error.hint else ""
            self.post_message(SetupFinished(name, None, f"{error}{hint}"))
            return
        self.post_message(SetupFinished(name, result, None))

    @work(thread=True, group="hosts-probe-new", exit_on_error=False)
    def probe_new_hosts(self, names: list[str]) -> None:
        for name in names:
            self.post_message(HostProbed(self.pool.probe(name)))

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        """The one place a failed worker of this screen is reported (e.g. a broken hosts.toml)."""
        if event.state == WorkerState.ERROR:
            self.notify(inert(event.worker.error), title="Hosts", severity="error", markup=False)

    # What the workers found -------------------------------------------------------------

    @on(HostsListed)
    def _hosts_listed(self, message: HostsListed) -> None:
        table = self.query_one("#hosts-table", DataTable)
        new = [name for name in message.targets if name not in self.targets]
        self.targets = dict(message.targets)
        for key in [k for k in table.rows if k.value not in self.targets]:
            table.remove_row(key)
            self.status.pop(str(key.value), None)
        for name in new:
            self._show_row(name)
        unprobed = [name for name in new if name not in self.status]
        if unprobed and len(new) < len(self.targets):
            self.probe_new_hosts(unprobed)  # hosts that appeared later: probe them now
        self._show_gpus()

    @on(SetupProgressed)
    def _setup_progressed(self, message: SetupProgressed) -> None:
        progress = message.progress
        self.query_one("#setup-line", Static).update(plain(f"{message.host}: {progress.line()}"))
        bar = self.query_one("#setup-bar", ProgressBar)
        if progress.total_bytes:
            bar.update(total=progress.total_bytes, progress=progress.done_bytes)
        else:
            bar.update(total=None)

    @on(SetupFinished)
    def _setup_finished(self, message: SetupFinished) -> None:
        self.setting_up = None
        line = self.query_one("#setup-line", Static)
        bar = self.query_one("#setup-bar", ProgressBar)
        result = message.result
        if result is None:
            line.update(plain(f"{message.host}: {message.error}", style="bold"))
            bar.update(total=1, progress=0)
            self.notify(inert(message.error), title="Set up", severity="error", markup=False)
            return
        done = "set up" if result.changed else "already set up"
        text = f"{message.host}: {done}: tunedeck {result.version} in {result.venv}"
        line.update(plain(text))
        bar.update(total=1, progress=1)
        self.notify(inert(text), title="Set up", markup=False)
        self.probe_new_hosts([message.host])  # probed again with the command just recorded

    @on(HostProbed)
    def _host_probed(self, message: HostProbed) -> None:
        probe = message.probe
        if probe.name not in self.targets:
            return
        self.status[probe.name] = probe
        self._show_row(probe.name)
        self._show_gpus()

    def _show_row(self, name: str) -> None:
        table = self.query_one("#hosts-table", DataTable)
        palette = Palette.of(self.app)
        cells = _host_cells(name, self.targets.get(name, ""), self.status.get(name), palette)
        if name in table.rows:
            for key, value in zip(COLUMNS, cells, strict=True):
                table.update_cell(name, key, value, update_width=True)
        else:
            table.add_row(*cells, key=name)

    @on(DataTable.RowHighlighted, "#hosts-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.selected = str(event.row_key.value)
            self._show_gpus()

    def _show_gpus(self) -> None:
        probe = self.status.get(self.selected)
        table = self.query_one("#gpus-table", DataTable)
        table.clear()
        palette = Palette.of(self.app)
        detail = Text(f"{inert(self.selected)}: ", style="bold")
        if probe is None:
            detail.append("probing…", style="dim")
        elif not probe.reachable:
            detail.append(inert(probe.error or "unreachable"), style=palette.style("error"))
        elif probe.slurm_version:
            detail.append(f"{inert(probe.slurm_version)}; ")
            detail.append(plain("; ".join(p.line() for p in probe.partitions) or "no partition"))
        elif not probe.gpus:
            detail.append("no NVIDIA GPU (nvidia-smi not found or no driver)", style="dim")
        else:
            detail.append(f"{len(probe.gpus)} GPU(s)")
        self.query_one("#hosts-detail", Static).update(detail)
        for gpu in probe.gpus if probe else ():
            table.add_row(
                str(gpu.index),
                plain(gpu.name),
                _percent_bar(gpu.utilization_pct, palette),
                _memory(gpu.memory_used_mib, gpu.memory_total_mib, palette),
                plain(
                    ", ".join(f"{p.pid} ({p.memory_mib or '?'} MiB)" for p in gpu.processes) or "-"
                ),
            )


def _host_cells(name: str, target: str, probe: HostProbe | None, palette: Palette) -> tuple:
    """One row of the hosts table: a host not probed yet shows '…'."""
    if probe is None:
        return (plain(name), plain(target), Text("…", style="dim"), "", "", Text(""))
    state = "ok" if probe.reachable else "unreachable"
    state_style = palette.style("ok") if probe.reachable else palette.style("error", "bold")
    return (
        plain(name),
        plain(target),
        Text(state, style=state_style),
        f"{probe.latency * 1000:.0f} ms" if probe.latency is not None else "",
        _gpu_cell(probe) if probe.reachable else "",
        plain(probe.error or "", style=palette.style("error")),
    )


def _gpu_cell(probe: HostProbe) -> str:
    """The GPU count; a Slurm host's: nodes and GPUs in use over its partitions."""
    if probe.slurm_version:
        nodes = sum(p.nodes for p in probe.partitions)
        used, total = (
            sum(getattr(p, k) for p in probe.partitions) for k in ("gpus_used", "gpus_total")
        )
        return f"slurm: {nodes} node(s), {used}/{total} GPU in use"
    return str(len(probe.gpus)) if probe.gpus else "none"


def _percent_bar(value: int | None, palette: Palette, width: int = 10) -> Text:
    if value is None:
        return Text("?")
    filled = round(value / 100 * width)
    text = Text("█" * filled, style=palette.style("ok" if value < 80 else "warning"))
    text.append("░" * (width - filled), style="dim")
    text.append(f" {value:3d}%")
    return text


def _memory(used: int | None, total: int | None, palette: Palette) -> Text:
    if used is None or not total:
        return Text("?")
    text = _percent_bar(round(100 * used / total), palette)
    text.append(f" {used:,}/{total:,} MiB")
    return text


SCREEN = HostsScreen
