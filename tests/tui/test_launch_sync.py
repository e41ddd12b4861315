"""The Launch screen sends what a run reads to a box apart: a big model is asked about in a
dialog (no sends nothing, no job; yes sends it), a small one goes without asking and the run names the
box's synced paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pilot_tools import EXAMPLE_DATA, Posted, wait_until
from runners.conftest import tiny_model  # noqa: F401 - fixture
from sshd_server import box_account, remote_box, remote_home, sshd  # noqa: F401
from textual.widgets import Select, Static

from tunedeck.core.jobs import JobRegistry
from tunedeck.core.jobs.store import INPUTS_DIR
from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.messages import JobSubmitted
from tunedeck.tui.screens.confirm import ConfirmScreen


def _valid(app) -> bool:
    text = str(app.screen.query_one("#launch-problems", Static).render())
    return "config is valid" in text or "valid (with warnings)" in text


async def _form_on_box(pilot, app, model: Path, output: str):
    await pilot.press("4")
    await wait_until(pilot, lambda: app.current_mode == "launch", "launch screen")
    screen = app.screen
    await wait_until(pilot, lambda: "box" in screen.choices["hosts"], "the box listed")
    screen.query_one("#train-host", Select).value = "box"
    values = {
        "dataset": "demo_alpaca",
        "dataset_dir": str(EXAMPLE_DATA),
        "model_name_or_path": str(model),
        "cutoff_len": "64",
        "max_steps": "1",
        "max_samples": "8",
        "output_dir": output,
    }
    for key, value in values.items():
        screen.query_one(f"#train-{key}").value = value
    await wait_until(pilot, lambda: _valid(app), "a valid config")
    return screen


def _jobs() -> list:
    registry = JobRegistry()
    try:
        return registry.list()
    finally:
        registry.close()


BIG = (1 << 30) + 1  # bytes: over the size that asks before sending


def _big_model(tmp_path: Path) -> Path:
    model = tmp_path / "bigmodel"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with open(model / "weights.bin", "wb") as handle:
        handle.truncate(BIG)  # sparse
    return model


async def _submit_and_see_the_question(pilot, app, model: Path, output: str) -> None:
    await _form_on_box(pilot, app, model, output)
    await pilot.press("ctrl+s")
    await wait_until(
        pilot,
        lambda: isinstance(app.screen, ConfirmScreen) and app.screen.query(Static),
        "the question shown",
        timeout=60,
    )


@pytest.mark.slow
async def test_a_big_model_is_asked_about_and_no_makes_no_job(remote_box, tmp_path):  # noqa: F811
    model = _big_model(tmp_path)
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(140, 45)) as pilot:
        await _submit_and_see_the_question(pilot, app, model, "out/big")
        await wait_until(pilot, lambda: getattr(app.focused, "id", None) == "no", "no focused")
        question = str(app.screen.query(Static).first().render())
        assert f"send the model {model} (1.1 GB) to box?" in question
        await pilot.press("n")
        await wait_until(
            pilot,
            lambda: any("not sent" in str(n.message) for n in app._notifications),
            "the refusal",
            timeout=60,
        )
    assert _jobs() == []


@pytest.mark.slow
async def test_a_big_model_is_sent_on_yes_and_the_run_names_its_copy(remote_box, tmp_path):  # noqa: F811
    model = _big_model(tmp_path)
    posted = Posted()
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(140, 45), message_hook=posted) as pilot:
        await _submit_and_see_the_question(pilot, app, model, "out/big-yes")
        await pilot.press("y")
        await wait_until(pilot, lambda: posted.of(JobSubmitted), "the job submitted", timeout=180)
    (job,) = [j for j in _jobs() if j.id == posted.last(JobSubmitted).job_id]
    settings = dict(item.split("=", 1) for item in job.argv[4:])
    copy = Path(json.loads(settings["model_name_or_path"]))
    assert copy.is_relative_to(Path(remote_box.workdir) / INPUTS_DIR)
    assert (copy / "weights.bin").stat().st_size == BIG


@pytest.mark.slow
async def test_a_small_model_and_the_data_are_sent_and_the_run_names_the_box_paths(
    remote_box,  # noqa: F811
    tiny_model,  # noqa: F811
):
    posted = Posted()
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(140, 45), message_hook=posted) as pilot:
        await _form_on_box(pilot, app, tiny_model, "out/small")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: posted.of(JobSubmitted), "the job submitted", timeout=120)
        said = [str(n.message) for n in app._notifications]
    assert any(line.startswith("synced: ") for line in said), said
    (job,) = [j for j in _jobs() if j.id == posted.last(JobSubmitted).job_id]
    inputs = str(Path(remote_box.workdir) / INPUTS_DIR)
    settings = dict(item.split("=", 1) for item in job.argv[4:])
    assert json.loads(settings["dataset_dir"]).startswith(inputs)
    assert json.loads(settings["model_name_or_path"]).startswith(inputs)
