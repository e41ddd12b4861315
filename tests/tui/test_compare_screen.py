"""Runs screen: space marks runs, c compares them on the Compare screen (curves overlaid, final
metrics, config diff), escape goes back; sweeps listed together; scheduler and stale states."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from pilot_tools import EXAMPLE_DATA, screen_text, wait_until
from slurm_cluster import CLUSTER_NAME, slurm_cluster, slurm_local_host  # noqa: F401 - fixtures
from textual.widgets import DataTable

from tunedeck.core.jobs import JobRegistry
from tunedeck.core.jobs.model import Job, JobState
from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.palette import Palette
from tunedeck.tui.screens.compare import CompareScreen
from tunedeck.tui.screens.runs import RunsScreen, _job_cells
from tunedeck.tui.widgets.loss_chart import CompareChart

T0 = time.time() - 3600


def make_run(
    folder: Path,
    job_id: str,
    name: str,
    *,
    at: float,
    lr: float,
    slope: float,
    tokens: bool = True,
    **fields,
) -> Job:
    """A finished training run in the registry with its own trainer_log.jsonl."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for step in range(1, 41):
        row = {"current_steps": step, "total_steps": 40, "loss": round(3 - slope * step, 4)}
        if tokens:
            row["total_tokens"] = step * 1000
        rows.append(row)
        if step % 10 == 0:
            rows.append({"current_steps": step, "eval_loss": round(3.2 - slope * step, 4)})
    (folder / "trainer_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = {
        "model_name_or_path": "models/tiny",
        "learning_rate": lr,
        "output_dir": f"saves/{name}",
    }
    job = Job(
        id=job_id,
        name=name,
        argv=("tunedeck", "train", "cfg.yaml"),
        kind="train",
        output_dir=str(folder),
        config=yaml.safe_dump(config),
        state=JobState.SUCCEEDED,
        created_at=T0 + at,
        started_at=T0 + at,
        ended_at=T0 + at + 90,
        exit_code=0,
        progress=1.0,
        last_loss=round(3 - slope * 40, 4),
        **fields,
    )
    registry = JobRegistry()
    try:
        return registry.add(job)
    finally:
        registry.close()


@pytest.fixture
def three_runs(tmp_path) -> list[Job]:
    return [
        make_run(tmp_path / "a", "runaaa", "lr-1e-4", at=0, lr=1e-4, slope=0.05),
        make_run(tmp_path / "b", "runbbb", "lr-3e-4", at=10, lr=3e-4, slope=0.06),
        make_run(tmp_path / "c", "runccc", "watched", at=20, lr=1e-4, slope=0.04, tokens=False),
    ]


async def open_runs(pilot, count: int) -> RunsScreen:
    app = pilot.app
    await pilot.press("3")
    await wait_until(
        pilot, lambda: app.current_mode == "runs" and len(app.screen.jobs) == count, "runs listed"
    )
    return app.screen


def row_names(screen: RunsScreen) -> list[str]:
    table = screen.query_one("#jobs-table", DataTable)
    return [str(table.get_row_at(i)[1]) for i in range(table.row_count)]


