"""Comparing runs: curves aligned by step and by tokens, the config keys that differ, final
metrics, a resumed run read as one series, and a sweep named by its group id."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from tunedeck.core.errors import JobError
from tunedeck.core.jobs import JobRegistry
from tunedeck.core.jobs.compare import BY_TOKENS, NOT_KEPT, compare_runs, join_series
from tunedeck.core.jobs.metrics import MetricPoint
from tunedeck.core.jobs.model import Job, JobState
from tunedeck.core.jobs.pool import BackendPool

T0 = time.time() - 3600


def write_log(folder: Path, rows: list[dict], name: str = "trainer_log.jsonl") -> Path:
    """A trainer_log.jsonl in LLaMA-Factory's line format."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def steps(first: int, last: int, loss_at, *, tokens_per_step: int | None = None, total=None):
    rows = []
    for step in range(first, last + 1):
        row = {"current_steps": step, "total_steps": total or last, "loss": loss_at(step)}
        if tokens_per_step:
            row["total_tokens"] = step * tokens_per_step
        rows.append(row)
    return rows


def add_job(
    job_id: str,
    name: str,
    out: Path,
    *,
    config: dict | None = None,
    at: float = 0,
    ran: float = 60,
    **fields,
) -> Job:
    job = Job(
        id=job_id,
        name=name,
        argv=("tunedeck", "train"),
        kind="train",
        output_dir=str(out),
        config=yaml.safe_dump(config) if config is not None else None,
        state=fields.pop("state", JobState.SUCCEEDED),
        created_at=T0 + at,
        started_at=T0 + at + 1,
        ended_at=T0 + at + 1 + ran,
        exit_code=0,
        **fields,
    )
    registry = JobRegistry()
    try:
        return registry.add(job)
    finally:
        registry.close()


def compare(*refs: str):
    with BackendPool() as pool:
        return compare_runs(list(refs), pool)


