"""Hosts: this box and the configured SSH hosts, whether they answer, and their GPUs."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from tunedeck.tui.screens.base import DeckScreen

REFRESH_SECONDS = 15.0


class HostsScreen(DeckScreen):
    """Hosts on top (reachability, latency, GPU count); the selected host's GPUs below."""

    MODE = "hosts"
    BINDINGS = [
        Binding("r", "refresh_hosts", "Refresh", id="hosts.refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.status: dict[str, dict] = {}
        self.selected = "local"

    def compose_body(self) -> ComposeResult:
        with Vertical(id="hosts-top"):
            yield DataTable(id="hosts-table", cursor_type="row")
        yield Static("", id="hosts-detail", classes="status-line")
        yield DataTable(id="gpus-table", cursor_type="row")

    def on_mount(self) -> None:
        hosts = self.query_one("#hosts-table", DataTable)
        for label in ("host", "target", "state", "latency", "gpus", "detail"):
            hosts.add_column(label, key=label)
        gpus = self.query_one("#gpus-table", DataTable)
        for label in ("gpu", "name", "util", "memory", "processes"):
            gpus.add_column(label, key=label)
        hosts.focus()
        self.action_refresh_hosts()
        self.set_interval(REFRESH_SECONDS, self.action_refresh_hosts)

    def action_refresh_hosts(self) -> None:
        self.probe_hosts()

    @work(thread=True, exclusive=True, group="hosts-probe")
    def probe_hosts(self) -> None:
        from tunedeck.core.errors import TunedeckError
        from tunedeck.core.jobs import get_backend

        try:
            from tunedeck.core.jobs.hosts import load_hosts

            hosts = load_hosts()
        except TunedeckError as error:
            self.from_thread(self.notify, str(error), severity="error")
            hosts = {}
        rows = {"local": {"target": "this machine", "state": "…"}}
        rows.update({name: {"target": host.target, "state": "…"} for name, host in hosts.items()})
        self.from_thread(self._show_hosts, rows, initial=True)
        for name in rows:
            started = time.monotonic()
            row = dict(rows[name])
            try:
                backend = get_backend(name)
                try:
                    if name != "local":
                        backend.check()
                    row["gpus"] = backend.gpus()
                finally:
                    backend.close()
                row["state"] = "ok"
                if name != "local":  # a round trip to this machine says nothing
                    row["latency"] = time.monotonic() - started
            except TunedeckError as error:
                row["state"] = "unreachable"
                row["detail"] = str(error)
            rows[name] = row
            self.from_thread(self._show_hosts, {name: row})

    def _show_hosts(self, rows: dict[str, dict], initial: bool = False) -> None:
        table = self.query_one("#hosts-table", DataTable)
        if initial:
            table.clear()
            self.status = {}
        for name, row in rows.items():
            self.status[name] = row
            state = row.get("state", "…")
            style = {"ok": "green", "unreachable": "bold red"}.get(state, "dim")
            gpus = row.get("gpus")
            cells = (
                name,
                row.get("target", ""),
                Text(state, style=style),
                f"{row['latency'] * 1000:.0f} ms" if row.get("latency") is not None else "",
                "" if gpus is None else (str(len(gpus)) if gpus else "none"),
                Text(row.get("detail", ""), style="red"),
            )
            if name in table.rows:
                keys = ("host", "target", "state", "latency", "gpus", "detail")
                for key, value in zip(keys, cells, strict=True):
                    table.update_cell(name, key, value, update_width=True)
            else:
                table.add_row(*cells, key=name)
        self._show_gpus()

    @on(DataTable.RowHighlighted, "#hosts-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.selected = str(event.row_key.value)
            self._show_gpus()

    def _show_gpus(self) -> None:
        row = self.status.get(self.selected, {})
        table = self.query_one("#gpus-table", DataTable)
        table.clear()
        gpus: list[Any] = row.get("gpus") or []
        detail = Text(f"{self.selected}: ", style="bold")
        if row.get("state") == "unreachable":
            detail.append(row.get("detail", "unreachable"), style="red")
        elif row.get("gpus") is None:
            detail.append("probing…", style="dim")
        elif not gpus:
            detail.append("no NVIDIA GPU (nvidia-smi not found or no driver)", style="dim")
        else:
            detail.append(f"{len(gpus)} GPU(s)")
        self.query_one("#hosts-detail", Static).update(detail)
        for gpu in gpus:
            table.add_row(
                str(gpu.index),
                gpu.name,
                _percent_bar(gpu.utilization_pct),
                _memory(gpu.memory_used_mib, gpu.memory_total_mib),
                ", ".join(f"{p.pid} ({p.memory_mib or '?'} MiB)" for p in gpu.processes) or "-",
            )


def _percent_bar(value: int | None, width: int = 10) -> Text:
    if value is None:
        return Text("?")
    filled = round(value / 100 * width)
    text = Text("█" * filled, style="green" if value < 80 else "yellow")
    text.append("░" * (width - filled), style="dim")
    text.append(f" {value:3d}%")
    return text


def _memory(used: int | None, total: int | None) -> Text:
    if used is None or not total:
        return Text("?")
    text = _percent_bar(round(100 * used / total))
    text.append(f" {used:,}/{total:,} MiB")
    return text


SCREEN = HostsScreen
