"""The whole round trip to a GPU box over the loopback sshd, as a new user makes it: from a
"laptop" folder holding a data folder and a YAML, set the box up, train there (what the run reads
is sent), bring the results back byte-identical, and launch again sending no data; then the same
from the Launch and Runs screens."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pilot_tools import EXAMPLE_DATA, Posted, screen_text, wait_until
from runners.conftest import tiny_model  # noqa: F401 - fixture
from sshd_server import (  # noqa: F401 - fixtures
    box_account,
    fresh_account,
    fresh_host,
    remote_box,
    remote_home,
    sshd,
)
from textual.notifications import Notify
from textual.widgets import DataTable, Select

from tunedeck.core.jobs import JobRegistry, submit
from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.messages import JobSubmitted, PullProgressed, RunPulled
from tunedeck.tui.screens.confirm import ConfirmScreen

pytestmark = pytest.mark.slow

STEPS = 2
JOB_STARTED = re.compile(r"job (\w+) started")
NOTHING_SENT = re.compile(r"synced: 0 files, 0 B\b")
PULLED = ("adapter_model.safetensors", "trainer_log.jsonl")


def tunedeck(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tunedeck.tui", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def laptop(tmp_path, tiny_model) -> Path:  # noqa: F811 - the fixture imported above
    """A user's folder: a data folder, a local model and a YAML naming them by relative path."""
    folder = tmp_path / "laptop"
    shutil.copytree(EXAMPLE_DATA, folder / "data")
    shutil.copytree(tiny_model, folder / "models" / "tiny")
    (folder / "run.yaml").write_text(
        "model_name_or_path: models/tiny\nstage: sft\ndo_train: true\nfinetuning_type: lora\n"
        "lora_rank: 8\nlora_target: all\ndataset: demo_alpaca\ndataset_dir: data\n"
        "template: default\ncutoff_len: 64\nmax_samples: 8\noutput_dir: out/round-trip\n"
        f"max_steps: {STEPS}\nlogging_steps: 1\nsave_steps: 100\noverwrite_output_dir: true\n"
        "per_device_train_batch_size: 2\n"
    )
    return folder


def test_setup_makes_a_fresh_account_pass_hosts_check(fresh_host, laptop):  # noqa: F811
    """The base install is real: a venv on the fresh box with this tunedeck, its command kept."""
    before = tunedeck("hosts", "check", fresh_host.name, cwd=laptop)
    assert before.returncode != 0  # nobody prepared this box

    done = tunedeck("hosts", "setup", fresh_host.name, "--extras", "", "--json", cwd=laptop)
    assert done.returncode == 0, done.stderr[-3000:]
    checked = tunedeck("hosts", "check", fresh_host.name, "--json", cwd=laptop)
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert json.loads(checked.stdout)["agent"]["version"]

    again = tunedeck("hosts", "setup", fresh_host.name, "--extras", "", "--json", cwd=laptop)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout)["changed"] is False


def test_train_on_a_box_syncs_pulls_back_byte_identical_and_resends_nothing(
    remote_box,  # noqa: F811
    laptop,
):
    """The training leg runs on the box account (its venv has torch; a fresh base install has
    not): nothing of the laptop's is there before the launch."""
    first = tunedeck("train", "run.yaml", "--host", remote_box.name, cwd=laptop)
    assert first.returncode == 0, first.stderr[-3000:]
    assert re.search(r"job \w+ succeeded \(exit 0\)", first.stderr), first.stderr[-3000:]
    assert re.search(r"synced: [1-9]\d* files?, ", first.stderr), first.stderr[-3000:]
    job_id = JOB_STARTED.search(first.stderr).group(1)
    host_output = Path(_record(job_id, laptop)["output_dir"])

    pulled = tunedeck("runs", "pull", job_id, cwd=laptop)
    assert pulled.returncode == 0, pulled.stderr[-3000:]
    dest = laptop / _record(job_id, laptop)["name"]
    assert _record(job_id, laptop)["pulled_to"] == str(dest)
    for name in PULLED:  # the box's files read as root: byte for byte the same
        assert sha256(dest / name) == sha256(host_output / name), name

    second = tunedeck("train", "run.yaml", "--host", remote_box.name, cwd=laptop)
    assert second.returncode == 0, second.stderr[-3000:]
    assert NOTHING_SENT.search(second.stderr), second.stderr[-3000:]


async def test_the_round_trip_from_the_launch_and_runs_screens(
    remote_box,  # noqa: F811
    laptop,
    monkeypatch,
):
    """Launch on the box from the Launch screen (the laptop's paths are sent), follow it in
    Runs, press p: the output dir comes back byte-identical, with a notification naming where;
    the same form launched again sends no data."""
    monkeypatch.chdir(laptop)
    posted = Posted()
    app = TunedeckApp(laptop / "data")
    async with app.run_test(size=(140, 45), message_hook=posted) as pilot:
        job_id = await _launch_on_the_box(pilot, app, posted, laptop)
        assert any(re.search(r"synced: [1-9]", said) for said in _notes(posted)), _notes(posted)
        runs = await _wait_succeeded(pilot, app, job_id)
        runs.select_job(job_id)
        await wait_until(pilot, lambda: runs.selected == job_id, "the run selected")
        await pilot.press("p")
        await wait_until(pilot, lambda: pulls(posted), "the run pulled", timeout=120)
        dest = laptop / "screen-run"  # ./<run name>: the output dir's name
        assert any(f"into {dest}" in said for said in _notes(posted)), _notes(posted)

        await pilot.press("4")  # the same form, launched again into a new output dir
        await wait_until(pilot, lambda: app.current_mode == "launch", "launch screen again")
        app.screen.query_one("#train-output_dir").value = "out/screen-run-2"
        await wait_until(pilot, lambda: _checked(app.screen, "out/screen-run-2"), "checked")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: len(_submitted(posted)) == 2, "launched again", 120)
        assert any(NOTHING_SENT.search(said) for said in _notes(posted)), _notes(posted)
    job = JobRegistry().get(job_id)
    assert job.pulled_to == str(dest), job
    for name in PULLED:
        assert sha256(dest / name) == sha256(Path(job.output_dir) / name), name