async def test_marking_two_runs_and_c_compares_them_and_escape_goes_back(three_runs):
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(120, 40)) as pilot:
        runs = await open_runs(pilot, 3)
        await pilot.press("c")  # nothing marked, no sweep: it says what to do
        await pilot.pause()
        assert not isinstance(app.screen, CompareScreen)
        assert "mark two or more runs" in str([n.message for n in app._notifications])

        await pilot.press("down", "space")  # newest first: runbbb, then it moves on to runaaa
        await wait_until(pilot, lambda: runs.marked == ["runbbb"], "one run marked")
        await pilot.press("space")
        await wait_until(pilot, lambda: runs.marked == ["runbbb", "runaaa"], "two runs marked")
        assert row_names(runs) == ["watched", "● lr-3e-4", "● lr-1e-4"]
        assert "2 marked (c: compare, esc: clear)" in screen_text(app)

        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen), "compare shown")
        compare = app.screen
        await wait_until(pilot, lambda: compare.comparison is not None, "runs read")
        await pilot.pause()
        assert [r.job.id for r in compare.comparison.runs] == ["runbbb", "runaaa"]
        chart = compare.query_one(CompareChart)
        assert [label for label, _ in chart.lines] == ["lr-3e-4", "lr-1e-4"]
        assert [len(series) for _, series in chart.lines] == [40, 40]
        shown = screen_text(app)
        assert "━ lr-3e-4" in shown and "━ lr-1e-4" in shown and "40 steps" in shown
        diff = compare.query_one("#compare-diff", DataTable)
        assert [str(c) for c in diff.get_row("learning_rate")] == [
            "learning_rate",
            "0.0003",
            "0.0001",
        ]
        final = compare.query_one("#compare-final", DataTable)
        assert [str(c) for c in final.get_row("runbbb")][3:7] == [
            "succeeded",
            "40",
            "40,000",
            "0.6000",
        ]

        await pilot.press("t")  # by tokens seen
        await pilot.pause()
        assert chart.x_unit == "tokens" and "40.0k tokens" in screen_text(app)
        await pilot.press("e")  # eval_loss: four points each, at the tokens of their step
        await pilot.pause()
        assert chart.metric == "eval_loss"
        assert [series.last for _, series in chart.lines] == [(40000.0, 0.8), (40000.0, 1.2)]

        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is runs, "back on Runs")
        await pilot.press("escape")  # clears the marks
        await wait_until(pilot, lambda: runs.marked == [], "marks cleared")
        assert row_names(runs) == ["watched", "lr-3e-4", "lr-1e-4"]


async def test_a_sweep_is_listed_together_and_c_on_a_member_compares_the_sweep(tmp_path):
    # members created apart, with another run between them: listed together where the newest is
    make_run(
        tmp_path / "m0",
        "swp000",
        "sweep-lr1",
        at=0,
        lr=1e-4,
        slope=0.05,
        group="lr-sweep",
        group_index=0,
    )
    make_run(tmp_path / "x", "other1", "other", at=5, lr=1e-4, slope=0.05)
    make_run(
        tmp_path / "m1",
        "swp001",
        "sweep-lr2",
        at=10,
        lr=2e-4,
        slope=0.06,
        group="lr-sweep",
        group_index=1,
    )
    make_run(
        tmp_path / "m2",
        "swp002",
        "sweep-lr4",
        at=20,
        lr=4e-4,
        slope=0.07,
        group="lr-sweep",
        group_index=2,
    )
    make_run(tmp_path / "y", "newest", "newest", at=30, lr=1e-4, slope=0.05)
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(80, 24)) as pilot:
        runs = await open_runs(pilot, 5)
        assert row_names(runs) == [
            "newest",
            "┌ sweep-lr1 [1/3]",
            "├ sweep-lr2 [2/3]",
            "└ sweep-lr4 [3/3]",
            "other",
        ]
        shown = screen_text(app)
        assert "┌ sweep-lr1 [1/3]" in shown and "└ sweep-lr4 [3/3]" in shown  # at 80 columns

        await pilot.press("down", "down")
        await wait_until(pilot, lambda: runs.selected == "swp001", "a member selected")
        await wait_until(pilot, lambda: "sweep lr-sweep" in screen_text(app), "its sweep named")
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen), "compare shown")
        compare = app.screen
        await wait_until(pilot, lambda: compare.comparison is not None, "runs read")
        assert compare.comparison.group == "lr-sweep"
        assert [r.job.id for r in compare.comparison.runs] == ["swp000", "swp001", "swp002"]
        await pilot.pause()
        assert "sweep lr-sweep · 3 runs" in screen_text(app)

        await pilot.press("escape")
        await pilot.press("slash", *"lr-sweep", "enter")  # the filter finds a sweep by its id
        await wait_until(pilot, lambda: len(row_names(runs)) == 3, "only the sweep listed")


