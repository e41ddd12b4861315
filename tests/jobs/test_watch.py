"""Watched runs: folders written by llamafactory-cli, a plain Trainer or tunedeck, read from their
files alone (state, progress, loss, metrics), on this box, through the CLI and on a remote box."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from jobs_helpers import alive, cli, cli_json, on_host, wait_for

from tunedeck.core.errors import JobError
from tunedeck.core.jobs import JobState
from tunedeck.core.jobs.local import LocalBackend
from tunedeck.core.jobs.watched_folders import FolderScanner, watch_file


def lf_line(step: int, total: int = 10, **extra) -> str:
    """One trainer_log.jsonl line as llamafactory-cli's LogCallback writes it."""
    entry = {
        "current_steps": step,
        "total_steps": total,
        "loss": round(3.0 / step, 4),
        "lr": 1e-4,
        "epoch": step / total,
        "percentage": round(step / total * 100, 2),
        "elapsed_time": f"0:00:{step * 2:02d}",
        "remaining_time": f"0:00:{(total - step) * 2:02d}",
        **extra,
    }
    return json.dumps(entry) + "\n"


def append_lf(folder: Path, *steps: int, total: int = 10) -> None:
    with open(folder / "trainer_log.jsonl", "a") as log:
        for step in steps:
            log.write(lf_line(step, total))


def trainer_state(step: int, max_steps: int = 10, evals: bool = True) -> str:
    """A HF Trainer's trainer_state.json after `step` steps (loss each step, eval every 5)."""
    history = []
    for n in range(1, step + 1):
        history.append({"step": n, "loss": 2.0 / n, "learning_rate": 1e-4, "epoch": n / 10})
        if evals and n % 5 == 0:
            history.append({"step": n, "eval_loss": 2.5 / n, "epoch": n / 10})
    return json.dumps({"global_step": step, "max_steps": max_steps, "log_history": history})


def make_old(folder: Path, seconds: float = 3600) -> None:
    """Every file of a run folder (and the folder) last changed `seconds` ago."""
    then = time.time() - seconds
    for path in [*folder.rglob("*"), folder]:
        os.utime(path, (then, then))


def set_stale_after(seconds: float) -> None:
    watch_file().parent.mkdir(parents=True, exist_ok=True)
    watch_file().write_text(f"stale_after = {seconds}\n")


def test_a_llamafactory_run_is_running_while_its_log_grows_and_succeeds_at_100_percent(tmp_path):
    run = tmp_path / "saves" / "llama3-8b" / "lora" / "sft"
    run.mkdir(parents=True)
    backend = LocalBackend()
    job = backend.add_watched(str(run))
    assert (job.state, job.origin, job.name) == (JobState.QUEUED, "trainer", "sft")

    append_lf(run, 1, 2, 3)
    job = backend.status([job.id])[0]
    assert (job.state, job.origin) == (JobState.RUNNING, "llamafactory")
    assert job.progress == pytest.approx(0.3)
    assert job.last_loss == pytest.approx(1.0)
    assert job.started_at == pytest.approx(os.stat(run / "trainer_log.jsonl").st_mtime - 6, abs=1)
    points = backend.metrics(job)
    assert [p.step for p in points] == [1, 2, 3]
    assert points[-1].lr == pytest.approx(1e-4)

    append_lf(run, *range(4, 11))
    job = backend.status([job.id])[0]
    assert job.state == JobState.SUCCEEDED
    assert job.progress == 1.0
    assert [j["state"] for j in cli_json("runs")] == ["succeeded"]


def test_a_trainer_run_reads_its_newest_checkpoint_then_the_root_state_at_the_end(tmp_path):
    run = tmp_path / "out"
    for step in (5, 10):
        (run / f"checkpoint-{step}").mkdir(parents=True)
    (run / "checkpoint-5" / "trainer_state.json").write_text(trainer_state(5, 20))
    (run / "checkpoint-10" / "trainer_state.json").write_text(trainer_state(10, 20))
    backend = LocalBackend()
    job = backend.add_watched(str(run), name="trl-sft")
    assert (job.state, job.origin, job.progress) == (JobState.RUNNING, "trainer", 0.5)
    assert job.last_loss == pytest.approx(0.2)
    points = backend.metrics(job)
    assert [p.step for p in points] == list(range(1, 11))
    assert [p.eval_loss for p in points if p.eval_loss] == [0.5, 0.25]
    assert points[4].loss == pytest.approx(0.4)

    now = time.time()  # checkpoint-5 written 500 s ago, checkpoint-10 400 s ago: 20 s a step
    os.utime(run / "checkpoint-5" / "trainer_state.json", (now - 500, now - 500))
    os.utime(run / "checkpoint-10" / "trainer_state.json", (now - 400, now - 400))
    os.utime(run, (now, now))  # the folder changed: listed again
    job = backend.status([job.id])[0]
    assert job.started_at == pytest.approx(now - 600, abs=1)

    (run / "trainer_state.json").write_text(trainer_state(20, 20))
    job = backend.status([job.id])[0]
    assert (job.state, job.progress) == (JobState.SUCCEEDED, 1.0)
    assert len(backend.metrics(job)) == 20


