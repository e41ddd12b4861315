"""Checks before launch on the Launch screen: the fit panel (verdicts, advice, no GPU known), the
template warning, and the datasets' check (dropped and truncated rows, ctrl+o to Preview)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from pilot_tools import EXAMPLE_DATA, settle_until, wait_until
from sshd_server import remote_home, sshd  # noqa: F401 - fixtures
from textual.widgets import Input, Select, Static

from tunedeck.tui.app import TunedeckApp

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
TINY_MODEL = REPO / "examples" / "workspace" / "models" / "tiny"


@pytest.fixture(autouse=True)
def no_gpu_here(monkeypatch):
    """This machine's GPUs are none (no nvidia-smi on PATH), whatever machine runs the test."""
    kept = [
        d for d in os.environ["PATH"].split(os.pathsep) if not (Path(d) / "nvidia-smi").exists()
    ]
    monkeypatch.setenv("PATH", os.pathsep.join(kept))


def model_folder(tmp_path: Path, config: str, tokenizer: str | None = None) -> Path:
    folder = tmp_path / f"model-{config}-{tokenizer}"
    if tokenizer:
        shutil.copytree(FIXTURES / tokenizer, folder)
    else:
        folder.mkdir()
    shutil.copy(FIXTURES / "model_configs" / f"{config}.json", folder / "config.json")
    return folder


def panel(app, name: str) -> str:
    return str(app.screen.query_one(f"#launch-{name}", Static).render())


async def open_launch(pilot, app, tmp_path: Path, **values: str):
    await pilot.press("4")
    await wait_until(pilot, lambda: app.current_mode == "launch", "launch screen")
    screen = app.screen
    await wait_until(pilot, lambda: screen.choices["datasets"], "dataset choices")
    fill(screen, output_dir=str(tmp_path / "out"), **values)
    return screen


def fill(screen, **values: str) -> None:
    for key, value in values.items():
        screen.query_one(f"#train-{key}").value = value


async def test_a_small_model_fits_the_gpu_given(tmp_path):
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(140, 45)) as pilot:
        screen = await open_launch(
            pilot, app, tmp_path, dataset="demo_alpaca", model_name_or_path=str(TINY_MODEL)
        )
        fill(screen, gpu_mem="24GiB")
        await settle_until(pilot, lambda: "--gpu-mem 24GiB" in panel(app, "fit"), "fit on 24GiB")
        text = panel(app, "fit")
        assert "fits         --gpu-mem 24GiB (24.00 GiB)" in text
        assert "peak per device" in text and "to fit" not in text
        assert screen.fit.fits is True


async def test_a_model_too_big_for_the_gpu_says_what_to_change(tmp_path):
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(140, 45)) as pilot:
        screen = await open_launch(
            pilot,
            app,
            tmp_path,
            dataset="demo_alpaca",
            model_name_or_path=str(model_folder(tmp_path, "llama-3-8b")),
            gpu_mem="16GiB",
        )
        await settle_until(pilot, lambda: "does not fit" in panel(app, "fit"), "a verdict")
        text = panel(app, "fit")
        report = screen.fit
        assert report.fits is False and report.suggestions
        assert "does not fit --gpu-mem 16GiB (16.00 GiB)" in text
        assert "to fit, change one of:" in text
        first = report.suggestions[0]
        assert first.fits and first.change in text  # the same words `config fit` prints
        assert f"{first.change}: {first.estimate.peak_bytes / 1024**3:.2f} GiB, fits" in text
        assert "quantization_bit=4" in text


async def test_no_gpu_known_for_the_host_is_said_with_the_estimate(tmp_path):
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(140, 45)) as pilot:
        screen = await open_launch(
            pilot, app, tmp_path, dataset="demo_alpaca", model_name_or_path=str(TINY_MODEL)
        )
        await settle_until(pilot, lambda: screen.fit is not None, "a fit")
        text = panel(app, "fit")
        assert "no GPU known for this machine: fill GPU mem (e.g. 80GiB)" in text
        assert "peak per device" in text and screen.fit.fits is None


