"""Screens with a Slurm host: Hosts (partitions, nodes and GPUs in use, probed through the pool)
and Launch (the sbatch script the run would submit)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from slurm_cluster import CLUSTER_NAME
from textual.widgets import DataTable, Select, Static

from tunedeck.core.jobs.registry import JobRegistry
from tunedeck.core.locations import state_dir
from tunedeck.tui.app import TunedeckApp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tui"))
from pilot_tools import EXAMPLE_DATA, settle_until, wait_until  # noqa: E402

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


TINY_MODEL = Path(__file__).resolve().parents[2] / "examples" / "workspace" / "models" / "tiny"


def test_launch_screen_shows_the_sbatch_script_for_a_slurm_host(slurm_local_host, tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("slurm_time: '45'\nslurm_cpus_per_task: 1\n")
    asyncio.run(_launch_screen_shows_sbatch(base, tmp_path / "out"))
    assert JobRegistry().list() == []
    assert not list((state_dir() / "runs").glob("*.yaml"))  # a preview keeps no snapshot


async def _launch_screen_shows_sbatch(base: Path, out: Path) -> None:
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(160, 60)) as pilot:
        await pilot.press("4")
        await settle_until(pilot, lambda: app.current_mode == "launch", "launch screen")
        screen = app.screen
        await settle_until(pilot, lambda: CLUSTER_NAME in screen.choices["hosts"], "host listed")
        values = {"config": str(base), "dataset": "demo_alpaca", "output_dir": str(out)}
        values["model_name_or_path"] = str(TINY_MODEL)
        for key, value in values.items():
            screen.query_one(f"#train-{key}").value = value
        screen.query_one("#train-host", Select).value = CLUSTER_NAME
        panel = screen.query_one("#launch-sbatch", Static)
        await settle_until(pilot, lambda: "#!/bin/bash" in str(panel.render()), "the script")
        lines = str(panel.render()).splitlines()
        assert lines[1] == f"sbatch script on {CLUSTER_NAME}"
        for line in ("--time=45", "--cpus-per-task=1", "--partition=debug", "--no-requeue"):
            assert f"#SBATCH {line}" in lines
        assert any("tunedeck.core.runners.train" in line for line in lines)
        screen.query_one("#train-host", Select).value = "local"
        await settle_until(pilot, lambda: not str(panel.render()).strip(), "no script off Slurm")


def test_runs_screen_shows_each_pending_jobs_place_in_the_queue(slurm_local_host):
    from tunedeck.core.jobs import JobSpec, get_backend
    from tunedeck.core.jobs.backend import Resources

    backend = get_backend(CLUSTER_NAME)
    held = Resources(hold=True)
    jobs = [backend.submit(JobSpec(("true",), f"held-{k}", resources=held)) for k in range(2)]
    try:
        asyncio.run(_runs_screen_shows_places([job.id for job in jobs]))
    finally:
        for job in jobs:
            backend.cancel(job, grace=5)
        backend.close()


async def _runs_screen_shows_places(ids: list[str]) -> None:
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("3")
        await wait_until(pilot, lambda: app.current_mode == "runs", "runs screen", timeout=60)
        table = app.screen.query_one("#jobs-table", DataTable)

        def cell(job_id: str) -> str:
            return str(table.get_row(job_id)[4]) if job_id in table.rows else ""

        await wait_until(pilot, lambda: cell(ids[1]).endswith("#2"), "the second placed", 60)
        assert cell(ids[0]).startswith("pending (JobHeldUser") and cell(ids[0]).endswith("#1")
        table.move_cursor(row=table.get_row_index(ids[1]))
        detail = app.screen.query_one("#job-detail", Static)
        await wait_until(pilot, lambda: "queue position 2" in str(detail.render()), "detail", 60)