def _checked(launch, output_dir: str) -> bool:
    """The Launch screen has checked the form as it is now."""
    check = launch.check
    config = getattr(check, "config", None)
    return config is not None and config.output_dir == output_dir and check.ok


def _submitted(posted: Posted) -> list[str]:
    return list(dict.fromkeys(m.job_id for m in posted.of(JobSubmitted)))


def _notes(posted: Posted) -> list[str]:
    """Every notification the app showed (a shown one expires after a few seconds)."""
    return list(dict.fromkeys(str(m.notification.message) for m in posted.of(Notify)))


async def _launch_on_the_box(pilot, app, posted, laptop: Path) -> str:
    await pilot.press("4")
    await wait_until(pilot, lambda: app.current_mode == "launch", "launch screen")
    screen = app.screen
    await wait_until(pilot, lambda: screen.choices["datasets"], "dataset choices")
    await wait_until(pilot, lambda: "box" in screen.choices["hosts"], "the box listed")
    screen.query_one("#train-host", Select).value = "box"
    values = {
        "dataset": "demo_alpaca",
        "dataset_dir": str(laptop / "data"),  # the laptop's paths: sent to the box
        "model_name_or_path": str(laptop / "models" / "tiny"),
        "cutoff_len": "64",
        "max_steps": str(STEPS),
        "logging_steps": "1",
        "save_steps": "100",
        "max_samples": "8",
        "output_dir": "out/screen-run",
    }
    for key, value in values.items():
        screen.query_one(f"#train-{key}").value = value
    await wait_until(pilot, lambda: "--host box" in screen_text(app), "the command on box")
    await pilot.press("ctrl+s")
    await wait_until(pilot, lambda: posted.of(JobSubmitted), "the job submitted", timeout=120)
    return posted.last(JobSubmitted).job_id


async def _wait_succeeded(pilot, app, job_id: str):
    await wait_until(pilot, lambda: app.current_mode == "runs", "runs screen", timeout=60)
    runs = app.screen
    table = runs.query_one("#jobs-table", DataTable)
    await wait_until(
        pilot,
        lambda: job_id in runs.jobs and runs.jobs[job_id].state.is_final,
        "the run ended",
        timeout=300,
    )
    assert runs.jobs[job_id].state.value == "succeeded", JobRegistry().get(job_id)
    await wait_until(pilot, lambda: job_id in table.rows, "the run listed")
    return runs


async def test_p_on_the_runs_screen_pulls_and_asks_before_replacing_a_newer_local_file(
    remote_box,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    """A run on the box that wrote an output dir: p brings it to ./<run name> with a progress bar
    and a notification; a local file edited since is replaced only after a yes."""
    job = submit(
        ["sh", "-c", "mkdir -p out && head -c 200000 /dev/urandom > out/adapter_model.safetensors"
         " && echo '{\"loss\": 1.0}' > out/trainer_log.jsonl"],
        name="screen-pull",
        host=remote_box.name,
        output_dir="out",
    )  # fmt: skip
    monkeypatch.chdir(tmp_path)
    posted = Posted()
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(140, 40), message_hook=posted) as pilot:
        await pilot.press("3")
        await wait_until(pilot, lambda: app.current_mode == "runs", "runs screen")
        runs = await _wait_succeeded(pilot, app, job.id)
        runs.select_job(job.id)
        await wait_until(pilot, lambda: runs.selected == job.id, "the run selected")

        await pilot.press("p")
        await wait_until(pilot, lambda: posted.of(RunPulled), "the run pulled", timeout=60)
        assert posted.of(PullProgressed), "no progress was shown"
        dest = tmp_path / "screen-pull"
        host_output = Path(JobRegistry().get(job.id).output_dir)
        for name in PULLED:
            assert sha256(dest / name) == sha256(host_output / name), name
        assert pulls(posted)[0].summary().startswith("pulled 2 files")

        edited = dest / "trainer_log.jsonl"
        edited.write_text("mine\n")
        os.utime(edited, (time.time() + 60, time.time() + 60))
        await pilot.press("p")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        assert "newer local file" in screen_text(app)
        await pilot.press("n")
        await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), "answered")
        assert edited.read_text() == "mine\n"

        await pilot.press("p")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "asked again")
        await pilot.press("y")
        await wait_until(pilot, lambda: len(pulls(posted)) == 2, "pulled again", timeout=60)
        assert pulls(posted)[-1].overwritten_newer == ("trainer_log.jsonl",)
    assert sha256(edited) == sha256(host_output / "trainer_log.jsonl")
    assert JobRegistry().get(job.id).pulled_to == str(dest)


def pulls(posted: Posted) -> list:
    """The pulls the screen reported, each once (a message is seen by every node it bubbles to)."""
    results = []
    for message in posted.of(RunPulled):
        if all(message.result is not seen for seen in results):
            results.append(message.result)
    return results


def _record(job_id: str, cwd: Path) -> dict:
    shown = tunedeck("runs", "show", job_id, "--json", cwd=cwd)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)
