"""Runs tunedeck did not start, on the Runs screen: a folder written the way llamafactory-cli
writes it and a plain Trainer's trainer_state.json appear and update live as the test writes
them; a quiet one goes stale; one on a remote box shows with its host."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest
from pilot_tools import EXAMPLE_DATA, screen_text, wait_until
from sshd_server import box_account, remote_box, sshd  # noqa: F401 - fixtures
from textual.widgets import DataTable

from tunedeck.core.jobs.local import LocalBackend
from tunedeck.core.jobs.pool import BackendPool
from tunedeck.core.jobs.ssh import ssh_argv
from tunedeck.core.jobs.watched_folders import watch_file, watch_folder
from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.widgets.loss_chart import LossChart

TOTAL = 20


def lf_line(step: int, total: int = TOTAL) -> str:
    """One trainer_log.jsonl line with llamafactory-cli's keys."""
    return (
        json.dumps(
            {
                "current_steps": step,
                "total_steps": total,
                "loss": round(4.0 / step, 4),
                "lr": 2e-4,
                "epoch": round(step / total, 2),
                "percentage": round(step / total * 100, 2),
                "elapsed_time": f"0:00:{step:02d}",
                "remaining_time": f"0:00:{total - step:02d}",
            }
        )
        + "\n"
    )


def append(folder: Path, *steps: int) -> None:
    with open(folder / "trainer_log.jsonl", "a") as log:
        log.writelines(lf_line(step) for step in steps)


def trainer_state(step: int, max_steps: int) -> str:
    history = [{"step": n, "loss": 2.0 / n, "learning_rate": 5e-5} for n in range(1, step + 1)]
    return json.dumps({"global_step": step, "max_steps": max_steps, "log_history": history})


def cells(runs, job_id: str) -> dict[str, str]:
    """The run's row on the Runs screen, by column key (id, name, host, state, progress, ...)."""
    table = runs.query_one("#jobs-table", DataTable)
    keys = [str(column.key.value) for column in table.ordered_columns]
    return dict(zip(keys, (str(cell) for cell in table.get_row(job_id)), strict=True))


async def open_runs(pilot, app):
    await pilot.press("3")
    await wait_until(pilot, lambda: app.current_mode == "runs", "runs screen")
    return app.screen


def only_job(runs, name: str):
    found = [job for job in runs.jobs.values() if job.name == name]
    return found[0] if found else None


@pytest.mark.slow
async def test_a_llamafactory_run_under_a_watched_folder_appears_and_updates_live(tmp_path):
    saves = tmp_path / "saves"
    saves.mkdir()
    watch_folder(str(saves))
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(140, 40)) as pilot:
        runs = await open_runs(pilot, app)
        run = saves / "qwen3-4b" / "lora" / "sft"
        run.mkdir(parents=True)
        append(run, 1, 2)
        await wait_until(pilot, lambda: only_job(runs, "qwen3-4b/lora/sft"), "the run found")
        job_id = only_job(runs, "qwen3-4b/lora/sft").id
        table = runs.query_one("#jobs-table", DataTable)
        await wait_until(pilot, lambda: job_id in table.rows, "its row")
        shown = cells(runs, job_id)
        assert (shown["kind"], shown["host"], shown["state"]) == ("train", "local", "running")
        assert shown["progress"].endswith("10%") and shown["loss"] == "2.0000"
        assert shown["eta"]  # from the elapsed time the trainer logged
        runs.select_job(job_id)
        chart = runs.query_one(LossChart)
        await wait_until(pilot, lambda: len(chart.loss) == 2, "two losses charted")

        append(run, 3, 4, 5, 6, 7, 8, 9, 10)
        await wait_until(
            pilot, lambda: cells(runs, job_id)["progress"].endswith("50%"), "progress at 50%"
        )
        assert cells(runs, job_id)["loss"] == "0.4000"
        await wait_until(pilot, lambda: len(chart.loss) == 10, "ten losses charted")
        assert chart.loss.last == (10, 0.4)

        append(run, *range(11, TOTAL + 1))
        await wait_until(
            pilot, lambda: cells(runs, job_id)["state"] == "succeeded", "the run succeeded"
        )
        assert "qwen3-4b/lora/sft" in screen_text(app)


