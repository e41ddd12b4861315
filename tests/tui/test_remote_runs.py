"""A run on a host over a real loopback sshd, in the Runs screen: listed with its host, its log
followed, its loss drawn, then cancelled from the screen."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pilot_tools import EXAMPLE_DATA, screen_text, wait_until
from sshd_server import box_account, loop_host, remote_box, remote_home, sshd  # noqa: F401 - fixtures
from textual.widgets import DataTable

from tunedeck.core.jobs import cancel, find_job, submit
from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.screens.confirm import ConfirmScreen
from tunedeck.tui.widgets.log_view import LogView
from tunedeck.tui.widgets.loss_chart import LossChart

LINES = 12

# Prints numbered lines while it appends one loss per line to OUTPUT_DIR/trainer_log.jsonl, then
# waits (as a long training would) until it is cancelled.
STEPPING_JOB = f"""
import json, pathlib, sys, time
out = pathlib.Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
for step in range(1, {LINES} + 1):
    with open(out / "trainer_log.jsonl", "a") as log:
        entry = {{"current_steps": step, "total_steps": 100, "loss": 3.0 / step}}
        log.write(json.dumps(entry) + "\\n")
    print(f"line {{step}} of {LINES}", flush=True)
    time.sleep(0.25)
print("waiting for more data", flush=True)
time.sleep(600)
"""


@pytest.mark.slow
async def test_a_remote_run_is_followed_charted_and_cancelled_from_the_runs_screen(
    loop_host,  # noqa: F811 - the fixture imported above
    tmp_path,
):
    output_dir = tmp_path / "remote-out"
    job = submit(
        [sys.executable, "-c", STEPPING_JOB, str(output_dir)],
        name="remote-steps",
        host=loop_host.name,
        output_dir=str(output_dir),
    )
    assert job.host == "loop"

    try:
        await _follow_chart_and_cancel(job)
    finally:
        if not find_job(job.id).state.is_final:  # a failed check must not leave it running
            cancel(job, grace=5)


async def _follow_chart_and_cancel(job) -> None:
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("3")
        await wait_until(pilot, lambda: app.current_mode == "runs", "runs screen")
        runs = app.screen
        table = runs.query_one("#jobs-table", DataTable)
        await wait_until(pilot, lambda: job.id in table.rows, "the remote run listed", timeout=60)
        row = [str(cell) for cell in table.get_row(job.id)]
        assert row[:4] == [job.id, "remote-steps", "command", "loop"]
        assert job.id in screen_text(app)

        runs.select_job(job.id)
        await wait_until(pilot, lambda: runs.selected == job.id, "the remote run selected")
        log = runs.query_one(LogView)
        await wait_until(
            pilot,
            lambda: any(line.text == f"line {LINES} of {LINES}" for line in log.window),
            "the last numbered line followed",
            timeout=60,
        )
        chart = runs.query_one(LossChart)
        await wait_until(pilot, lambda: len(chart.loss) == LINES, "every loss charted", timeout=60)
        assert chart.loss.last == (LINES, 3.0 / LINES)
        assert runs.jobs[job.id].state.value == "running"

        runs.query_one("#jobs-table").focus()
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "confirmation")
        assert "on loop" in screen_text(app)
        await pilot.press("y")
        await wait_until(
            pilot,
            lambda: runs.jobs[job.id].state.value == "cancelled",
            "run cancelled",
            timeout=90,
        )
        assert "cancelled" in screen_text(app)


@pytest.mark.slow
async def test_a_remote_run_watched_by_the_app_ends_succeeded_in_the_app_and_the_cli(
    remote_box,  # noqa: F811 - the fixture imported above
):
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("3")
        await wait_until(pilot, lambda: app.current_mode == "runs", "runs screen")
        runs = app.screen
        job_id = _tunedeck("run", "--host", remote_box.name, "-q", "--", "sleep", "6").strip()
        await wait_until(pilot, lambda: job_id in runs.jobs, "the remote run listed", timeout=60)
        seen = set()

        def ended() -> bool:
            seen.add(runs.jobs[job_id].state.value)
            return runs.jobs[job_id].state.is_final

        await wait_until(pilot, ended, "the remote run to end", timeout=90)
        assert runs.jobs[job_id].state.value == "succeeded"
        assert "lost" not in seen
    listed = {doc["id"]: doc for doc in json.loads(_tunedeck("runs", "--json"))}
    assert (listed[job_id]["state"], listed[job_id]["host"]) == ("succeeded", remote_box.name)


def _tunedeck(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tunedeck.tui", *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
