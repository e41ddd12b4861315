"""`tunedeck runs` with 10,000 runs: the newest 50 and a count of the rest; --all and --json list all."""

from __future__ import annotations

import json
import shutil
import time

import pytest
from jobs_helpers import cli

from tunedeck.core.jobs.model import Job, JobState
from tunedeck.core.jobs.registry import JobRegistry
from tunedeck.core.locations import state_dir

RUNS = 10_000
RECENT = 50


@pytest.fixture(scope="module")
def big_registry(tmp_path_factory):
    """A registry file of 10,000 finished runs, a minute apart, written through JobRegistry."""
    path = tmp_path_factory.mktemp("big-registry") / "jobs.db"
    registry = JobRegistry(path)
    start = time.time() - RUNS * 60
    for index in range(RUNS):
        registry.put(
            Job(
                id=f"r{index:05d}",
                name=f"sweep-{index}",
                argv=("python", "train.py", f"--seed={index}"),
                state=JobState.SUCCEEDED,
                created_at=start + index * 60,
                ended_at=start + index * 60 + 30,
                exit_code=0,
                progress=1.0,
                last_loss=0.25,
            )
        )
    registry.close()
    return path


@pytest.fixture
def ten_thousand_runs(big_registry):
    """This test's own copy of the big registry as the registry `tunedeck` reads."""
    target = state_dir() / "jobs.db"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(big_registry, target)
    return target


def _table_ids(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    assert lines[0].split()[:2] == ["ID", "NAME"]
    return [line.split()[0] for line in lines[1:] if line.strip()]


def test_runs_lists_the_newest_fifty_and_counts_the_older_ones(ten_thousand_runs):
    done = cli("runs")
    ids = _table_ids(done.stdout)
    assert ids == [f"r{index:05d}" for index in range(RUNS - RECENT, RUNS)]
    assert f"{RUNS - RECENT} older runs: --all to list them" in done.stderr


def test_runs_all_lists_every_run_oldest_first(ten_thousand_runs):
    done = cli("runs", "--all")
    assert _table_ids(done.stdout) == [f"r{index:05d}" for index in range(RUNS)]
    assert "older runs" not in done.stderr


def test_runs_limit_and_host_pick_the_newest_of_that_host(ten_thousand_runs):
    ids = _table_ids(cli("runs", "list", "--limit", "3", "--host", "local").stdout)
    assert ids == ["r09997", "r09998", "r09999"]
    assert _table_ids(cli("runs", "list", "--host", "local", "--all").stdout)[:2] == [
        "r00000",
        "r00001",
    ]
    assert "no jobs yet" in cli("runs", "list", "--host", "elsewhere").stderr


def test_runs_json_lists_every_run_unless_limited(ten_thousand_runs):
    assert len(json.loads(cli("runs", "--json").stdout)) == RUNS
    limited = json.loads(cli("runs", "--json", "--limit", "2").stdout)
    assert [doc["id"] for doc in limited] == ["r09998", "r09999"]


def test_listing_leaves_finished_rows_as_they_were(ten_thousand_runs):
    before = JobRegistry(ten_thousand_runs).list()
    cli("runs")
    assert JobRegistry(ten_thousand_runs).list() == before


def test_recent_reads_the_newest_rows_and_the_total(ten_thousand_runs):
    jobs, total = JobRegistry(ten_thousand_runs).recent(2)
    assert [job.id for job in jobs] == ["r09998", "r09999"] and total == RUNS
    assert JobRegistry(ten_thousand_runs).recent(5, host="elsewhere") == ([], 0)
