"""`tunedeck runs pull`: a run's output dir brought back from a real box over the loopback sshd."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tunedeck.core.errors import JobError
from tunedeck.core.jobs import JobRegistry, find_job
from tunedeck.core.jobs.pull import PullConflictError, plan_pull, pull

REPO = Path(__file__).resolve().parents[2]

# What a training run leaves in its output dir, written on the box by the job itself.
WRITE_OUTPUT = """
set -e
mkdir -p out/checkpoint-2 out/checkpoint-4
head -c 300000 /dev/urandom > out/adapter_model.safetensors
echo '{"r": 8, "lora_alpha": 16}' > out/adapter_config.json
echo '{"model_max_length": 512}' > out/tokenizer_config.json
for step in 1 2 3 4; do echo "{\\"current_steps\\": $step, \\"loss\\": 1.$step}"; done \
  > out/trainer_log.jsonl
echo '{"state": "succeeded"}' > out/run_status.json
echo '{"train_loss": 1.2}' > out/all_results.json
head -c 5000 /dev/urandom > out/checkpoint-2/adapter_model.safetensors
head -c 5000 /dev/urandom > out/checkpoint-4/adapter_model.safetensors
echo '{"r": 8}' > out/checkpoint-4/adapter_config.json
"""
OUTPUT_FILES = {
    "adapter_model.safetensors",
    "adapter_config.json",
    "tokenizer_config.json",
    "trainer_log.jsonl",
    "run_status.json",
    "all_results.json",
}
CHECKPOINT_FILES = {
    "checkpoint-2/adapter_model.safetensors",
    "checkpoint-4/adapter_model.safetensors",
    "checkpoint-4/adapter_config.json",
}


def tunedeck(*args: str, cwd: Path = REPO, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tunedeck.tui", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def wait_final(job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        done = tunedeck("runs", "show", job_id, "--json")
        assert done.returncode == 0, done.stderr
        record = json.loads(done.stdout)
        if record["state"] in ("succeeded", "failed", "cancelled", "lost"):
            return record
        assert time.monotonic() < deadline, f"job {job_id} still {record['state']}"
        time.sleep(0.5)


def sha256_tree(root: Path) -> dict[str, str]:
    """Every file under `root` by relative path, hashed (read as root: the box's files too)."""
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in root.rglob("*")
        if path.is_file()
    }


