"""`tunedeck data validate|show|stats` as a user runs them: real files, real processes."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_llamafactory_data_folder_validates_clean_with_hub_entries_remote(cli, shared_data):
    result = cli("data", "validate", str(shared_data), "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    statuses = {entry["name"]: entry["status"] for entry in document["datasets"]}
    assert len(statuses) == 104
    local = [name for name, status in statuses.items() if status != "remote"]
    assert len(local) == 14
    assert all(statuses[name] == "ok" for name in local)
    assert list(statuses.values()).count("remote") == 90
    assert document["summary"]["errors"] == 0
    assert document["summary"]["remote"] == 90
    for entry in document["datasets"]:
        assert set(entry) >= {"name", "status", "rows", "issues"}
        if entry["status"] == "ok":
            assert entry["rows"] > 0


def test_human_output_is_a_table_and_exit_zero(cli, example_workspace):
    result = cli("data", "validate", str(example_workspace / "data"))
    assert result.returncode == 0, result.stderr
    assert "demo_alpaca" in result.stdout
    assert "no errors" in result.stdout


def test_example_workspace_has_every_kind_and_validates_clean(cli, example_workspace):
    result = cli("data", "validate", str(example_workspace / "data"), "--json")
    assert result.returncode == 0
    document = json.loads(result.stdout)
    kinds = {entry["kind"] for entry in document["datasets"]}
    assert kinds == {"sft", "ranking", "kto", "pretrain"}
    formats = {entry["formatting"] for entry in document["datasets"]}
    assert formats == {"alpaca", "sharegpt"}
    assert all(entry["status"] == "ok" for entry in document["datasets"])
    assert all(entry["rows"] >= 12 for entry in document["datasets"])


def test_errors_exit_one_with_file_and_row_in_json(cli, make_data):
    rows = [{"instruction": "q", "output": "a"}, {"instruction": "q2", "output": 5}]
    data = make_data({"broken": {"file_name": "b.json"}}, {"b.json": rows})
    result = cli("data", "validate", str(data), "--json")
    assert result.returncode == 1
    issue = json.loads(result.stdout)["datasets"][0]["issues"][0]
    assert issue["code"] == "wrong_type"
    assert issue["file"].endswith("b.json")
    assert issue["row"] == 2
    assert issue["column"] == "output"
    assert set(issue) >= {"severity", "code", "message", "file", "row", "column"}


def test_human_output_names_the_problem_without_traceback(cli, make_data):
    data = make_data({"broken": {"file_name": "b.jsonl"}}, {"b.jsonl": '{"instruction": \n'})
    result = cli("data", "validate", str(data))
    assert result.returncode == 1
    assert "row_unreadable" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_missing_path_is_a_usage_error(cli, tmp_path):
    result = cli("data", "validate", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert "does not exist" in result.stderr


def test_unknown_dataset_name_is_a_usage_error_with_suggestion(cli, example_workspace):
    result = cli("data", "validate", str(example_workspace / "data"), "--dataset", "demo_alpca")
    assert result.returncode == 2
    assert "demo_alpaca" in result.stderr


def test_dataset_option_selects_entries(cli, example_workspace):
    result = cli(
        "data",
        "validate",
        str(example_workspace / "data"),
        "-d",
        "demo_kto",
        "-d",
        "demo_alpaca",
        "--json",
    )
    names = [entry["name"] for entry in json.loads(result.stdout)["datasets"]]
    assert names == ["demo_kto", "demo_alpaca"]


def test_max_issues_caps_listed_issues_but_counts_all(cli, make_data):
    rows = [{"instruction": "", "output": "a"} for _ in range(30)]
    data = make_data({"empty": {"file_name": "e.json"}}, {"e.json": rows})
    result = cli("data", "validate", str(data), "--json", "--max-issues", "5")
    entry = json.loads(result.stdout)["datasets"][0]
    assert len(entry["issues"]) == 5
    assert entry["issue_count"] == 31  # 30 rows plus "no valid rows"


def test_show_prints_the_normalised_conversation(cli, shared_data):
    result = cli("data", "show", "glaive_toolcall_en_demo", "--dir", str(shared_data), "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["row"] == 1
    roles = [message["role"] for message in document["conversation"]["prompt"]]
    assert roles[0] == "user"
    assert document["conversation"]["tools"]
    human = cli("data", "show", "mllm_demo", "--dir", str(shared_data), "--index", "1")
    assert human.returncode == 0
    assert "Who is he?" in human.stdout
    assert "mllm_demo_data" in human.stdout


def test_show_out_of_range_is_an_error_not_a_traceback(cli, example_workspace):
    result = cli(
        "data", "show", "demo_alpaca", "--dir", str(example_workspace / "data"), "-i", "999"
    )
    assert result.returncode == 1
    assert "out of range" in result.stderr
    assert "Traceback" not in result.stderr


def test_stats_reports_rows_roles_and_lengths(cli, shared_data):
    result = cli("data", "stats", "mllm_demo", "--dir", str(shared_data), "--json")
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["rows"] == 6
    assert stats["rows_with_issues"] == 0
    assert stats["multimodal"]["images"] > 0
    assert set(stats["prompt_chars"]) == {"min", "median", "p95", "max"}
    assert stats["roles"]["user"] >= 6
    human = cli("data", "stats", "dpo_en_demo", "--dir", str(shared_data))
    assert human.returncode == 0
    assert "rows" in human.stdout


def test_a_misspelt_entry_key_warns_with_a_did_you_mean_and_exits_zero(cli, make_data):
    info = {"typo": {"file_name": "t.json", "colums": {"prompt": "instruction"}}}
    data = make_data(info, {"t.json": [{"instruction": "q", "output": "a"}]})
    result = cli("data", "validate", str(data), "--json")
    assert result.returncode == 0, result.stderr
    entry = json.loads(result.stdout)["datasets"][0]
    assert entry["status"] == "warning"
    assert "did you mean 'columns'?" in entry["issues"][0]["message"]


def test_show_of_an_unreadable_row_gives_its_stored_text(cli, make_data):
    lines = '{"instruction": "q", "output": "a"}\n{"instruction": "q2", "output": broken}\n'
    data = make_data({"bad": {"file_name": "b.jsonl"}}, {"b.jsonl": lines})
    result = cli("data", "show", "bad", "--dir", str(data), "--index", "1", "--json")
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["raw"] == '{"instruction": "q2", "output": broken}'
    assert document["conversation"] is None
    assert document["issues"][0]["code"] == "row_unreadable"
    assert "invalid JSON on line 2" in document["issues"][0]["message"]