@pytest.mark.slow
async def test_a_trainer_run_added_by_its_folder_updates_at_each_checkpoint_then_goes_stale(
    tmp_path,
):
    watch_file().parent.mkdir(parents=True, exist_ok=True)
    watch_file().write_text("stale_after = 120\n")
    run = tmp_path / "trl-out"
    (run / "checkpoint-4").mkdir(parents=True)
    (run / "checkpoint-4" / "trainer_state.json").write_text(trainer_state(4, 16))
    job = LocalBackend().add_watched(str(run), name="trl-sft")
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(140, 40)) as pilot:
        runs = await open_runs(pilot, app)
        table = runs.query_one("#jobs-table", DataTable)
        await wait_until(pilot, lambda: job.id in table.rows, "the run listed")
        assert cells(runs, job.id)["progress"].endswith("25%")
        assert cells(runs, job.id)["loss"] == "0.5000"
        runs.select_job(job.id)
        chart = runs.query_one(LossChart)
        await wait_until(pilot, lambda: len(chart.loss) == 4, "four losses charted")

        (run / "checkpoint-8").mkdir()
        (run / "checkpoint-8" / "trainer_state.json").write_text(trainer_state(8, 16))
        await wait_until(
            pilot, lambda: cells(runs, job.id)["progress"].endswith("50%"), "the new checkpoint"
        )
        await wait_until(pilot, lambda: len(chart.loss) == 8, "eight losses charted")
        assert cells(runs, job.id)["state"] == "running"

        then = time.time() - 121  # nothing written for longer than the quiet period
        for path in [*run.rglob("*"), run]:
            os.utime(path, (then, then))
        await wait_until(pilot, lambda: cells(runs, job.id)["state"] == "stale", "stale")
        assert "no change for 2 min" in screen_text(app)


def append_on_host(host, folder: str, *steps: int) -> None:
    """Append trainer_log.jsonl lines on the box, as its own user (over its ssh)."""
    target = shlex.quote(f"{folder}/trainer_log.jsonl")
    lines = shlex.quote("".join(lf_line(step) for step in steps))
    script = f"mkdir -p {shlex.quote(folder)} && printf '%s' {lines} >> {target}"
    subprocess.run(ssh_argv(host, script), check=True, capture_output=True, timeout=60)


@pytest.mark.slow
async def test_a_run_on_a_remote_box_is_watched_on_the_runs_screen(remote_box):  # noqa: F811
    folder = f"{remote_box.workdir}/saves/far-run"
    append_on_host(remote_box, folder, 1, 2)
    with BackendPool() as pool:
        job = pool.backend(remote_box.name).add_watched(folder, name="far-run")
    assert (job.host, job.state.value) == ("box", "running")
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(140, 40)) as pilot:
        runs = await open_runs(pilot, app)
        table = runs.query_one("#jobs-table", DataTable)
        await wait_until(pilot, lambda: job.id in table.rows, "the remote run listed")
        assert cells(runs, job.id)["host"] == "box"
        assert cells(runs, job.id)["progress"].endswith("10%")
        runs.select_job(job.id)
        chart = runs.query_one(LossChart)
        await wait_until(pilot, lambda: len(chart.loss) == 2, "its losses", timeout=60)

        append_on_host(remote_box, folder, 3, 4, 5, 6)
        await wait_until(
            pilot,
            lambda: cells(runs, job.id)["progress"].endswith("30%"),
            "the remote progress",
            timeout=60,
        )
        await wait_until(pilot, lambda: len(chart.loss) == 6, "its new losses", timeout=60)
        assert cells(runs, job.id)["loss"] == "0.6667"
