"""The Launch screen: a short run on a box apart (its own account, pid namespace and venv
python), the fields a short run needs, dataset lists, and hosts added while the app runs."""

from __future__ import annotations

import asyncio
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pilot_tools import EXAMPLE_DATA, Posted, screen_text, settle_until, wait_until
from reference_venv import reference_python  # noqa: F401 - fixture
from runners.conftest import tiny_model  # noqa: F401 - fixture
from sshd_server import BOX_USER, box_account, remote_box, remote_home, sshd  # noqa: F401
from textual.widgets import DataTable, Input, Select, Static

from tunedeck.core.jobs import JobRegistry
from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.messages import JobSubmitted

STEPS = 2


def _problems(app) -> str:
    return str(app.screen.query_one("#launch-problems", Static).render())


def _valid(app) -> bool:
    return "config is valid" in _problems(app) or "valid (with warnings)" in _problems(app)


def _fill(screen, **values: str) -> None:
    for key, value in values.items():
        widget = screen.query_one(f"#train-{key}")
        widget.value = value


def tunedeck(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tunedeck.tui", *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def box_workspace(remote_box, tiny_model) -> Path:  # noqa: F811 - the fixtures imported above
    """The box's workdir with the example data and the tiny model, owned by the box account."""
    workdir = Path(remote_box.workdir)
    shutil.copytree(EXAMPLE_DATA, workdir / "data")
    shutil.copytree(tiny_model, workdir / "models" / "tiny")
    subprocess.run(["chown", "-R", f"{BOX_USER}:", str(workdir)], check=True)
    return workdir


async def _open_launch(pilot, app):
    await pilot.press("4")
    await wait_until(pilot, lambda: app.current_mode == "launch", "launch screen")
    screen = app.screen
    await wait_until(pilot, lambda: screen.choices["datasets"], "dataset choices")
    return screen


@pytest.mark.slow
async def test_a_run_launched_on_a_box_apart_uses_its_python_and_succeeds(
    remote_box,  # noqa: F811
    box_workspace,
):
    box_python = shlex.split(remote_box.command)[0]  # the venv python of its hosts.toml entry
    posted = Posted()
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(140, 45), message_hook=posted) as pilot:
        screen = await _open_launch(pilot, app)
        await wait_until(pilot, lambda: "box" in screen.choices["hosts"], "the box listed")
        screen.query_one("#train-host", Select).value = "box"
        _fill(  # the box's own paths: relative ones are in its workdir
            screen,
            dataset="demo_alpaca, demo_sharegpt",
            dataset_dir="data",
            model_name_or_path="models/tiny",
            cutoff_len="64",
            max_steps=str(STEPS),
            logging_steps="1",
            save_steps="100",
            max_samples="8",
            output_dir="out/box-run",
        )
        await wait_until(pilot, lambda: _valid(app), "a valid config")
        await wait_until(pilot, lambda: "--host box" in screen_text(app), "the command on box")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: posted.of(JobSubmitted), "the job submitted", timeout=180)
        job_id = posted.last(JobSubmitted).job_id

        job = JobRegistry().get(job_id)
        assert job.host == "box"
        assert job.argv[:4] == (box_python, "-m", "tunedeck.core.runners.train", "-")
        assert "max_steps=2" in job.argv and 'dataset="demo_alpaca,demo_sharegpt"' in job.argv
        snapshot = shlex.split(job.command_line)[2]
        assert job.command_line == shlex.join(["tunedeck", "train", snapshot, "--host", "box"])

        await wait_until(pilot, lambda: app.current_mode == "runs", "runs screen", timeout=60)
        runs = app.screen
        table = runs.query_one("#jobs-table", DataTable)
        await wait_until(
            pilot,
            lambda: job_id in runs.jobs and runs.jobs[job_id].state.is_final,
            "the run ended",
            timeout=240,
        )
        assert runs.jobs[job_id].state.value == "succeeded", JobRegistry().get(job_id)
        await wait_until(
            pilot, lambda: "succeeded" in map(str, table.get_row(job_id)), "the state shown"
        )

    listed = tunedeck("runs", "--json")
    assert listed.returncode == 0, listed.stderr
    (record,) = [r for r in json.loads(listed.stdout) if r["id"] == job_id]
    assert (record["state"], record["exit_code"]) == ("succeeded", 0)
    output = box_workspace / "out" / "box-run"
    losses = [json.loads(line).get("loss") for line in (output / "trainer_log.jsonl").open()]
    assert len([loss for loss in losses if loss is not None]) == STEPS  # one point per step


