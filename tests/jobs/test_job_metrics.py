"""A job's metric points are its own: never another run's that shares its output_dir."""

from __future__ import annotations

import json
import sys

import pytest
from jobs_helpers import cli_json, wait_for

from tunedeck.core.jobs import cancel, find_job, read_metrics, submit

# Appends one trainer_log.jsonl line per step (loss = 10 * first + step), then waits if asked.
STEPS = """
import json, pathlib, sys, time
out, first, count, wait = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
out.mkdir(parents=True, exist_ok=True)
for step in range(first, first + count):
    with open(out / "trainer_log.jsonl", "a") as log:
        log.write(json.dumps({"current_steps": step, "total_steps": 10, "loss": 10.0 * first + step}) + "\\n")
print("wrote", count, flush=True)
while wait == "wait":
    time.sleep(0.1)
"""


def _steps(out, first: int, count: int, wait: bool = False, name: str = "steps"):
    argv = [sys.executable, "-c", STEPS, str(out), str(first), str(count), "wait" if wait else "-"]
    return submit(argv, name=name, kind="train", output_dir=str(out))


def _final(job_id: str):
    return wait_for(lambda: (j := find_job(job_id)).state.is_final and j, timeout=60, what="end")


def _steps_of(job) -> list[int]:
    return [p.step for p in read_metrics(job)]


def test_a_run_that_fails_before_training_shows_no_other_runs_points(tmp_path):
    out = tmp_path / "out"
    trained = _final(_steps(out, 1, 3).id)
    failed = _final(
        submit(["sh", "-c", "exit 1"], name="broken", kind="train", output_dir=str(out)).id
    )
    assert failed.state.value == "failed"
    assert _steps_of(trained) == [1, 2, 3]
    assert read_metrics(failed) == []
    assert failed.last_loss is None
    listed = {doc["id"]: doc for doc in cli_json("runs")}
    assert listed[failed.id]["last_loss"] is None


def test_a_cancelled_run_keeps_its_points_when_its_resume_appends(tmp_path):
    out = tmp_path / "out"
    first = _steps(out, 1, 3, wait=True)
    wait_for(lambda: b"wrote" in open(first.log_path, "rb").read(), what="three steps")
    assert cancel(first, grace=5).job.state.value == "cancelled"
    resumed = _final(_steps(out, 4, 2, name="resume").id)
    assert resumed.state.value == "succeeded"
    cancelled = find_job(first.id)
    assert _steps_of(cancelled) == [1, 2, 3]
    assert cancelled.last_loss == pytest.approx(13.0)
    assert _steps_of(resumed) == [
        1,
        2,
        3,
        4,
        5,
    ]  # its file: the points it resumed from, then its own
    assert [json.loads(line)["current_steps"] for line in (out / "trainer_log.jsonl").open()] == [
        1,
        2,
        3,
        4,
        5,
    ]