def test_two_runs_align_by_step_and_by_tokens_and_diff_their_keys(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_log(a, steps(1, 10, lambda s: 3 - s * 0.1, tokens_per_step=512))
    write_log(b, steps(1, 20, lambda s: 3 - s * 0.05, tokens_per_step=256))
    base = {"model_name_or_path": "m", "dataset": "alpaca", "learning_rate": 1e-4}
    add_job("aaaaaa", "lr-1e-4", a, config={**base, "output_dir": "saves/a"}, ran=100)
    add_job(
        "bbbbbb",
        "lr-5e-5",
        b,
        at=10,
        ran=200,
        config={**base, "learning_rate": 5e-5, "lora_rank": 16, "output_dir": "saves/b"},
    )

    result = compare("aaa", "bbb")

    first, second = result.runs
    assert first.curve("loss")[-1] == (10.0, pytest.approx(2.0))
    assert second.curve("loss")[-1] == (20.0, pytest.approx(2.0))
    # by tokens both end at 5,120 tokens seen: the same point on the x axis
    assert first.curve("loss", BY_TOKENS)[-1][0] == second.curve("loss", BY_TOKENS)[-1][0] == 5120
    diff = dict(result.diff.rows())
    assert diff["learning_rate"] == (1e-4, 5e-5)
    assert diff["lora_rank"] == (8, 16)  # a key one run leaves out has its default
    assert diff["output_dir"] == ("saves/a", "saves/b")
    assert "dataset" not in diff and "model_name_or_path" not in diff
    assert result.diff.same >= 2
    final = second.final()
    assert (final.steps, final.tokens, final.state) == (20, 5120, "succeeded")
    assert final.last_loss == pytest.approx(2.0) and final.runtime == pytest.approx(200)
    assert result.to_dict(BY_TOKENS)["notes"] == []


def test_a_run_without_tokens_is_named_and_has_no_curve_by_tokens(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_log(a, steps(1, 5, lambda s: 2.0 / s, tokens_per_step=100))
    write_log(b, steps(1, 5, lambda s: 2.5 / s))
    add_job("aaaaaa", "with-tokens", a, config={"learning_rate": 1e-4})
    add_job("bbbbbb", "watched", b, at=5, origin="llamafactory")

    result = compare("aaaaaa", "bbbbbb")

    assert [run.label for run in result.without_tokens()] == ["watched"]
    assert result.runs[1].curve("loss", BY_TOKENS) == []
    assert len(result.runs[1].curve("loss")) == 5
    notes = result.to_dict(BY_TOKENS)["notes"]
    assert any("watched" in n and "num_input_tokens_seen" in n for n in notes)
    assert any("watched" in n and "no config kept" in n for n in notes)
    # what is known: the kept run's keys, the other's shown as not kept
    assert dict(result.diff.rows())["learning_rate"] == (1e-4, NOT_KEPT)


def test_a_resumed_run_is_one_series_and_one_run(tmp_path):
    out, other = tmp_path / "out", tmp_path / "other"
    # the first job died at step 60 (last checkpoint at 50); its log was copied when it ended
    first_log = write_log(tmp_path / "kept", steps(1, 60, lambda s: 4 - s / 50, total=100))
    # the resume kept lines up to step 50 and went on to 100, with a different loss from 51
    write_log(out, steps(1, 50, lambda s: 4 - s / 50) + steps(51, 100, lambda s: 1.0))
    write_log(other, steps(1, 100, lambda s: 2.0))
    add_job("first1", "run", out, state=JobState.FAILED, metrics_path=str(first_log), ran=600)
    add_job("second", "run", out, at=700, ran=400)
    add_job("others", "other", other, at=800)

    result = compare("first1", "others")

    run = result.runs[0]
    assert run.ids == ("first1", "second")
    loss = run.curve("loss")
    assert [x for x, _ in loss] == [float(s) for s in range(1, 101)]  # no step twice
    assert loss[55] == (56.0, 1.0)  # the resume's own value, not the dead run's
    final = run.final()
    assert final.steps == 100 and final.state == "succeeded"
    assert final.runtime == pytest.approx(1000)
    assert any("resumed 1 time" in note for note in result.notes)
    # naming both jobs of the resume is naming one run
    with pytest.raises(JobError, match="one run"):
        compare("first1", "second")


def test_a_sweep_is_compared_by_its_group_id_in_sweep_order(tmp_path):
    for index, lr in enumerate((1e-4, 2e-4, 4e-4)):
        out = tmp_path / f"m{index}"
        write_log(out, steps(1, 4, lambda s, lr=lr: 1 / (s * lr * 1e4)))
        add_job(
            f"swp00{index}",
            f"sweep-lr{index}",
            out,
            at=30 - index * 10,  # newest first
            config={"learning_rate": lr},
            group="lr-sweep",
            group_index=index,
        )
    add_job("lonely", "lonely", tmp_path / "x", at=40)

    result = compare("lr-sweep")

    assert result.group == "lr-sweep"
    assert [run.job.id for run in result.runs] == ["swp000", "swp001", "swp002"]
    assert dict(result.diff.rows())["learning_rate"] == (1e-4, 2e-4, 4e-4)
    assert [run.job.id for run in compare("lr-sw").runs] == ["swp000", "swp001", "swp002"]
    # one member named alone stands for its sweep
    assert [run.job.id for run in compare("swp001").runs] == ["swp000", "swp001", "swp002"]
    doc = result.to_dict()
    assert [r["group_index"] for r in doc["runs"]] == [0, 1, 2]
    assert doc["runs"][2]["series"]["loss"][-1] == [4.0, pytest.approx(1 / 16)]


def test_unknown_and_ambiguous_names_are_located_errors(tmp_path):
    add_job("abc111", "one", tmp_path / "one")
    add_job("abc222", "two", tmp_path / "two")
    with pytest.raises(JobError, match="no job or sweep matches 'zzz'"):
        compare("abc111", "zzz")
    with pytest.raises(JobError, match="matches several jobs"):
        compare("abc", "abc111")
    with pytest.raises(JobError, match="one run"):
        compare("abc111")


def test_an_eval_line_joins_the_training_line_of_its_step():
    points = [MetricPoint(step=1, loss=2.0, tokens=10), MetricPoint(step=2, loss=1.5, tokens=20)]
    points.append(MetricPoint(step=2, eval_loss=1.7))
    points.append(MetricPoint(step=3, loss=1.2, tokens=30))
    joined = join_series([points])
    assert [(p.step, p.loss, p.eval_loss, p.tokens) for p in joined] == [
        (1, 2.0, None, 10),
        (2, 1.5, 1.7, 20),
        (3, 1.2, None, 30),
    ]


def test_join_series_replaces_from_a_step_written_again():
    points = [MetricPoint(step=s, loss=float(s)) for s in (1, 2, 3, 4)]
    again = [MetricPoint(step=s, loss=-float(s)) for s in (3, 4, 5)]
    joined = join_series([points, again])
    assert [(p.step, p.loss) for p in joined] == [
        (1, 1.0),
        (2, 2.0),
        (3, -3.0),
        (4, -4.0),
        (5, -5.0),
    ]


# Appends four LLaMA-Factory lines with tokens seen to OUTPUT_DIR/trainer_log.jsonl, then ends.
FOUR_STEPS = """
import json, pathlib, sys
out = pathlib.Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
scale = float(sys.argv[2])
with open(out / "trainer_log.jsonl", "a") as log:
    for step in range(1, 5):
        entry = {"current_steps": step, "total_steps": 4, "loss": scale / step,
                 "total_tokens": step * 100}
        log.write(json.dumps(entry) + "\\n")
"""


@pytest.mark.slow
def test_a_run_on_a_host_over_ssh_is_compared_with_one_here(loop_host, tmp_path):
    import sys

    from jobs_helpers import wait_for

    from tunedeck.core.jobs import find_job, submit

    here = submit(
        [sys.executable, "-c", FOUR_STEPS, str(tmp_path / "here"), "2.0"],
        name="here",
        kind="train",
        output_dir=str(tmp_path / "here"),
    )
    there = submit(
        [sys.executable, "-c", FOUR_STEPS, str(tmp_path / "there"), "4.0"],
        name="there",
        kind="train",
        host=loop_host.name,
        output_dir=str(tmp_path / "there"),
    )
    with BackendPool() as pool:
        wait_for(
            lambda: all(j.state.is_final for j in pool.refresh([here, there]).jobs),
            timeout=60,
            what="both runs ended",
        )
        result = compare_runs([here.id, there.id], pool)

    local, remote = result.runs
    assert remote.job.host == loop_host.name and find_job(there.id).state.value == "succeeded"
    assert remote.curve("loss", BY_TOKENS) == [
        (100.0, 4.0),
        (200.0, 2.0),
        (300.0, 4 / 3),
        (400.0, 1.0),
    ]
    assert local.curve("loss", BY_TOKENS)[-1] == (400.0, 0.5)
    assert remote.final().steps == 4 and remote.final().tokens == 400