async def test_a_template_that_differs_from_the_chat_template_is_warned_of(tmp_path):
    model = model_folder(tmp_path, "tiny-llama", "tokenizer_llama3")
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(140, 45)) as pilot:
        screen = await open_launch(
            pilot, app, tmp_path, dataset="demo_alpaca", model_name_or_path=str(model)
        )
        screen.query_one("#train-template", Select).value = "default"

        def problems() -> str:
            return panel(app, "problems")

        await settle_until(pilot, lambda: "differs" in problems(), "the template warning")
        assert "! template: template 'default' differs from the tokenizer's chat_template" in (
            problems()
        )
        assert "hint: use template: llama3" in problems()
        assert "valid (with warnings)" in problems()  # a warning: submitting stays possible
        screen.query_one("#train-template", Select).value = "llama3"
        await settle_until(pilot, lambda: "config is valid" in problems(), "the warning gone")


async def test_truncated_rows_are_counted_and_ctrl_o_opens_the_first_in_preview(tmp_path):
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(140, 45)) as pilot:
        screen = await open_launch(
            pilot,
            app,
            tmp_path,
            dataset="demo_alpaca",
            model_name_or_path=str(TINY_MODEL),
            cutoff_len="40",
        )
        await settle_until(pilot, lambda: "truncated at 40" in panel(app, "data"), "counts")
        check = screen.data_check
        [alpaca] = check.datasets
        assert (alpaca.rows, alpaca.dropped) == (32, 0) and alpaca.truncated > 0
        text = panel(app, "data")
        assert f"demo_alpaca: 32 rows, 0 dropped, {alpaca.truncated} truncated at 40" in text
        assert f"ctrl+o opens sample {alpaca.first_truncated + 1} (truncated)" in text
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: app.current_mode == "preview", "preview")
        preview = app.screen
        status = preview.query_one("#preview-status", Static)
        await wait_until(
            pilot, lambda: "tokens / cutoff 40" in str(status.render()), "the row", timeout=120
        )
        assert preview.index == alpaca.first_truncated
        assert f"sample {alpaca.first_truncated + 1}/32" in str(status.render())
        assert preview.query_one("#preview-tokenizer", Input).value == str(TINY_MODEL)
        assert "cut " in str(status.render())  # the row is truncated, as Launch said


def data_dir_with_a_bad_row(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    rows = [{"instruction": f"say {n}", "input": "", "output": f"{n}"} for n in range(4)]
    lines = [json.dumps(row) for row in rows]
    lines.insert(2, '{"instruction": "broken"')  # not JSON: validation drops it
    (folder / "rows.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "dataset_info.json").write_text(json.dumps({"rows": {"file_name": "rows.jsonl"}}))
    return folder


async def test_dropped_rows_are_counted_and_ctrl_o_opens_the_first_dropped(tmp_path):
    data = data_dir_with_a_bad_row(tmp_path)
    app = TunedeckApp(data)
    async with app.run_test(size=(140, 45)) as pilot:
        screen = await open_launch(
            pilot, app, tmp_path, dataset="rows", model_name_or_path=str(TINY_MODEL)
        )
        await settle_until(pilot, lambda: "1 dropped" in panel(app, "data"), "the dropped row")
        [rows] = screen.data_check.datasets
        assert (rows.rows, rows.dropped, rows.first_dropped) == (5, 1, 2)
        assert rows.truncated == 0
        assert "ctrl+o opens sample 3 (dropped) of rows in Preview" in panel(app, "data")
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: app.current_mode == "preview", "preview")
        await wait_until(pilot, lambda: app.screen.index == 2, "row 2 asked for", timeout=60)
        assert app.screen.query_one("#preview-dataset", Select).value == "rows"


async def test_a_base_yaml_that_is_not_there_is_said_and_the_app_goes_on(tmp_path):
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(140, 45)) as pilot:
        await open_launch(pilot, app, tmp_path, config=str(tmp_path / "missing.yaml"))
        await settle_until(
            pilot, lambda: "config file not found" in panel(app, "problems"), "the error shown"
        )
        assert app.is_running and panel(app, "fit") == ""


FAKE_GPUS = (
    "0, NVIDIA A10G, GPU-a10g, 512, 23028, 0\n1, NVIDIA H100 80GB HBM3, GPU-h100, 0, 81559, 0\n"
)


