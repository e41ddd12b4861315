"""Broken variants of real LLaMA-Factory data: each gives its specific issue, file and row."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from tunedeck.core.datasets import validate
from tunedeck.core.errors import DatasetError


def shared_rows(shared_data: Path, name: str, count: int = 5) -> list:
    return json.loads((shared_data / name).read_text())[:count]


def shared_entry(shared_data: Path, name: str) -> dict:
    return json.loads((shared_data / "dataset_info.json").read_text())[name]


def issues_of(data: Path, name: str | None = None) -> list:
    report = validate(data, [name] if name else None)
    return [issue for entry in report.datasets for issue in entry.issues] + report.issues


def only(issues: list, code: str):
    found = [issue for issue in issues if issue.code == code]
    assert found, f"no {code} in {[(i.code, i.message) for i in issues]}"
    return found[0]


def test_invalid_dataset_info_json_gives_line_and_column(make_data):
    data = make_data('{\n  "a": {"file_name": "a.json"},\n  "b": {"file_name" "b.json"}\n}\n')
    report = validate(data)
    issue = only(report.issues, "info_invalid_json")
    assert issue.line == 3
    assert issue.column is not None
    assert report.has_errors


def test_dataset_info_that_is_not_an_object(make_data):
    data = make_data("[1, 2]")
    assert only(validate(data).issues, "info_not_object").severity == "error"


def test_entry_that_is_not_an_object(make_data):
    data = make_data({"weird": ["alpaca.json"]})
    issue = only(issues_of(data), "entry_not_object")
    assert issue.column == "weird"


def test_entry_without_source(make_data):
    data = make_data({"nothing": {"formatting": "alpaca"}})
    assert "file_name" in only(issues_of(data), "no_source").message


def test_unknown_keys_are_warnings_with_suggestions(make_data, shared_data):
    entry = {"file_name": "a.json", "formating": "alpaca", "columns": {"promt": "instruction"}}
    data = make_data({"a": entry}, {"a.json": shared_rows(shared_data, "alpaca_en_demo.json")})
    report = validate(data)
    issues = report.datasets[0].issues
    messages = [issue.message for issue in issues if issue.code == "unknown_key"]
    assert any("did you mean 'formatting'" in message for message in messages)
    assert any("did you mean 'prompt'" in message for message in messages)
    assert all(issue.severity == "warning" for issue in issues if issue.code == "unknown_key")
    assert report.datasets[0].status == "warning"
    assert not report.has_errors


def test_missing_file(make_data):
    data = make_data({"gone": {"file_name": "gone.json"}})
    issue = only(issues_of(data), "file_missing")
    assert issue.file.endswith("gone.json")


def test_folder_with_mixed_types(make_data, shared_data):
    rows = shared_rows(shared_data, "alpaca_en_demo.json")
    data = make_data(
        {"mixed": {"file_name": "parts"}},
        {"parts/a.json": rows, "parts/b.csv": "instruction,output\nq,a\n"},
    )
    issue = only(issues_of(data), "folder_mixed_types")
    assert "csv" in issue.message and "json" in issue.message


def test_unsupported_extension(make_data):
    data = make_data({"x": {"file_name": "rows.xlsx"}}, {"rows.xlsx": "not really"})
    assert ".jsonl" in only(issues_of(data), "unsupported_extension").message


def test_bad_json_line_names_file_and_line(make_data, shared_data):
    rows = [json.dumps(row) for row in shared_rows(shared_data, "alpaca_en_demo.json")]
    rows.insert(2, "")  # a blank line is skipped, not a row
    rows[3] = rows[3][:-7]
    data = make_data({"lines": {"file_name": "a.jsonl"}}, {"a.jsonl": "\n".join(rows) + "\n"})
    issue = only(issues_of(data), "row_unreadable")
    assert issue.file.endswith("a.jsonl")
    assert issue.line == 4
    assert issue.row == 3


def test_broken_element_of_a_json_array_names_its_row(make_data, shared_data):
    text = json.dumps(shared_rows(shared_data, "alpaca_en_demo.json"), indent=2)
    broken = text.replace('"output"', '"output" :: ', 3)  # rows 1-3 get bad syntax
    data = make_data({"arr": {"file_name": "a.json"}}, {"a.json": broken})
    issues = [issue for issue in issues_of(data) if issue.code == "row_unreadable"]
    assert [issue.row for issue in issues] == [1, 2, 3]
    assert issues[0].line == 2


def test_truncated_json_array(make_data, shared_data):
    text = json.dumps(shared_rows(shared_data, "alpaca_en_demo.json"), indent=2)
    data = make_data({"arr": {"file_name": "a.json"}}, {"a.json": text[: len(text) // 2]})
    issue = only(issues_of(data), "row_unreadable")
    assert "ends inside" in issue.message


def test_required_column_missing(make_data, shared_data):
    rows = shared_rows(shared_data, "alpaca_en_demo.json")
    del rows[1]["output"]
    data = make_data({"a": {"file_name": "a.json"}}, {"a.json": rows})
    issue = only(issues_of(data), "column_missing")
    assert (issue.row, issue.column) == (2, "output")


def test_sharegpt_messages_column_missing_lists_the_keys(make_data, shared_data):
    rows = shared_rows(shared_data, "glaive_toolcall_en_demo.json")
    rows[0]["chat"] = rows[0].pop("conversations")
    entry = shared_entry(shared_data, "glaive_toolcall_en_demo")
    data = make_data({"g": {**entry, "file_name": "g.json"}}, {"g.json": rows})
    issue = only(issues_of(data), "column_missing")
    assert issue.row == 1 and "'chat'" in issue.message


@pytest.mark.parametrize(
    ("mutate", "column"),
    [
        (lambda row: row.update(history="not a list"), "history"),
        (lambda row: row.update(history=[["only one"]]), "history[0]"),
        (lambda row: row.update(instruction=["a", "list"]), "instruction"),
    ],
)
def test_wrong_types_in_alpaca_rows(make_data, shared_data, mutate, column):
    rows = shared_rows(shared_data, "alpaca_en_demo.json")
    mutate(rows[3])
    entry = {
        "file_name": "a.json",
        "columns": {
            "prompt": "instruction",
            "query": "input",
            "response": "output",
            "history": "history",
        },
    }
    data = make_data({"a": entry}, {"a.json": rows})
    issue = only(issues_of(data), "wrong_type")
    assert (issue.row, issue.column) == (4, column)


def test_messages_not_a_list(make_data, shared_data):
    rows = shared_rows(shared_data, "glaive_toolcall_en_demo.json")
    rows[2]["conversations"] = {"from": "human", "value": "hi"}
    entry = shared_entry(shared_data, "glaive_toolcall_en_demo")
    data = make_data({"g": {**entry, "file_name": "g.json"}}, {"g.json": rows})
    issue = only(issues_of(data), "wrong_type")
    assert issue.row == 3 and "list of messages" in issue.message


def test_unknown_role_names_the_tag_and_the_declared_tags(make_data, shared_data):
    rows = shared_rows(shared_data, "mllm_demo.json")
    rows[1]["messages"][1]["role"] = "bot"
    entry = shared_entry(shared_data, "mllm_demo")
    shutil.copytree(shared_data / "mllm_demo_data", make_data({}) / "mllm_demo_data")
    data = make_data({"m": {**entry, "file_name": "m.json"}}, {"m.json": rows})
    issue = only(issues_of(data), "unknown_role")
    assert issue.row == 2
    assert "'bot'" in issue.message
    assert "user_tag 'user'" in issue.message and "assistant_tag 'assistant'" in issue.message


def test_role_order_broken_says_which_message(make_data, shared_data):
    rows = shared_rows(shared_data, "glaive_toolcall_en_demo.json")
    conversation = rows[4]["conversations"]
    conversation[0], conversation[1] = conversation[1], conversation[0]
    entry = shared_entry(shared_data, "glaive_toolcall_en_demo")
    data = make_data({"g": {**entry, "file_name": "g.json"}}, {"g.json": rows})
    issue = only(issues_of(data), "role_order")
    assert issue.row == 5
    assert "message 1" in issue.message


def test_wrong_message_count(make_data, shared_data):
    rows = shared_rows(shared_data, "glaive_toolcall_en_demo.json")
    rows[0]["conversations"] = rows[0]["conversations"][:-1]
    entry = shared_entry(shared_data, "glaive_toolcall_en_demo")
    data = make_data({"g": {**entry, "file_name": "g.json"}}, {"g.json": rows})
    issue = only(issues_of(data), "message_count")
    assert issue.row == 1 and "even" in issue.message


def test_ranking_row_needs_an_odd_message_count(make_data, shared_data):
    rows = shared_rows(shared_data, "dpo_en_demo.json")
    rows[1]["conversations"].append({"from": "gpt", "value": "extra"})
    entry = shared_entry(shared_data, "dpo_en_demo")
    data = make_data({"d": {**entry, "file_name": "d.json"}}, {"d.json": rows})
    issue = only(issues_of(data), "message_count")
    assert issue.row == 2 and "odd" in issue.message


def test_ranking_entry_without_chosen_and_rejected(make_data, shared_data):
    entry = shared_entry(shared_data, "dpo_en_demo")
    entry = {**entry, "file_name": "d.json", "columns": {"messages": "conversations"}}
    data = make_data({"d": entry}, {"d.json": shared_rows(shared_data, "dpo_en_demo.json")})
    issue = only(issues_of(data), "ranking_columns")
    assert "chosen" in issue.message and issue.severity == "error"


def test_ranking_row_without_rejected_answer(make_data, shared_data):
    rows = shared_rows(shared_data, "dpo_en_demo.json")
    del rows[2]["rejected"]
    entry = shared_entry(shared_data, "dpo_en_demo")
    data = make_data({"d": {**entry, "file_name": "d.json"}}, {"d.json": rows})
    issue = only(issues_of(data), "column_missing")
    assert (issue.row, issue.column) == (3, "rejected")


def test_non_boolean_kto_tag(make_data, shared_data):
    rows = shared_rows(shared_data, "kto_en_demo.json")
    rows[3]["label"] = "true"
    entry = shared_entry(shared_data, "kto_en_demo")
    data = make_data({"k": {**entry, "file_name": "k.json"}}, {"k.json": rows})
    issue = only(issues_of(data), "kto_tag_not_bool")
    assert (issue.row, issue.column) == (4, "label")


def test_media_path_that_does_not_exist(make_data, shared_data):
    rows = shared_rows(shared_data, "mllm_demo.json")
    rows[2]["images"] = ["mllm_demo_data/missing.jpg"]
    entry = shared_entry(shared_data, "mllm_demo")
    data = make_data({"m": {**entry, "file_name": "m.json"}}, {"m.json": rows})
    shutil.copytree(shared_data / "mllm_demo_data", data / "mllm_demo_data")
    issue = only(issues_of(data), "media_missing")
    assert issue.row == 3 and "missing.jpg" in issue.message


def test_placeholder_count_must_match_media_count(make_data, shared_data):
    rows = shared_rows(shared_data, "mllm_video_demo.json")
    rows[0]["videos"] = rows[0]["videos"] * 2
    entry = shared_entry(shared_data, "mllm_video_demo")
    data = make_data({"v": {**entry, "file_name": "v.json"}}, {"v.json": rows})
    shutil.copytree(shared_data / "mllm_demo_data", data / "mllm_demo_data")
    issue = only(issues_of(data), "media_count_mismatch")
    assert issue.row == 1 and "<video>" in issue.message


def test_empty_prompt_and_empty_response(make_data, shared_data):
    rows = shared_rows(shared_data, "alpaca_en_demo.json")
    rows[0]["instruction"], rows[0]["input"] = "", ""
    rows[4]["output"] = "  "
    data = make_data({"a": {"file_name": "a.json"}}, {"a.json": rows})
    issues = issues_of(data)
    assert only(issues, "empty_prompt").row == 1
    assert only(issues, "empty_response").row == 5


def test_row_that_is_not_an_object(make_data, shared_data):
    rows = shared_rows(shared_data, "identity.json")
    rows[1] = ["instruction", "output"]
    data = make_data({"i": {"file_name": "i.json"}}, {"i.json": rows})
    assert only(issues_of(data), "row_not_object").row == 2


def test_no_usable_rows_is_named_like_llamafactory_would_fail(make_data):
    data = make_data(
        {"a": {"file_name": "a.json"}}, {"a.json": [{"instruction": "", "output": ""}]}
    )
    assert "Cannot find valid samples" in only(issues_of(data), "no_valid_rows").message


def test_empty_file_has_no_rows(make_data):
    data = make_data({"a": {"file_name": "a.jsonl"}}, {"a.jsonl": ""})
    assert only(issues_of(data), "no_rows").severity == "error"


def test_hub_entries_are_remote_never_errors(make_data):
    data = make_data(
        {
            "hub": {"hf_hub_url": "someone/set", "ranking": True},
            "ms": {"ms_hub_url": "someone/set"},
            "script": {"script_url": "folder"},
        }
    )
    report = validate(data)
    assert [entry.status for entry in report.datasets] == ["remote", "remote", "remote"]
    assert not report.has_errors


def test_a_broken_row_does_not_hide_the_other_rows(make_data, shared_data):
    rows = shared_rows(shared_data, "glaive_toolcall_en_demo.json", 8)
    good = copy.deepcopy(rows)
    rows[1]["conversations"][0]["from"] = "gpt"
    rows[6]["conversations"] = rows[6]["conversations"][:1]
    entry = shared_entry(shared_data, "glaive_toolcall_en_demo")
    data = make_data({"g": {**entry, "file_name": "g.json"}}, {"g.json": rows})
    report = validate(data).datasets[0]
    assert [(issue.row, issue.code) for issue in report.issues] == [
        (2, "role_order"),
        (7, "message_count"),
    ]
    assert report.rows == len(good)
    assert report.status == "error"


def test_unknown_dataset_name_raises_with_suggestion(make_data):
    data = make_data({"alpaca_demo": {"file_name": "a.json"}})
    with pytest.raises(DatasetError) as caught:
        validate(data, ["alpaca_dmeo"])
    assert "alpaca_demo" in (caught.value.hint or "")


def test_validate_entry_keeps_the_entry_spec_warnings(make_data):
    from tunedeck.core.datasets import load_dataset_info, validate_entry

    rows = [{"instruction": "q", "output": "a"}]
    data = make_data({"typo": {"file_name": "a.json", "colums": {}}}, {"a.json": rows})
    report = validate_entry(load_dataset_info(data), "typo")
    assert report.status == "warning" and report.rows == 1
    warning = only(report.issues, "unknown_key")
    assert warning.severity == "warning" and "columns" in warning.message