async def test_the_form_sets_steps_logging_saving_and_samples_checked_as_typed(tmp_path):
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(140, 45)) as pilot:
        screen = await _open_launch(pilot, app)
        _fill(screen, dataset="demo_alpaca", model_name_or_path=str(tmp_path))
        _fill(screen, output_dir=str(tmp_path / "out"), max_steps="abc")
        await settle_until(pilot, lambda: "max_steps" in _problems(app), "max_steps refused")
        _fill(screen, max_steps="3", logging_steps="1", save_steps="2", max_samples="5")
        await settle_until(pilot, lambda: "max_samples: 5" in screen_text(app), "YAML updated")
        text = screen_text(app)
        for line in ("max_steps: 3", "logging_steps: 1", "save_steps: 2", "max_samples: 5"):
            assert line in text
        assert "max_steps" not in _problems(app)


async def test_the_dataset_field_takes_a_comma_list_each_name_checked():
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(140, 45)) as pilot:
        screen = await _open_launch(pilot, app)
        field = screen.query_one("#train-dataset", Input)
        assert await field.suggester.get_suggestion("demo_alpaca, demo_sh") == (
            "demo_alpaca, demo_sharegpt"
        )
        field.value = "demo_alpaca, demo_sharegpt"
        await settle_until(
            pilot, lambda: "dataset: demo_alpaca,demo_sharegpt" in screen_text(app), "both names"
        )
        assert "demo_sharegpt" not in _problems(app)
        field.value = "demo_alpaca,no_such_set"
        await settle_until(pilot, lambda: "no_such_set" in _problems(app), "the unknown name")
        assert "demo_alpaca'" not in _problems(app)


async def test_a_host_added_from_a_shell_while_the_app_runs_is_offered():
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(140, 45)) as pilot:
        screen = await _open_launch(pilot, app)
        hosts = screen.query_one("#train-host", Select)
        await settle_until(pilot, lambda: screen.choices["hosts"] == ["local"], "no hosts yet")

        added = tunedeck("hosts", "add", "gpu-late", "user@gpu-late")
        assert added.returncode == 0, added.stderr
        hosts.focus()  # about to open the list: it is read again
        await settle_until(pilot, lambda: "gpu-late" in screen.choices["hosts"], "host offered")
        assert hosts.value == "local"

        assert tunedeck("hosts", "add", "gpu-later", "user@gpu-later").returncode == 0
        screen.set_focus(None)
        await pilot.press("3")
        await wait_until(pilot, lambda: app.current_mode == "runs", "runs screen")
        await pilot.press("4")
        await settle_until(pilot, lambda: "gpu-later" in screen.choices["hosts"], "host offered")
        screen.query_one("#quantize-host", Select).value = "gpu-later"