@pytest.fixture
def gpu_host(sshd, remote_home, tmp_path_factory):  # noqa: F811 - the fixtures imported above
    """hosts.toml entry 'gpubox': this machine over ssh, whose nvidia-smi reports two GPUs."""
    import sys

    from sshd_server import HOST_NAME

    from tunedeck.core.jobs.hosts import Host, add_host
    from tunedeck.core.jobs.ssh import stop_master

    bin_dir = tmp_path_factory.mktemp("gpu-bin")
    script = bin_dir / "nvidia-smi"
    script.write_text('#!/bin/sh\ncase "$1" in --query-gpu=*) printf \'%s\' "$GPUS" ;; esac\n')
    script.chmod(0o755)
    host = add_host(
        Host(
            name="gpubox",
            target=HOST_NAME,
            workdir=str(tmp_path_factory.mktemp("gpu-work")),
            command=f"{sys.executable} -m tunedeck.tui",
            env={
                "TUNEDECK_HOME": str(remote_home),
                "PATH": f"{bin_dir}:{os.environ['PATH']}",
                "GPUS": FAKE_GPUS,
            },
            ssh_options=("-F", str(sshd["config"])),
        )
    )
    yield host
    stop_master(host)


@pytest.mark.slow
async def test_the_fit_judges_each_gpu_the_hosts_probe_reports(tmp_path, gpu_host):
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(140, 45)) as pilot:
        screen = await open_launch(
            pilot,
            app,
            tmp_path,
            dataset="demo_alpaca",
            model_name_or_path=str(model_folder(tmp_path, "llama-3-8b")),
        )
        await wait_until(pilot, lambda: "gpubox" in screen.choices["hosts"], "the host listed")
        screen.query_one("#train-host", Select).value = "gpubox"
        await settle_until(pilot, lambda: "H100" in panel(app, "fit"), "the host's GPUs judged")
        text = panel(app, "fit")
        assert "does not fit GPU 0: NVIDIA A10G (22.49 GiB, 0.50 GiB in use now)" in text
        assert "fits         GPU 1: NVIDIA H100 80GB HBM3 (79.65 GiB)" in text
        assert "to fit, change one of:" in text  # for the smaller GPU
        assert screen.fit.gpu_source == "host gpubox" and screen.fit.plan.world_size == 2


@pytest.mark.slow
async def test_a_run_with_truncated_rows_can_still_be_submitted_and_says_so(tmp_path):
    from pilot_tools import Posted
    from textual.notifications import Notify

    from tunedeck.core.jobs import JobRegistry, cancel
    from tunedeck.tui.messages import JobSubmitted

    posted = Posted()
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(140, 45), message_hook=posted) as pilot:
        screen = await open_launch(
            pilot,
            app,
            tmp_path,
            dataset="demo_alpaca",
            model_name_or_path=str(TINY_MODEL),
            cutoff_len="40",
            max_steps="1",
        )
        await settle_until(pilot, lambda: "truncated at 40" in panel(app, "data"), "counts")
        truncated = screen.data_check.truncated
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: posted.of(JobSubmitted), "the job submitted", timeout=120)
        said = [str(m.notification.message) for m in posted.of(Notify)]
        assert any(f"({truncated} rows truncated at cutoff_len 40)" in line for line in said)
        job = JobRegistry().get(posted.last(JobSubmitted).job_id)
    assert job is not None and job.host == "local"
    cancel(job)  # the run itself is not what this test is about


async def test_a_typo_hides_the_checks_and_fixing_it_shows_them_again_without_a_rerun(tmp_path):
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(140, 45)) as pilot:
        screen = await open_launch(
            pilot,
            app,
            tmp_path,
            dataset="demo_alpaca",
            model_name_or_path=str(TINY_MODEL),
            cutoff_len="40",
        )
        await settle_until(pilot, lambda: "truncated at 40" in panel(app, "data"), "counts")
        found = screen.data_check
        fill(screen, cutoff_len="forty")
        await settle_until(pilot, lambda: "cutoff_len" in panel(app, "problems"), "the typo")
        assert panel(app, "data") == "" and panel(app, "fit") == ""
        fill(screen, cutoff_len="40")
        await settle_until(pilot, lambda: "truncated at 40" in panel(app, "data"), "counts back")
        assert screen.data_check is found  # the same result: the check did not run again
