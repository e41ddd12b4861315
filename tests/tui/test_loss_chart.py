"""The loss chart: min/max downsampling is exact per column, both series are drawn, and the
Runs screen charts the selected run's own points."""

from __future__ import annotations

import math
import random
import sys
import time

from hypothesis import given, settings
from hypothesis import strategies as st
from pilot_tools import EXAMPLE_DATA, Posted, wait_until
from textual.widgets import DataTable

from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.messages import MetricsLoaded, SelectJob
from tunedeck.tui.widgets.loss_chart import BRAILLE_BASE, LossChart, draw_chart
from tunedeck.tui.widgets.series import MinMaxSeries


def _brute_force(points, x_min, x_max, columns):
    out = [None] * columns
    scale = (columns - 1) / ((x_max - x_min) or 1.0)
    for x, y in points:
        column = int((x - x_min) * scale + 0.5)
        cell = out[column]
        out[column] = (y, y) if cell is None else (min(cell[0], y), max(cell[1], y))
    return out


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=400),
    columns=st.integers(1, 120),
    bulk=st.booleans(),
)
def test_buckets_hold_every_point_once_whatever_the_level(values, columns, bulk):
    points = [(float(step), value) for step, value in enumerate(values)]
    series = MinMaxSeries(points) if bulk else MinMaxSeries()
    if not bulk:
        for x, y in points:
            series.append(x, y)
    x_min, x_max = series.x_range()
    buckets = series.buckets(x_min, x_max, columns)
    # coarse levels group pairs of points, so a pair may land one column off; the extremes
    # over the whole series and the count of points are what must never change
    flat = [v for b in buckets if b for v in b]
    assert min(flat) == min(values) and max(flat) == max(values)
    if len(values) <= 4 * columns:  # level 0 is used: exactly the brute-force answer
        assert buckets == _brute_force(points, x_min, x_max, columns)


def test_non_finite_losses_are_skipped():
    series = MinMaxSeries([(0, 1.0), (1, math.nan), (2, math.inf), (3, 2.0)])
    assert len(series) == 2


def test_a_million_points_draw_both_series_in_the_given_size():
    rng = random.Random(0)
    loss = MinMaxSeries((s, 3 * math.exp(-s / 2e5) + rng.random() * 0.1) for s in range(1_000_000))
    evals = MinMaxSeries((s, 3 * math.exp(-s / 2e5) + 0.4) for s in range(0, 1_000_000, 50_000))
    rows = draw_chart(loss, evals, 100, 20, ("cyan", "yellow", "white"))
    assert len(rows) == 20
    assert all(row.cell_len <= 100 for row in rows)
    plot = "".join(row.plain for row in rows[1:-1])
    assert any(BRAILLE_BASE < ord(ch) <= BRAILLE_BASE + 0xFF for ch in plot)
    styles = {span.style for row in rows[1:-1] for span in row.spans}
    assert "cyan" in styles and "yellow" in styles
    assert "999,999 steps" in rows[-1].plain
    assert "eval_loss" in rows[0].plain


def test_an_empty_chart_says_so():
    rows = draw_chart(MinMaxSeries(), MinMaxSeries(), 40, 8)
    assert "no loss values yet" in rows[-1].plain


async def test_the_chart_shows_the_selected_runs_own_points_not_its_output_dirs(tmp_path):
    out = tmp_path / "out"
    trained = _run_to_end([sys.executable, "-c", STEPS, str(out)], "trained", out)
    failed = _run_to_end(["sh", "-c", "echo 'no model'; exit 1"], "failed", out)
    posted = Posted()
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(140, 40), message_hook=posted) as pilot:
        await pilot.press("3")
        await wait_until(pilot, lambda: app.current_mode == "runs", "runs screen")
        runs = app.screen
        chart = runs.query_one(LossChart)
        for turn, (job, steps) in enumerate(((failed, 0), (trained, 3), (failed, 0))):
            before = 0  # the newest run (the failed one) is selected when the screen opens
            if turn:
                before = len(posted.of(MetricsLoaded))
                runs.post_message(SelectJob(job.id))
            await wait_until(
                pilot,
                lambda job=job, before=before: any(
                    m.job_id == job.id for m in posted.of(MetricsLoaded)[before:]
                ),
                f"the points of {job.name} loaded",
            )
            await pilot.pause()
            assert runs.selected == job.id
            assert len(chart.loss) == steps
            assert _table_loss(runs, job.id) == ("" if steps == 0 else "0.7500")


# Writes three steps to OUTPUT_DIR/trainer_log.jsonl (loss 3/step) and succeeds.
STEPS = """
import json, pathlib, sys
out = pathlib.Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
with open(out / "trainer_log.jsonl", "a") as log:
    for step, loss in ((1, 2.0), (2, 1.0), (3, 0.75)):
        log.write(json.dumps({"current_steps": step, "total_steps": 3, "loss": loss}) + "\\n")
"""


def _run_to_end(argv, name, out):
    from tunedeck.core.jobs import find_job, submit

    job = submit(argv, name=name, kind="train", output_dir=str(out))
    deadline = time.monotonic() + 60
    while not find_job(job.id).state.is_final:
        assert time.monotonic() < deadline, f"{name} never ended"
        time.sleep(0.05)
    return find_job(job.id)


def _table_loss(runs, job_id: str) -> str:
    table = runs.query_one("#jobs-table", DataTable)
    return str(table.get_row(job_id)[-1])