@pytest.mark.slow
async def test_a_run_from_a_base_yaml_records_the_yaml_and_the_form_as_its_command(
    tiny_model,  # noqa: F811
    tmp_path,
):
    from tunedeck.core.config import load_config

    base = tmp_path / "base.yaml"
    base.write_text(
        f"model_name_or_path: {tiny_model}\ndataset: demo_alpaca\ndataset_dir: {EXAMPLE_DATA}\n"
        f"output_dir: {tmp_path / 'out'}\ncutoff_len: 64\n"
    )
    posted = Posted()
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(140, 45), message_hook=posted) as pilot:
        screen = await _open_launch(pilot, app)
        field = screen.query_one("#train-config", Input)
        field.value = str(base)
        field.focus()
        await pilot.press("enter")
        model = screen.query_one("#train-model_name_or_path", Input)
        await wait_until(pilot, lambda: model.value == str(tiny_model), "form filled")
        _fill(screen, max_steps="1", logging_steps="1")
        await wait_until(
            pilot,
            lambda: _valid(app) and "max_steps=1" in screen_text(app),
            "a valid config on the YAML",
        )
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: posted.of(JobSubmitted), "the job submitted", timeout=180)
        job = JobRegistry().get(posted.last(JobSubmitted).job_id)

    argv = shlex.split(job.command_line)
    assert argv[:3] == ["tunedeck", "train", str(base)] and "max_steps=1" in argv
    assert "--host" not in argv
    assert load_config(base, argv[3:]).changed() == load_config(job.argv[3]).changed()
    while not (record := JobRegistry().get(job.id)).state.is_final:
        await asyncio.sleep(0.5)
    assert record.state.value == "succeeded", record.message


async def test_the_engine_field_llamafactory_clears_the_builtin_not_served_problem(
    tiny_model,  # noqa: F811
    reference_python,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    from tunedeck.core.engines.llamafactory_host import all_keys, find_install

    monkeypatch.setenv("TUNEDECK_LLAMAFACTORY", str(reference_python.parent.parent))
    all_keys(find_install())  # LLaMA-Factory's keys read: the built-in check names them
    base = tmp_path / "loraplus.yaml"
    base.write_text(
        f"model_name_or_path: {tiny_model}\ndataset: demo_alpaca\ndataset_dir: {EXAMPLE_DATA}\n"
        f"output_dir: {tmp_path / 'out'}\ntemplate: default\nloraplus_lr_ratio: 16.0\n"
    )
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(140, 45)) as pilot:
        screen = await _open_launch(pilot, app)
        field = screen.query_one("#train-config", Input)
        field.value = str(base)
        field.focus()
        await pilot.press("enter")
        engine = screen.query_one("#train-engine", Select)
        await settle_until(
            pilot, lambda: "does not serve" in _problems(app), "the built-in engine's problem"
        )
        assert engine.value == "builtin" and "loraplus_lr_ratio" in _problems(app)
        engine.value = "llamafactory"
        await wait_until(pilot, lambda: _valid(app), "valid with LLaMA-Factory", timeout=180)
        assert "does not serve" not in _problems(app)
        command = str(screen.query_one("#launch-command", Static).render())
        assert "'engine=\"llamafactory\"'" in command.replace("\n", "")  # the command names it
        assert screen.check.config.engine == "llamafactory"


async def test_the_quantize_form_runs_through_the_engine_its_field_names(
    tiny_model,  # noqa: F811
    reference_python,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    from textual.widgets import TabbedContent

    from tunedeck.core.engines.llamafactory_host import all_keys, find_install

    monkeypatch.setenv("TUNEDECK_LLAMAFACTORY", str(reference_python.parent.parent))
    all_keys(find_install())  # LLaMA-Factory's keys read once, as the check will read them
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(140, 45)) as pilot:
        screen = await _open_launch(pilot, app)
        screen.query_one("#launch-kind", TabbedContent).active = "quantize"
        screen.query_one("#quantize-model_name_or_path", Input).value = str(tiny_model)
        screen.query_one("#quantize-export_dir", Input).value = str(tmp_path / "gptq")
        engine = screen.query_one("#quantize-engine", Select)
        assert engine.value == "builtin"
        engine.value = "llamafactory"

        await wait_until(
            pilot,
            lambda: (
                getattr(screen.check, "config", None) is not None
                and screen.check.config.engine == "llamafactory"
            ),
            "the export checked for LLaMA-Factory",
            timeout=180,
        )
        await pilot.pause()
        text = screen_text(app)
        assert "tunedeck quantize" in text and "engine: llamafactory" in text  # command, YAML
