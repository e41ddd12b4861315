"""A truncated, garbage or empty registry: a located error naming `tunedeck doctor` (never a
traceback), read-only commands that do not need it still work, and doctor --repair salvages."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from jobs_helpers import cli

from tunedeck.core.jobs.model import Job, JobState
from tunedeck.core.jobs.registry import JobRegistry
from tunedeck.core.locations import state_dir

JOBS = 300


def _registry_with_jobs() -> Path:
    registry = JobRegistry()
    for n in range(JOBS):
        registry.add(
            Job(
                id=f"j{n:05d}",
                name=f"run {n}",
                argv=("true", "x" * 200),
                state=JobState.SUCCEEDED,
                created_at=time.time() + n,
            )
        )
    registry.close()
    path = state_dir() / "jobs.db"
    assert not path.with_name("jobs.db-wal").exists()  # checkpointed: every row is in the file
    return path


def _truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size * 6 // 10)


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not a database \x00\xff" * 500)


def _empty(path: Path) -> None:
    path.write_bytes(b"")


DAMAGES = {"truncated": _truncate, "garbage": _garbage, "empty": _empty}


@pytest.fixture(params=sorted(DAMAGES))
def damaged(request) -> Path:
    path = _registry_with_jobs()
    DAMAGES[request.param](path)
    return path


def test_every_registry_command_says_damaged_and_names_doctor(damaged):
    for args in (("runs",), ("runs", "--json"), ("runs", "show", "j00001"), ("run", "--", "true")):
        done = cli(*args, check=False)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr and "DatabaseError" not in done.stderr
        assert "damaged" in done.stderr and "tunedeck doctor" in done.stderr, done.stderr
        assert str(damaged) in done.stderr.replace("\n", ""), done.stderr


def test_commands_without_the_registry_still_work(damaged, tmp_path):
    assert cli("hosts").returncode == 0
    assert cli("hosts", "add", "gpu", "me@gpu").returncode == 0
    (tmp_path / "dataset_info.json").write_text('{"d": {"file_name": "d.json"}}')
    (tmp_path / "d.json").write_text('[{"instruction": "a", "input": "", "output": "b"}]')
    assert cli("data", "validate", str(tmp_path)).returncode == 0
    config = tmp_path / "c.yaml"
    config.write_text("stage: sft\n")
    done = cli("config", "check", str(config), check=False)
    assert "damaged" not in done.stderr and "Traceback" not in done.stderr


def test_doctor_reports_the_damage_as_json(damaged):
    done = cli("doctor", "--json", check=False)
    assert done.returncode == 1
    report = json.loads(done.stdout)
    registry = next(c for c in report["checks"] if c["name"] == "registry")
    assert not registry["ok"] and "damaged" in registry["detail"]
    assert "--repair" in registry["fix"]


def test_doctor_repair_keeps_a_copy_salvages_and_starts_clean(damaged, request):
    before = damaged.read_bytes()
    done = cli("doctor", "--repair", "--json")
    repair = json.loads(done.stdout)["repair"]
    assert Path(repair["backup"]).read_bytes() == before
    assert Path(repair["backup"]).parent == damaged.parent
    jobs = json.loads(cli("runs", "--json").stdout)
    assert len(jobs) == repair["salvaged"]
    kind = request.node.callspec.params["damaged"]
    if kind == "truncated":
        assert 0 < repair["salvaged"] < JOBS
    for job in jobs:
        assert job["argv"] == ["true", "x" * 200] and job["name"] == f"run {int(job['id'][1:])}"
    assert cli("run", "-q", "--", "true").returncode == 0
    assert json.loads(cli("doctor", "--json").stdout)["ok"]