async def test_two_jobs_of_one_resumed_run_are_one_run_and_the_screen_says_so(tmp_path):
    make_run(tmp_path / "out", "first1", "run", at=0, lr=1e-4, slope=0.05)
    make_run(tmp_path / "out", "again2", "run", at=200, lr=1e-4, slope=0.05)  # its resume
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(120, 40)) as pilot:
        runs = await open_runs(pilot, 2)
        await pilot.press("space", "space", "c")
        await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen), "compare shown")
        await wait_until(
            pilot, lambda: "cannot compare" in screen_text(app), "the reason shown in place"
        )
        assert "names one run" in screen_text(app)
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is runs, "back on Runs")


async def test_hostile_run_names_are_shown_as_typed_on_the_compare_screen(tmp_path):
    from tunedeck.core.text import has_controls

    make_run(tmp_path / "a", "hostl1", "[red]styled", at=0, lr=1e-4, slope=0.05)
    make_run(tmp_path / "b", "hostl2", "\x1b]0;pwned\x07wipe", at=10, lr=2e-4, slope=0.05)
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_runs(pilot, 2)
        await pilot.press("space", "space", "c")
        await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen), "compare shown")
        await wait_until(pilot, lambda: app.screen.comparison is not None, "runs read")
        await pilot.pause()
        shown = screen_text(app)
        assert "━ [red]styled" in shown  # the legend: markup shown, not obeyed
        assert "\\x1b]0;pwned\\x07wipe" in shown  # the escape written out
        assert not [ch for ch in shown if ch != "\n" and has_controls(ch)]


def test_a_pending_slurm_job_shows_the_scheduler_state_and_reason_and_stale_its_colour():
    app = TunedeckApp(EXAMPLE_DATA)
    from tunedeck.tui.theming import load_themes

    themes, _ = load_themes()
    palette = Palette.of_theme(next(t for t in themes if t.name == "tunedeck-dark"))
    del app
    pending = Job(
        id="slurm1",
        name="big",
        argv=("x",),
        state=JobState.QUEUED,
        scheduler_id="1234",
        scheduler_state="PENDING",
        reason="Resources",
    )
    stale = Job(
        id="stale1",
        name="quiet",
        argv=("x",),
        state=JobState.STALE,
        progress=0.5,
        started_at=time.time() - 60,
    )
    state = _job_cells(pending, palette)[4]
    assert state.plain == "pending (Resources)"
    cells = _job_cells(stale, palette)
    assert cells[4].plain == "stale" and palette.colour("stale") in str(cells[4].style)
    assert cells[6].plain == ""  # no ETA for a run that went quiet


@pytest.mark.slow
async def test_a_held_slurm_job_shows_pending_with_slurms_reason_on_the_runs_screen(
    slurm_local_host,  # noqa: F811 - the fixture imported above
):
    from tunedeck.core.jobs import get_backend
    from tunedeck.core.jobs.backend import JobSpec, Resources

    backend = get_backend(CLUSTER_NAME)
    spec = JobSpec(("bash", "-c", "echo never"), "held", resources=Resources(hold=True))
    job = backend.submit(spec)
    try:
        app = TunedeckApp(EXAMPLE_DATA)
        async with app.run_test(size=(120, 40)) as pilot:
            runs = await open_runs(pilot, 1)
            table = runs.query_one("#jobs-table", DataTable)
            await wait_until(
                pilot,
                lambda: str(table.get_row(job.id)[4]).startswith("pending (JobHeldUser"),
                "the scheduler's state and reason in the table",
                timeout=60,
            )
            assert "PENDING: JobHeldUser" in screen_text(app)
    finally:
        backend.cancel(job, grace=5)
        backend.close()
