"""Readers and normalisation: LLaMA-Factory's semantics on every supported file type."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tunedeck.core.datasets import (
    count_rows,
    get_row,
    iter_conversations,
    json_array,
    load_dataset_info,
    scan_json_array,
)
from tunedeck.core.datasets.conversation import Role

ALPACA = [
    {
        "instruction": "Name a colour.",
        "input": "Think of the sky.",
        "output": "Blue.",
        "system": "Be brief.",
        "history": [["Hi", "Hello!"]],
    },
    {"instruction": 'Say [yes] or {no}, "quoted" \\ ]}', "input": "", "output": "yes"},
]


def conversations(data, name):
    info = load_dataset_info(data)
    return list(iter_conversations(info.get(name), info.data_dir))


def test_alpaca_joins_instruction_and_input_with_history_and_system(make_data):
    entry = {
        "file_name": "a.json",
        "columns": {
            "prompt": "instruction",
            "query": "input",
            "response": "output",
            "system": "system",
            "history": "history",
        },
    }
    data = make_data({"a": entry}, {"a.json": ALPACA})
    first, second = conversations(data, "a")
    assert [(m.role, m.content) for m in first.prompt] == [
        (Role.USER, "Hi"),
        (Role.ASSISTANT, "Hello!"),
        (Role.USER, "Name a colour.\nThink of the sky."),
    ]
    assert first.response[0].content == "Blue."
    assert first.system == "Be brief."
    assert second.prompt[-1].content == ALPACA[1]["instruction"]
    assert (first.location.file.endswith("a.json"), first.location.row) == (True, 1)


def test_sharegpt_leading_system_message_and_roles(make_data):
    row = {
        "conversations": [
            {"from": "system", "value": "S"},
            {"from": "human", "value": "call it"},
            {"from": "function_call", "value": "{}"},
            {"from": "observation", "value": "42"},
            {"from": "gpt", "value": "It is 42."},
        ]
    }
    data = make_data({"s": {"file_name": "s.jsonl", "formatting": "sharegpt"}}, {"s.jsonl": [row]})
    (conversation,) = conversations(data, "s")
    assert conversation.system == "S"
    assert [m.role for m in conversation.prompt] == [Role.USER, Role.FUNCTION, Role.OBSERVATION]
    assert conversation.response[0].content == "It is 42."


def test_openai_formatting_merges_tool_results_and_maps_tool_calls(make_data):
    row = {
        "messages": [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"function": {"name": "w", "arguments": "{}"}}],
            },
            {"role": "tool", "content": "sunny"},
            {"role": "tool", "content": "warm"},
            {"role": "assistant", "content": "Sunny and warm."},
        ]
    }
    data = make_data({"o": {"file_name": "o.json", "formatting": "openai"}}, {"o.json": [row]})
    (conversation,) = conversations(data, "o")
    assert [m.role for m in conversation.prompt] == [Role.USER, Role.FUNCTION, Role.OBSERVATION]
    assert json.loads(conversation.prompt[1].content) == [{"name": "w", "arguments": "{}"}]
    assert conversation.prompt[2].content == "sunny\n</tool_response>\n<tool_response>\nwarm"


def test_kto_puts_the_answer_first_when_desirable(shared_data):
    info = load_dataset_info(shared_data)
    spec = info.get("kto_en_demo")
    rows = json.loads((shared_data / "kto_en_demo.json").read_text())
    for conversation, row in zip(iter_conversations(spec, shared_data), rows, strict=True):
        assert conversation.kto_tag is row["label"]
        real = row["messages"][-1]["content"]
        expected = (real, "") if row["label"] else ("", real)
        assert tuple(m.content for m in conversation.response) == expected


def test_ranking_gives_chosen_then_rejected(shared_data):
    info = load_dataset_info(shared_data)
    first = next(iter_conversations(info.get("dpo_en_demo"), shared_data))
    row = json.loads((shared_data / "dpo_en_demo.json").read_text())[0]
    assert [m.content for m in first.response] == [row["chosen"]["value"], row["rejected"]["value"]]
    assert len(first.prompt) % 2 == 1


def test_txt_pretraining_rows_are_lines(shared_data):
    info = load_dataset_info(shared_data)
    spec = info.get("wiki_demo")
    lines = (shared_data / "wiki_demo.txt").read_text().splitlines()
    found = list(iter_conversations(spec, shared_data))
    assert len(found) == len(lines) == count_rows(spec, shared_data)
    assert found[3].prompt[0].content == lines[3]
    assert found[3].response == ()


@pytest.mark.parametrize("kind", ["csv", "parquet", "arrow"])
def test_columnar_files_read_like_json(make_data, tmp_path, kind):
    rows = [{"instruction": f"q{i}", "input": "", "output": f"a{i}"} for i in range(2500)]
    data = make_data({"c": {"file_name": f"rows.{kind}"}})
    table = pa.Table.from_pylist(rows)
    target = data / f"rows.{kind}"
    if kind == "csv":
        import pyarrow.csv as pcsv

        pcsv.write_csv(table, target)
    elif kind == "parquet":
        pq.write_table(table, target, row_group_size=1000)
    else:
        with pa.OSFile(str(target), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
            w.write_table(table, max_chunksize=700)
    found = conversations(data, "c")
    assert len(found) == 2500
    assert found[1234].response[0].content == "a1234"
    info = load_dataset_info(data)
    assert get_row(info.get("c"), data, 2001).raw["instruction"] == "q2001"


def test_folder_rows_come_file_by_file(make_data):
    data = make_data(
        {"f": {"file_name": "parts"}},
        {"parts/1.jsonl": ALPACA[1:] * 3, "parts/2.json": ALPACA[1:] * 2},
    )
    info = load_dataset_info(data)
    spec = info.get("f")
    assert count_rows(spec, data) == 5
    view = get_row(spec, data, 4)
    assert view.file.endswith("2.json") and view.row == 2


def test_json_file_holding_json_lines_is_read(make_data):
    text = "".join(json.dumps(row) + "\n" for row in ALPACA)
    data = make_data({"a": {"file_name": "a.json"}}, {"a.json": text})
    assert len(conversations(data, "a")) == 2


def test_array_splitter_survives_tiny_chunks_and_tricky_strings(tmp_path, monkeypatch):
    monkeypatch.setattr(json_array, "CHUNK", 7)
    rows = ALPACA * 20 + [{"a": [{"b": "}]"}, [1, [2]]]}, 5, "x]"]
    for text in (json.dumps(rows), json.dumps(rows, indent=4), json.dumps(rows, indent=1)):
        path = tmp_path / "rows.json"
        path.write_text("\ufeff" + text if "\n" in text else text)
        scanned = list(scan_json_array(path))
        assert [value for *_, value, error in scanned] == rows
        assert all(error is None for *_, error in scanned)
        assert [row for row, *_ in scanned] == list(range(1, len(rows) + 1))


def test_get_row_uses_a_cached_index_and_gives_line(shared_data):
    info = load_dataset_info(shared_data)
    spec = info.get("alpaca_en_demo")
    rows = json.loads((shared_data / "alpaca_en_demo.json").read_text())
    for index in (0, 500, 998):
        view = get_row(spec, shared_data, index)
        assert view.raw == rows[index]
        assert view.row == index + 1
        assert view.conversation.response[0].content == rows[index]["output"]
    text = (shared_data / "alpaca_en_demo.json").read_text().splitlines()
    assert text[get_row(spec, shared_data, 10).line - 1].strip() == "{"


def test_get_row_of_a_broken_row_explains_why(make_data):
    data = make_data({"a": {"file_name": "a.jsonl"}}, {"a.jsonl": '{"instruction": "q"}\n'})
    view = get_row(load_dataset_info(data).get("a"), data, 0)
    assert view.conversation is None
    assert view.issues[0].code == "column_missing"
