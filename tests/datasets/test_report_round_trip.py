"""Reports and stats survive to_dict -> JSON -> from_dict unchanged (the app's sidecar relies on it)."""

from __future__ import annotations

import json
from pathlib import Path

from tunedeck.core.datasets import (
    DatasetReport,
    DatasetStats,
    Issue,
    ValidationReport,
    dataset_stats,
    load_dataset_info,
    validate,
)
from tunedeck.core.errors import Severity


def _broken_folder(make_data) -> Path:
    rows = [
        {"instruction": "hi", "output": "hello"},
        {"instruction": "", "output": "no prompt"},
        {"instruction": 3, "output": "wrong type"},
    ]
    info = {
        "good": {"file_name": "good.json"},
        "typo": {"file_name": "good.json", "colums": {"prompt": "instruction"}},
        "broken_lines": {"file_name": "broken.jsonl"},
        "missing": {"file_name": "nowhere.json"},
        "hub": {"hf_hub_url": "someone/data"},
        "rows": {"file_name": "rows.json"},
        "not_an_entry": ["x"],
    }
    good = [{"instruction": "q", "output": "a"}]
    broken = '{"instruction": "q", "output": "a"}\n{"instruction": "un\n'
    return make_data(info, {"good.json": good, "broken.jsonl": broken, "rows.json": rows})


def _through_json(document: dict) -> dict:
    return json.loads(json.dumps(document))


def test_validation_report_of_a_broken_folder_round_trips(make_data):
    report = validate(_broken_folder(make_data))
    assert {entry.status for entry in report.datasets} == {"ok", "warning", "error", "remote"}
    assert any(entry.error_rows for entry in report.datasets)
    again = ValidationReport.from_dict(_through_json(report.to_dict()))
    assert again == report
    assert again.summary == report.summary
    assert all(isinstance(issue.severity, Severity) for d in again.datasets for issue in d.issues)


def test_dataset_report_keeps_error_rows_and_issue_datasets(make_data):
    report = validate(_broken_folder(make_data), ["rows"]).datasets[0]
    document = _through_json(report.to_dict())
    assert document["error_rows"] == report.error_rows == 2
    assert {issue["dataset"] for issue in document["issues"]} == {"rows"}
    assert DatasetReport.from_dict(document) == report


def test_issue_severity_is_plain_text_in_json(make_data):
    report = validate(_broken_folder(make_data), ["typo"])
    issue = report.datasets[0].issues[0]
    assert issue.severity == Severity.WARNING
    assert '"severity": "warning"' in json.dumps(issue.to_dict())
    assert f"{issue.severity}: x" == "warning: x"
    assert Issue.from_dict(_through_json(issue.to_dict())) == issue


def test_invalid_dataset_info_report_round_trips(make_data):
    report = validate(make_data('{\n  "a": {"file_name" "a.json"}\n}\n'))
    assert report.issues and report.has_errors
    assert ValidationReport.from_dict(_through_json(report.to_dict())) == report


def test_dataset_stats_round_trip(shared_data):
    info = load_dataset_info(shared_data)
    name = next(name for name, spec in info.specs.items() if spec.is_local)
    stats = dataset_stats(info.specs[name], info.data_dir)
    assert stats.rows
    assert DatasetStats.from_dict(_through_json(stats.to_dict())) == stats