def test_a_quiet_run_goes_stale_and_comes_back_when_its_log_grows(tmp_path):
    set_stale_after(300)
    run = tmp_path / "run"
    run.mkdir()
    append_lf(run, 1, 2)
    backend = LocalBackend()
    job = backend.add_watched(str(run))
    assert job.state == JobState.RUNNING
    make_old(run, 301)
    job = backend.status([job.id])[0]
    assert job.state == JobState.STALE
    assert job.message == "no change for 5 min"
    append_lf(run, 3)
    assert backend.status([job.id])[0].state == JobState.RUNNING


def test_end_files_mark_success_but_an_old_one_under_a_resumed_run_does_not(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    append_lf(run, 1, 2)
    (run / "all_results.json").write_text('{"train_loss": 1.2}')
    backend = LocalBackend()
    assert backend.add_watched(str(run)).state == JobState.SUCCEEDED

    resumed = tmp_path / "resumed"
    resumed.mkdir()
    (resumed / "train_results.json").write_text("{}")
    make_old(resumed, 7200)
    append_lf(resumed, 3, 4)  # a resume writing again, long after the old end
    assert backend.add_watched(str(resumed)).state == JobState.RUNNING


def test_a_tunedeck_run_folder_says_failed_only_through_its_status_file(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    append_lf(run, 1)
    status = {"phase": "training", "message": "step 1"}
    (run / "run_status.json").write_text(json.dumps(status))
    backend = LocalBackend()
    job = backend.add_watched(str(run))
    assert (job.origin, job.state, job.message) == (
        "tunedeck",
        JobState.RUNNING,
        "training: step 1",
    )
    (run / "run_status.json").write_text(json.dumps({"phase": "failed", "message": "CUDA OOM"}))
    job = backend.status([job.id])[0]
    assert (job.state, job.message) == (JobState.FAILED, "CUDA OOM")


@pytest.mark.slow
def test_a_known_pid_keeps_a_quiet_run_running_and_cancel_stops_it(tmp_path):
    set_stale_after(1)
    run = tmp_path / "run"
    run.mkdir()
    append_lf(run, 1)
    make_old(run)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        backend = LocalBackend()
        job = backend.add_watched(str(run), pid=sleeper.pid)
        assert job.state == JobState.RUNNING  # quiet files, but its process lives
        result = backend.cancel(job, grace=5)
        assert (result.signal, result.job.state) == ("SIGTERM", JobState.CANCELLED)
        sleeper.wait(timeout=10)
        assert not alive(sleeper.pid)
    finally:
        sleeper.kill()


@pytest.mark.slow
def test_a_known_pid_that_ends_before_the_trainer_wrote_its_end_reads_lost(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    append_lf(run, 1)
    short = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1)"])
    backend = LocalBackend()
    job = backend.add_watched(str(run), pid=short.pid)
    short.wait()
    job = backend.status([job.id])[0]
    assert job.state == JobState.LOST
    assert str(short.pid) in job.message


def test_cancel_without_a_known_process_is_refused_and_rm_forgets_but_keeps_the_folder(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    append_lf(run, 1)
    log = tmp_path / "train.log"
    log.write_text("step 1\n")
    backend = LocalBackend()
    job = backend.add_watched(str(run), log=str(log))
    with pytest.raises(JobError, match="does not know"):
        backend.cancel(job)
    done = cli("runs", "cancel", job.id, check=False)
    assert done.returncode == 1 and "--pid PID" in done.stderr
    assert cli("runs", "logs", job.id).stdout == "step 1\n"
    assert "left as it is" in cli("runs", "rm", job.id).stdout
    assert sorted(p.name for p in run.iterdir()) == ["trainer_log.jsonl"]
    assert log.read_text() == "step 1\n"
    assert cli_json("runs") == []


def test_runs_add_reports_a_bad_folder_log_or_pid_where_it_is(tmp_path):
    missing = tmp_path / "nope"
    done = cli("runs", "add", str(missing), check=False)
    assert done.returncode == 1
    assert f"no such folder: {missing}" in done.stderr and "hint:" in done.stderr
    (tmp_path / "file").write_text("x")
    assert "not a folder" in cli("runs", "add", str(tmp_path / "file"), check=False).stderr
    (tmp_path / "run").mkdir()
    bad_log = cli("runs", "add", str(tmp_path / "run"), "--log", str(missing), check=False)
    assert "--log: no such file" in bad_log.stderr
    assert (
        "--pid 999999999"
        in cli("runs", "add", str(tmp_path / "run"), "--pid", "999999999", check=False).stderr
    )
    added = cli_json("runs", "add", str(tmp_path / "run"), "--name", "later")
    assert (added["state"], added["name"]) == ("queued", "later")
    again = cli_json("runs", "add", str(tmp_path / "run"))
    assert again["id"] == added["id"]  # one record per folder


def test_runs_json_lists_a_watched_run_like_any_job(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    append_lf(run, 1, 2)
    job_id = cli("runs", "add", str(run), "--name", "lf").stdout.strip()
    [doc] = cli_json("runs")
    assert doc["id"] == job_id
    shown = {k: doc[k] for k in ("name", "state", "progress", "last_loss", "output_dir", "origin")}
    assert shown == {
        "name": "lf",
        "state": "running",
        "progress": 0.2,
        "last_loss": 1.5,
        "output_dir": str(run),
        "origin": "llamafactory",
    }


def test_a_watched_folder_adds_new_run_folders_and_lists_unchanged_folders_only_once(tmp_path):
    saves = tmp_path / "saves"
    (saves / "qwen" / "lora").mkdir(parents=True)
    cli("runs", "watch", str(saves))
    assert cli("runs", "watch").stdout.strip() == f"local:{saves}"
    assert oct(watch_file().stat().st_mode & 0o777) == "0o600"
    assert cli_json("runs") == []

    (saves / "qwen" / "lora" / "sft").mkdir()
    append_lf(saves / "qwen" / "lora" / "sft", 1)
    (saves / "llama" / "full").mkdir(parents=True)
    (saves / "llama" / "full" / "checkpoint-5").mkdir()
    (saves / "llama" / "full" / "checkpoint-5" / "trainer_state.json").write_text(trainer_state(5))
    runs = {doc["name"]: doc for doc in cli_json("runs")}
    assert sorted(runs) == ["llama/full", "qwen/lora/sft"]
    assert runs["llama/full"]["origin"] == "trainer"
    assert len(cli_json("runs")) == 2  # scanned again: nothing added twice

    cli("runs", "rm", runs["qwen/lora/sft"]["id"])
    assert [doc["name"] for doc in cli_json("runs")] == ["llama/full"]  # forgotten stays so
    cli("runs", "unwatch", str(saves))
    assert cli("runs", "watch").stdout == ""

    scanner = FolderScanner()
    assert len(scanner.scan(str(saves))) == 2
    listed = scanner.listings
    append_lf(saves / "qwen" / "lora" / "sft", 2)  # a run folder's file grows: no listing
    assert len(scanner.scan(str(saves))) == 2
    assert scanner.listings == listed
    (saves / "qwen" / "lora" / "dpo").mkdir()
    scanner.scan(str(saves))
    assert scanner.listings == listed + 2  # the changed folder and the new one


def test_runs_wait_exits_0_on_success_and_124_on_timeout(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    append_lf(run, 1)
    job_id = cli("runs", "add", str(run)).stdout.strip()
    timed_out = cli("runs", "wait", job_id, "--timeout", "0.5", check=False)
    assert timed_out.returncode == 124 and "still running" in timed_out.stdout
    end = str(run / "all_results.json")
    script = f"import time; time.sleep(1.5); open({end!r}, 'w').write('{{}}')"
    writer = subprocess.Popen([sys.executable, "-c", script])
    done = cli("runs", "wait", job_id, "--json", check=False)
    writer.wait()
    assert done.returncode == 0
    assert json.loads(done.stdout)["state"] == "succeeded"


def test_runs_wait_exits_1_when_the_run_failed(tmp_path):
    job_id = cli("run", "-q", "--", "sh", "-c", "exit 3").stdout.strip()
    done = cli("runs", "wait", job_id, check=False)
    assert done.returncode == 1
    assert done.stdout.strip() == f"{job_id} failed"


def append_on_host(host, folder: str, *steps: int) -> None:
    """Append trainer_log.jsonl lines to a folder on the host, as the box's own user."""
    lines = "".join(lf_line(step) for step in steps)
    target = shlex.quote(f"{folder}/trainer_log.jsonl")
    on_host(
        host,
        "sh",
        "-c",
        f"mkdir -p {shlex.quote(folder)} && printf '%s' {shlex.quote(lines)} >> {target}",
    )


@pytest.mark.slow
def test_a_run_on_a_remote_box_is_added_watched_and_followed_there(remote_box):
    folder = on_host(remote_box, "mktemp", "-d", "-p", remote_box.workdir).stdout.strip()
    append_on_host(remote_box, folder, 1)
    added = cli_json("runs", "add", folder, "--host", remote_box.name, "--name", "far")
    assert (added["host"], added["origin"], added["state"]) == ("box", "llamafactory", "running")
    assert added["progress"] == pytest.approx(0.1)

    append_on_host(remote_box, folder, 10)
    done = cli("runs", "wait", added["id"], "--timeout", "60", "--json")
    assert json.loads(done.stdout)["state"] == "succeeded"
    missing = cli("runs", "add", "/no/such/dir", "--host", remote_box.name, check=False)
    assert missing.returncode == 1 and "no such folder: /no/such/dir" in missing.stderr

    saves = on_host(remote_box, "mktemp", "-d", "-p", remote_box.workdir).stdout.strip()
    cli("runs", "watch", saves, "--host", remote_box.name)
    assert cli("runs", "watch").stdout.strip() == f"box:{saves}"
    append_on_host(remote_box, f"{saves}/m/sft", 1, 2)
    found = wait_for(
        lambda: [d for d in cli_json("runs") if d["name"] == "m/sft"], what="the new remote run"
    )
    assert (found[0]["host"], found[0]["progress"]) == ("box", 0.2)
