"""The Hosts screen on a Slurm host: its partitions, nodes and GPUs in use, probed through the pool."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from slurm_cluster import CLUSTER_NAME
from textual.widgets import DataTable, Static

from tunedeck.tui.app import TunedeckApp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tui"))
from pilot_tools import EXAMPLE_DATA, settle_until  # noqa: E402

pytestmark = pytest.mark.slow


def test_hosts_screen_shows_a_slurm_hosts_partitions_nodes_and_gpus(slurm_local_host):
    asyncio.run(_hosts_screen_shows_slurm())


async def _hosts_screen_shows_slurm() -> None:
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("5")
        await settle_until(pilot, lambda: app.current_mode == "hosts", "hosts screen")
        table = app.screen.query_one("#hosts-table", DataTable)

        def gpus_cell() -> str:
            return str(table.get_row(CLUSTER_NAME)[4]) if CLUSTER_NAME in table.rows else ""

        await settle_until(pilot, lambda: gpus_cell().startswith("slurm"), "cluster probed")
        assert gpus_cell() == "slurm: 1 node(s), 0/0 GPU in use"
        table.move_cursor(row=table.get_row_index(CLUSTER_NAME))
        detail = app.screen.query_one("#hosts-detail", Static)
        await settle_until(pilot, lambda: "debug*" in str(detail.render()), "partitions shown")
        text = str(detail.render())
        assert "slurm-wlm 22.05" in text or "slurm 2" in text
        assert "debug*: 1 node(s) (1 idle), CPUs 0/2 in use" in text
