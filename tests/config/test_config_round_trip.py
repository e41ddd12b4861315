"""Config checks survive to_dict -> JSON -> from_dict unchanged, severity included."""

from __future__ import annotations

import json
from pathlib import Path

from tunedeck.core.config import ConfigCheck, ConfigProblem, RunConfig, check_config
from tunedeck.core.errors import Severity

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "llamafactory-data"


def _through_json(document: dict) -> dict:
    return json.loads(json.dumps(document))


def test_a_failing_check_round_trips_with_every_problem(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(
        "model_name_or_path: ./nowhere\n"
        "dataset: alpaca_en_demo,not_there\n"
        f"dataset_dir: {SHARED}\n"
        "template: no_such_template\n"
        "learning_rate: fast\n"
        "use_unsloth: true\n"
        f"output_dir: {tmp_path / 'out'}\n"
    )
    check = check_config(path, ["lora_rank=0"])
    severities = {problem.severity for problem in check.problems}
    assert severities == {Severity.ERROR, Severity.WARNING}
    again = ConfigCheck.from_dict(_through_json(check.to_dict()))
    assert again == check
    assert not again.ok and again.errors == check.errors


def test_a_passing_check_round_trips_with_its_config(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    check = check_config(
        None,
        [
            f"model_name_or_path={model}",
            "dataset=alpaca_en_demo",
            f"dataset_dir={SHARED}",
            "template=llama3",
            f"output_dir={tmp_path / 'out'}",
        ],
    )
    assert check.ok and check.config is not None
    again = ConfigCheck.from_dict(_through_json(check.to_dict()))
    assert again == check
    assert RunConfig.from_dict(check.config.to_dict()) == check.config


def test_problem_json_shows_severity_as_text():
    problem = ConfigProblem("stage", "bad", check_config(None, ["stage=x"]).problems[0].location)
    document = problem.to_dict()
    assert json.dumps(document["severity"]) == '"error"'
    assert ConfigProblem.from_dict(_through_json(document)) == problem


def test_cli_json_decodes_into_the_same_check(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "run.yaml"
    path.write_text("stage: sft\nlearning_rate: fast\nuse_unsloth: true\n")
    result = subprocess.run(
        [sys.executable, "-m", "tunedeck.tui", "config", "check", str(path), "--json"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    decoded = ConfigCheck.from_dict(json.loads(result.stdout))
    assert decoded == check_config(path)
    assert decoded.warnings and decoded.errors
