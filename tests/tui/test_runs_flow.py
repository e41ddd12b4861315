"""Launch a tiny training job from the form, watch it in Runs (log, loss), cancel it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pilot_tools import EXAMPLE_DATA, screen_text, wait_until
from textual.widgets import Input, Select, Static

from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.screens.confirm import ConfirmScreen
from tunedeck.tui.widgets.log_view import LogView


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny model built offline by the real `tunedeck demo model` command."""
    target = tmp_path_factory.mktemp("tiny-model") / "tiny"
    subprocess.run(
        [sys.executable, "-m", "tunedeck.tui", "demo", "model", str(target)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return target


def _checked(screen) -> dict[str, str]:
    """The form values the Launch screen's last config check saw."""
    return screen.checked_form[1] if screen.checked_form else {}


def _problems(app) -> str:
    return str(app.screen.query_one("#launch-problems", Static).render())


@pytest.mark.slow
async def test_launch_a_tiny_job_follow_its_log_and_cancel_it(tiny_model_dir, tmp_path):
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        await wait_until(pilot, lambda: app.current_mode == "launch", "launch screen")
        screen = app.screen
        await wait_until(pilot, lambda: screen.choices["datasets"], "dataset choices")
        screen.query_one("#train-dataset", Input).value = "demo_alpaca"
        screen.query_one("#train-model_name_or_path", Input).value = str(tiny_model_dir)
        screen.query_one("#train-num_train_epochs", Input).value = "500"
        screen.query_one("#train-cutoff_len", Input).value = "64"
        screen.query_one("#train-output_dir", Input).value = str(tmp_path / "out")
        await wait_until(
            pilot,
            lambda: (
                "config is valid" in _problems(app) or "valid (with warnings)" in _problems(app)
            ),
            "a valid config",
        )
        assert "tunedeck train" in screen_text(app)
        assert "model_name_or_path:" in screen_text(app)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: app.current_mode == "runs", "runs screen", timeout=60)
        runs = app.screen
        await wait_until(pilot, lambda: runs.selected is not None, "the job selected")
        job_id = runs.selected
        assert job_id in screen_text(app)
        log = runs.query_one(LogView)
        await wait_until(pilot, lambda: bool(log.window), "log lines followed", timeout=120)
        await wait_until(
            pilot, lambda: runs.jobs[job_id].state.value == "running", "job running", timeout=60
        )
        runs.query_one("#jobs-table").focus()
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "confirmation")
        await pilot.press("y")
        await wait_until(
            pilot, lambda: runs.jobs[job_id].state.value == "cancelled", "job cancelled", timeout=90
        )
        assert "cancelled" in screen_text(app)


async def test_an_invalid_form_shows_located_problems_and_refuses_to_submit():
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        await wait_until(pilot, lambda: app.current_mode == "launch", "launch screen")
        screen = app.screen
        await wait_until(pilot, lambda: "is required" in _problems(app), "problems listed")
        screen.query_one("#train-learning_rate", Input).value = "fast"
        await wait_until(pilot, lambda: "learning_rate" in _problems(app), "bad value reported")
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
        assert app.current_mode == "launch"


async def test_quantize_form_offers_bits_and_calibration_datasets():
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        await wait_until(pilot, lambda: app.current_mode == "launch", "launch screen")
        screen = app.screen
        await wait_until(pilot, lambda: screen.choices["datasets"], "dataset choices")
        screen.query_one("#launch-kind").active = "quantize"
        screen.query_one("#quantize-export_quantization_dataset", Select).value = "demo_pretrain"
        screen.query_one("#quantize-export_dir", Input).value = "out/q"
        await wait_until(
            pilot,
            lambda: _checked(screen).get("export_quantization_dataset") == "demo_pretrain",
            "the form checked with the calibration dataset",
        )
        await pilot.pause()
        assert "export_quantization_dataset: demo_pretrain" in screen_text(app)
        assert "tunedeck quantize" in screen_text(app)
        assert "export_quantization_bit: 4" in screen_text(app)


async def test_an_existing_yaml_fills_the_form_and_is_the_base_of_the_command(tmp_path):
    config = tmp_path / "mine.yaml"
    config.write_text(
        "model_name_or_path: models/base\nstage: sft\nfinetuning_type: lora\n"
        "quantization_bit: 4\nlearning_rate: 2.0e-4\ndataset: demo_alpaca\n"
        f"dataset_dir: {EXAMPLE_DATA}\noutput_dir: out/mine\n"
    )
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        await wait_until(pilot, lambda: app.current_mode == "launch", "launch screen")
        screen = app.screen
        await wait_until(pilot, lambda: screen.choices["datasets"], "dataset choices")
        base = screen.query_one("#train-config", Input)
        base.value = str(config)
        base.focus()
        await pilot.press("enter")
        model = screen.query_one("#train-model_name_or_path", Input)
        await wait_until(pilot, lambda: model.value == "models/base", "form filled")
        assert screen.query_one("#train-method", Select).value == "qlora4"
        assert screen.query_one("#train-learning_rate", Input).value == "0.0002"
        command = screen.query_one("#launch-command", Static)
        # the form fills field by field; the command settles once every field has its value
        await wait_until(
            pilot,
            lambda: (
                f"tunedeck train {config}" in str(command.render())
                and "learning_rate=0.0002" in str(command.render())
            ),
            "command built on the YAML",
        )
        assert "learning_rate=0.0002" in str(command.render())


async def test_a_run_that_ends_is_announced_on_any_screen():
    from tunedeck.core.jobs import submit
    from tunedeck.tui.messages import JobStateChanged

    seen: list[JobStateChanged] = []

    def hook(message) -> None:
        if isinstance(message, JobStateChanged):
            seen.append(message)

    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(120, 40), message_hook=hook) as pilot:
        await wait_until(pilot, lambda: app._job_states is not None, "job watcher started")
        job = submit([sys.executable, "-c", "print('hello')"], name="quick-one")
        await wait_until(
            pilot,
            lambda: any(m.job_id == job.id for m in seen),
            "the end of the run noticed",
            timeout=60,
        )
        assert seen[-1].state == "succeeded" and seen[-1].name == "quick-one"
        assert app.current_mode == "datasets"


async def test_y_copies_the_command_a_user_can_rerun_else_the_jobs_argv():
    from tunedeck.core.jobs import submit
    from tunedeck.tui.messages import SelectJob

    rerunnable = "tunedeck train examples/workspace/configs/tiny_lora_sft.yaml max_steps=5"
    internal = [sys.executable, "-m", "tunedeck.core.runners.train", "/tmp/snap shot.yaml"]
    trained = submit(internal, name="train", kind="train", command_line=rerunnable)
    plain = submit(["echo", "two words"], name="echo")
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3")
        await wait_until(pilot, lambda: app.current_mode == "runs", "runs screen")
        runs = app.screen
        for job, expected in ((trained, rerunnable), (plain, "echo 'two words'")):
            runs.post_message(SelectJob(job.id))
            await wait_until(pilot, lambda job=job: runs.selected == job.id, f"{job.name} selected")
            runs.query_one("#jobs-table").focus()
            await pilot.press("y")
            assert app.clipboard == expected
