"""The Hosts screen: hosts added with the CLI while the app runs appear; probes go through the pool;
`p` shows a host's prepared data."""

from __future__ import annotations

import json
import subprocess
import sys

from pilot_tools import EXAMPLE_DATA, TOKENIZER, Posted, settle, settle_until
from textual.widgets import DataTable

from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.messages import HostProbed
from tunedeck.tui.screens.confirm import ConfirmScreen
from tunedeck.tui.screens.prepared import PreparedScreen


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


async def test_p_lists_this_boxs_prepared_data_and_d_removes_one_after_asking(tmp_path):
    from tunedeck.core.config import RunConfig
    from tunedeck.core.runners.prepared import prepare_dataset
    from tunedeck.core.templates import load_tokenizer

    tokenizer = load_tokenizer(TOKENIZER, "llama3")
    folders = []
    for name in ("alpha", "beta"):
        data = tmp_path / name
        data.mkdir()
        (data / "d.json").write_text(json.dumps([{"instruction": name, "output": "ok"}] * 3))
        (data / "dataset_info.json").write_text(json.dumps({name: {"file_name": "d.json"}}))
        config = RunConfig(template="llama3", dataset=name, dataset_dir=str(data))
        folders.append(prepare_dataset(config, tokenizer).folder)

    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        await settle_until(pilot, lambda: app.current_mode == "hosts", "hosts screen")
        await pilot.press("p")
        await settle_until(pilot, lambda: isinstance(app.screen, PreparedScreen), "prepared")
        table = app.screen.query_one("#prepared-table", DataTable)
        await settle_until(pilot, lambda: table.row_count == 2, "two folders listed")
        first = app.screen.entries[0]
        assert str(table.get_row_at(0)[3]) == first.about["datasets"][0]

        await pilot.press("d")
        await settle_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "question")
        await pilot.press("n")  # no: nothing removed
        await settle_until(pilot, lambda: isinstance(app.screen, PreparedScreen), "back")
        assert all(folder.is_dir() for folder in folders)

        await pilot.press("d")
        await settle_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "question")
        await pilot.press("y")
        await settle_until(pilot, lambda: table.row_count == 1, "one folder left")
        assert not first.folder.exists()
        assert [e.key for e in app.screen.entries] == [f.name for f in folders if f != first.folder]
        await pilot.press("escape")
        await settle_until(pilot, lambda: app.current_mode == "hosts", "back on hosts")