@pytest.fixture
def finished_run(remote_box) -> dict:
    """A succeeded job on the box whose output dir holds an adapter, logs and two checkpoints."""
    started = tunedeck(
        "run", "--host", remote_box.name, "--name", "tiny-sft", "--output-dir", "out", "-q",
        "--", "sh", "-c", WRITE_OUTPUT,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    job_id = started.stdout.strip()
    record = wait_final(job_id)
    assert record["state"] == "succeeded", record
    record["host_output"] = Path(record["output_dir"])
    return record


def test_pull_brings_the_output_dir_back_byte_identical_without_checkpoints(finished_run, tmp_path):
    laptop = tmp_path / "laptop"
    laptop.mkdir()
    done = tunedeck("runs", "pull", finished_run["id"], cwd=laptop)
    assert done.returncode == 0, done.stderr

    dest = laptop / "tiny-sft"  # ./<run name>
    host = sha256_tree(finished_run["host_output"])
    assert sha256_tree(dest) == {name: host[name] for name in OUTPUT_FILES}
    assert "pulled 6 files" in done.stdout
    assert "2 checkpoint folder(s) left out" in done.stderr
    assert "pull: 6/6 files" in done.stderr  # progress on stderr

    shown = json.loads(tunedeck("runs", "show", finished_run["id"], "--json").stdout)
    assert shown["pulled_to"] == str(dest)
    shown_text = tunedeck("runs", "show", finished_run["id"]).stdout
    assert any(line.split() == ["pulled_to", str(dest)] for line in shown_text.splitlines()), (
        shown_text
    )


def test_a_second_pull_fetches_nothing(finished_run, tmp_path):
    dest = tmp_path / "results"
    first = tunedeck("runs", "pull", finished_run["id"], str(dest), "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["fetched"] == 6

    again = tunedeck("runs", "pull", finished_run["id"], str(dest), "--json")
    assert again.returncode == 0, again.stderr
    outcome = json.loads(again.stdout)
    assert (outcome["fetched"], outcome["fetched_bytes"], outcome["unchanged"]) == (0, 0, 6)
    assert "already up to date" in tunedeck("runs", "pull", finished_run["id"], str(dest)).stdout


def test_an_interrupted_pull_fetches_only_what_is_missing_or_different(finished_run, tmp_path):
    dest = tmp_path / "results"
    assert tunedeck("runs", "pull", finished_run["id"], str(dest)).returncode == 0
    (dest / "trainer_log.jsonl").unlink()  # never arrived
    stale = dest / "adapter_model.safetensors"
    stale.write_bytes(stale.read_bytes()[:1000])  # cut short, and older than the host's
    os.utime(stale, (1_000_000, 1_000_000))

    again = tunedeck("runs", "pull", finished_run["id"], str(dest), "--json")
    assert again.returncode == 0, again.stderr
    outcome = json.loads(again.stdout)
    assert (outcome["fetched"], outcome["unchanged"]) == (2, 4)
    host = sha256_tree(finished_run["host_output"])
    assert sha256_tree(dest) == {name: host[name] for name in OUTPUT_FILES}


def test_a_newer_local_file_is_not_overwritten_without_yes(finished_run, tmp_path):
    dest = tmp_path / "results"
    assert tunedeck("runs", "pull", finished_run["id"], str(dest)).returncode == 0
    edited = dest / "adapter_config.json"
    edited.write_text('{"r": 16, "edited": "here"}\n')
    os.utime(edited, (time.time() + 60, time.time() + 60))  # newer than the host's copy

    refused = tunedeck("runs", "pull", finished_run["id"], str(dest))
    assert refused.returncode == 1
    assert (
        "newer than the host's copy" in refused.stderr and "adapter_config.json" in refused.stderr
    )
    assert "--yes" in refused.stderr
    assert edited.read_text() == '{"r": 16, "edited": "here"}\n'

    replaced = tunedeck("runs", "pull", finished_run["id"], str(dest), "--yes", "--json")
    assert replaced.returncode == 0, replaced.stderr
    assert json.loads(replaced.stdout)["overwritten_newer"] == ["adapter_config.json"]
    host = sha256_tree(finished_run["host_output"])
    assert sha256_tree(dest)["adapter_config.json"] == host["adapter_config.json"]


def test_an_older_local_copy_that_differs_is_replaced_without_asking(finished_run, tmp_path):
    dest = tmp_path / "results"
    dest.mkdir()
    old = dest / "run_status.json"
    old.write_text('{"state": "running"}\n')
    os.utime(old, (1_000_000, 1_000_000))

    done = tunedeck("runs", "pull", finished_run["id"], str(dest), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["overwritten_newer"] == []
    assert old.read_text() == '{"state": "succeeded"}\n'


def test_checkpoints_adds_the_checkpoint_folders(finished_run, tmp_path):
    dest = tmp_path / "results"
    assert tunedeck("runs", "pull", finished_run["id"], str(dest)).returncode == 0
    assert not (dest / "checkpoint-2").exists()

    done = tunedeck("runs", "pull", finished_run["id"], str(dest), "--checkpoints", "--json")
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert (outcome["fetched"], outcome["unchanged"]) == (3, 6)
    assert sha256_tree(dest) == sha256_tree(finished_run["host_output"])
    assert set(sha256_tree(dest)) == OUTPUT_FILES | CHECKPOINT_FILES


def test_the_tar_stream_pulls_the_same_files_and_a_second_pull_moves_nothing(
    finished_run, tmp_path
):
    job = find_job(finished_run["id"])
    dest = tmp_path / "results"
    first = pull(plan_pull(job, dest), method="tar")
    assert (first.method, first.fetched) == ("tar", 6)
    host = sha256_tree(finished_run["host_output"])
    assert sha256_tree(dest) == {name: host[name] for name in OUTPUT_FILES}

    again = pull(plan_pull(job, dest), method="tar")
    assert (again.fetched, again.fetched_bytes, again.unchanged) == (0, 0, 6)

    (dest / "trainer_log.jsonl").unlink()
    resumed = pull(plan_pull(job, dest), method="tar")  # the stream carries only that file
    assert (resumed.fetched, resumed.unchanged) == (1, 5)
    assert (
        resumed.fetched_bytes == (finished_run["host_output"] / "trainer_log.jsonl").stat().st_size
    )
    assert sha256_tree(dest) == {name: host[name] for name in OUTPUT_FILES}


def test_a_mirror_refresh_keeps_where_the_run_was_pulled_to(finished_run, tmp_path):
    job = find_job(finished_run["id"])
    pull(plan_pull(job, tmp_path / "results"))
    listed = tunedeck("runs", "--json")  # refreshes the box's jobs into the registry
    assert listed.returncode == 0, listed.stderr
    registry = JobRegistry()
    try:
        assert registry.get(job.id).pulled_to == str(tmp_path / "results")
    finally:
        registry.close()


def test_a_local_run_is_already_here_and_copied_only_into_a_given_folder(tmp_path):
    output = tmp_path / "local-out"
    started = tunedeck(
        "run", "--name", "local-sft", "--output-dir", str(output), "-q", "--",
        "sh", "-c", f"mkdir -p {output} && echo adapter > {output}/adapter_model.safetensors",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    job_id = started.stdout.strip()
    assert wait_final(job_id)["state"] == "succeeded"

    refused = tunedeck("runs", "pull", job_id, cwd=tmp_path)
    assert refused.returncode == 1
    assert f"its output is already here: {output}" in refused.stderr

    copied = tunedeck("runs", "pull", job_id, str(tmp_path / "copy"))
    assert copied.returncode == 0, copied.stderr
    assert (tmp_path / "copy/adapter_model.safetensors").read_text() == "adapter\n"


def test_a_run_without_an_output_dir_says_there_is_nothing_to_pull(tmp_path):
    started = tunedeck("run", "-q", "--", "true")
    job_id = started.stdout.strip()
    with pytest.raises(JobError, match="has no output dir"):
        plan_pull(find_job(job_id), tmp_path / "x")


def test_pull_refuses_a_conflict_in_core_without_overwrite(finished_run, tmp_path):
    job = find_job(finished_run["id"])
    dest = tmp_path / "results"
    pull(plan_pull(job, dest))
    (dest / "trainer_log.jsonl").write_text("mine\n")
    os.utime(dest / "trainer_log.jsonl", (time.time() + 60, time.time() + 60))
    plan = plan_pull(job, dest)
    assert [c.path for c in plan.conflicts] == ["trainer_log.jsonl"]
    with pytest.raises(PullConflictError, match="trainer_log.jsonl") as refused:
        pull(plan)
    assert "--yes" in refused.value.hint
    assert (dest / "trainer_log.jsonl").read_text() == "mine\n"


def test_on_a_terminal_a_newer_local_file_is_replaced_only_after_a_yes(finished_run, tmp_path):
    dest = tmp_path / "results"
    assert tunedeck("runs", "pull", finished_run["id"], str(dest)).returncode == 0
    edited = dest / "run_status.json"
    edited.write_text("mine\n")
    os.utime(edited, (time.time() + 60, time.time() + 60))

    refused = on_a_terminal(["runs", "pull", finished_run["id"], str(dest)], "n\n")
    assert "newer than the host's copy" in refused and "Traceback" not in refused
    assert edited.read_text() == "mine\n"
    screen = on_a_terminal(["runs", "pull", finished_run["id"], str(dest)], "y\n")
    assert f"newer here and different: {edited}" in screen
    assert edited.read_text() == '{"state": "succeeded"}\n'


def on_a_terminal(args: list[str], answer: str) -> str:
    """Run the CLI on a pseudo-terminal, type `answer` at its question, return what it showed."""
    import pty

    main, child = pty.openpty()
    cli = subprocess.Popen(
        [sys.executable, "-m", "tunedeck.tui", *args],
        cwd=REPO,
        stdin=child,
        stdout=child,
        stderr=child,
        env={**os.environ, "COLUMNS": "200"},
    )
    os.close(child)
    shown = b""
    while b"[y/N]" not in shown:
        chunk = os.read(main, 4096)
        assert chunk, shown.decode(errors="replace")
        shown += chunk
    os.write(main, answer.encode())
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the child side closed: the CLI ended
            break
        if not chunk:
            break
        shown += chunk
    cli.wait(timeout=60)
    os.close(main)
    return shown.decode(errors="replace").replace("\r", "")
