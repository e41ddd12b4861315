"""`tunedeck runs resume ID` (the Runs screen's R): a finished job starts again; a watched run
or an unfinished job is refused with its reason and nothing is started."""

from __future__ import annotations

import json

from jobs_helpers import cli, cli_json, wait_for


def _finished_job(tmp_path) -> dict:
    done = cli("run", "--json", "--name", "echo", "--", "sh", "-c", "echo hello")
    job = json.loads(done.stdout)
    wait_for(lambda: cli_json("runs", "show", job["id"])["state"] == "succeeded", what="finish")
    return job


def test_a_finished_job_starts_again_with_its_command(tmp_path):
    first = _finished_job(tmp_path)
    again = cli_json("runs", "resume", first["id"])
    assert again["id"] != first["id"]
    assert again["argv"] == first["argv"] and again["name"] == "echo"
    wait_for(lambda: cli_json("runs", "show", again["id"])["state"] == "succeeded", what="rerun")


def test_a_watched_run_is_refused_and_nothing_starts(tmp_path):
    folder = tmp_path / "saves" / "lf-run"
    folder.mkdir(parents=True)
    (folder / "trainer_log.jsonl").write_text(
        '{"current_steps": 1, "total_steps": 4, "loss": 2.0}\n'
    )
    watched = cli_json("runs", "add", str(folder))
    before = len(cli_json("runs", "list", "--all"))
    done = cli("runs", "resume", watched["id"], check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "watched run" in done.stderr and "does not know the command" in done.stderr
    assert len(cli_json("runs", "list", "--all")) == before
