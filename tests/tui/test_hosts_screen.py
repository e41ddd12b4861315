"""The Hosts screen: hosts added with the CLI while the app runs appear; probes go through the pool."""

from __future__ import annotations

import subprocess
import sys

from pilot_tools import EXAMPLE_DATA, Posted, settle, settle_until
from textual.widgets import DataTable

from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.messages import HostProbed


def _tunedeck(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tunedeck.tui", *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


async def test_a_host_added_with_the_cli_while_the_app_runs_appears_in_the_hosts_screen():
    posted = Posted()
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(140, 40), message_hook=posted) as pilot:
        await pilot.press("5")
        await settle_until(pilot, lambda: app.current_mode == "hosts", "hosts screen")
        table = app.screen.query_one("#hosts-table", DataTable)
        await settle_until(pilot, lambda: "local" in table.rows, "this box listed")
        assert "late" not in table.rows
        await pilot.press("3")  # away on another screen while a shell adds a host
        await settle_until(pilot, lambda: app.current_mode == "runs", "runs screen")
        # An unreachable port: the row must appear whatever the probe then finds.
        _tunedeck("hosts", "add", "late", "127.0.0.1", "--ssh-option", "-p 1")
        await pilot.press("5")
        await settle(pilot)
        assert "late" in table.rows
        assert str(table.get_row("late")[1]) == "127.0.0.1"
        probed = [m.probe for m in posted.of(HostProbed) if m.probe.name == "late"]
        assert probed and not probed[-1].reachable

        _tunedeck("hosts", "add", "later", "127.0.0.1", "--ssh-option", "-p 1")
        await pilot.press("r")
        await settle(pilot)
        assert "later" in table.rows
