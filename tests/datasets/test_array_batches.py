"""Batch reading gives exactly what reading element by element gives: rows, lines, offsets.

JSON arrays are cut at a junction learnt from the first elements ("\\n  },\\n  {") and
parsed a run at a time; JSON Lines a group of lines at a time. These tests build files
whose every element offset and line is known, including layouts that defeat the guess.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunedeck.core.datasets import json_array, load_dataset_info, readers, scan_json_array, validate
from tunedeck.core.datasets.convert import converter_for
from tunedeck.core.datasets.fast_checks import batch_check, row_check
from tunedeck.core.datasets.spec import spec_from_entry

TRICKY = [
    "plain",
    'escaped newline then brace: "\\n  }," and "\\n  },\\n  {"',
    "}, {",
    "}]}, {",
    "]",
    "back\\slash",
    "ünïcödé 中文",
    "tab\there",
]


def alpaca_row(i: int) -> dict[str, Any]:
    return {
        "instruction": f"{TRICKY[i % len(TRICKY)]} {i}",
        "input": "" if i % 3 else {"nested": {"deep": [1, {"a": "}"}]}},
        "output": f"answer {i}",
    }


def pretty(value: Any, indent: int = 2) -> str:
    """One element as json.dumps(array, indent=...) writes it, without the leading spaces."""
    return json.dumps(value, indent=indent, ensure_ascii=False).replace("\n", "\n" + " " * indent)


def write_array(path, elements: list[str], sep: str = ",\n  ", head: str = "[\n  ") -> list:
    """Write elements (their JSON text) as an array; (start, end, line) of each element."""
    places = []
    text = head
    for index, element in enumerate(elements):
        if index:
            text += sep
        start = len(text.encode())
        places.append((start, start + len(element.encode()), text.count("\n") + 1))
        text += element
    path.write_bytes((text + "\n]\n").encode())
    return places


def expected(elements: list[str], places: list) -> list[tuple]:
    rows = []
    for row, (element, (start, end, line)) in enumerate(zip(elements, places, strict=True), 1):
        try:
            rows.append((row, line, start, end, json.loads(element), None))
        except json.JSONDecodeError:
            rows.append((row, line, start, end, None, "bad"))
    return rows


def scanned(path) -> list[tuple]:
    return [
        (row, line, start, end, value, None if error is None else "bad")
        for row, line, start, end, value, error in scan_json_array(path)
    ]


@pytest.fixture(params=[(1 << 20, 1 << 15), (300, 100), (7, 7)], ids=["default", "small", "tiny"])
def sizes(request, monkeypatch):
    """Chunk (read) and batch sizes: small ones put chunk edges everywhere."""
    monkeypatch.setattr(json_array, "CHUNK", request.param[0])
    monkeypatch.setattr(json_array, "BATCH", request.param[1])
    monkeypatch.setattr(readers, "BATCH", request.param[1])


@pytest.mark.parametrize("indent", [2, 4])
def test_pretty_array_runs_match_exact_offsets_and_lines(tmp_path, sizes, indent):
    elements = [pretty(alpaca_row(i), indent) for i in range(300)]
    places = write_array(tmp_path / "a.json", elements, ",\n" + " " * indent, "[\n" + " " * indent)
    assert scanned(tmp_path / "a.json") == expected(elements, places)


@pytest.mark.parametrize("sep", [",", ", ", ",\n"])
def test_compact_array_runs_match_exact_offsets(tmp_path, sizes, sep):
    elements = [json.dumps(alpaca_row(i)) for i in range(300)]
    places = write_array(tmp_path / "a.json", elements, sep, "[")
    assert scanned(tmp_path / "a.json") == expected(elements, places)


def test_crlf_array_is_read_like_lf(tmp_path, sizes):
    elements = [pretty(alpaca_row(i)).replace("\n", "\r\n") for i in range(100)]
    places = write_array(tmp_path / "a.json", elements, ",\r\n  ", "[\r\n  ")
    assert scanned(tmp_path / "a.json") == expected(elements, places)


def test_broken_elements_mid_run_are_reported_and_the_rest_is_read(tmp_path, sizes):
    elements = [pretty(alpaca_row(i)) for i in range(200)]
    for index in (1, 57, 58, 120, 199):
        elements[index] = elements[index].replace('"output":', '"output"', 1)
    places = write_array(tmp_path / "a.json", elements)
    result = scanned(tmp_path / "a.json")
    assert result == expected(elements, places)
    assert [row for row, *_, error in result if error] == [2, 58, 59, 121, 200]


def test_elements_that_break_the_learnt_junction_still_get_exact_places(tmp_path, sizes):
    """A nested object closed at the top level's indentation, a one-line element, a scalar."""
    elements = [pretty(alpaca_row(i)) for i in range(40)]
    elements[10] = '{\n    "x": [{\n  },\n  {"y": 1}]\n  }'  # holds the junction itself
    elements[11] = "{}"
    elements[12] = '"just a string"'
    elements[20] = "[\n    1,\n    2\n  ]"
    elements[30] = '{"compact": "row", "n": [1, 2]}'
    places = write_array(tmp_path / "a.json", elements)
    assert scanned(tmp_path / "a.json") == expected(elements, places)


def test_validate_names_the_same_rows_and_lines_in_an_array_and_its_twin(make_data):
    rows: list[Any] = [
        {"instruction": f"q{i}", "input": "", "output": f"a{i}"} for i in range(3000)
    ]
    rows[5] = {"instruction": "q", "input": ""}
    rows[1500] = {"instruction": " ", "output": "a"}
    rows[1501] = ["not", "an", "object"]
    rows[2999] = {"instruction": 3, "output": "a"}
    data = make_data(
        {"arr": {"file_name": "a.json"}, "lines": {"file_name": "a.jsonl"}},
        {"a.json": rows, "a.jsonl": rows},
    )
    report = validate(data).to_dict()
    by_name = {entry["name"]: entry for entry in report["datasets"]}
    text = (data / "a.json").read_text().splitlines()
    array_issues = by_name["arr"]["issues"]
    twin_issues = by_name["lines"]["issues"]
    assert [(i["code"], i["row"]) for i in array_issues] == [
        (i["code"], i["row"]) for i in twin_issues
    ]
    assert [i["row"] for i in array_issues] == [6, 1501, 1502, 3000]
    assert [i["line"] for i in twin_issues] == [6, 1501, 1502, 3000]
    for issue in array_issues:  # each line is where its element opens
        assert text[issue["line"] - 1].strip() in ("{", "[")
        assert text[issue["line"] - 2].strip() in ("[", "},", "],")


def test_json_lines_with_blank_and_broken_lines_keep_their_line_numbers(tmp_path, sizes):
    lines = [json.dumps({"instruction": f"q{i}", "output": "a"}) for i in range(500)]
    lines[3] = ""
    lines[100] = "   "
    lines[250] = '{"instruction": "q", "output": '
    (tmp_path / "a.jsonl").write_text("\n".join(lines) + "\n")
    got = list(readers.read_file_rows(tmp_path / "a.jsonl", "json"))
    want_lines = [n for n, text in enumerate(lines, 1) if text.strip()]
    assert [line for _, line, _, _ in got] == want_lines
    assert [row for row, *_ in got] == list(range(1, len(want_lines) + 1))
    assert [line for _, line, _, error in got if error] == [251]


SCALARS = st.none() | st.booleans() | st.integers() | st.sampled_from(["", " ", "x", "\n"])
ROLES = st.sampled_from(["human", "gpt", "system", "observation", "function_call", "bot"])
MESSAGE = (
    st.fixed_dictionaries(
        {"from": ROLES | SCALARS, "value": st.sampled_from(["hi", "", " "]) | SCALARS}
    )
    | st.dictionaries(st.sampled_from(["from", "value"]), SCALARS)
    | SCALARS
)
SHAREGPT_ROW = st.fixed_dictionaries(
    {"conversations": st.lists(MESSAGE, max_size=5) | SCALARS},
    optional={"system": SCALARS, "tools": SCALARS | st.just([])},
)
ALPACA_ROW = st.dictionaries(
    st.sampled_from(["instruction", "input", "output", "system", "history", "other"]),
    SCALARS | st.lists(st.lists(SCALARS, max_size=3), max_size=2),
    max_size=5,
)
SPECS = {
    "alpaca": {"file_name": "a.json"},
    "alpaca_full": {
        "file_name": "a.json",
        "columns": {
            "prompt": "instruction",
            "query": "input",
            "response": "output",
            "system": "system",
            "history": "history",
        },
    },
    "sharegpt": {
        "file_name": "a.json",
        "formatting": "sharegpt",
        "columns": {"messages": "conversations", "system": "system", "tools": "tools"},
    },
}


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    name=st.sampled_from(sorted(SPECS)),
    rows=st.lists(ALPACA_ROW | SHAREGPT_ROW | SCALARS, max_size=6),
)
def test_fast_checks_pass_only_rows_the_full_walk_finds_clean(name, rows):
    spec = spec_from_entry(name, SPECS[name])
    converter = converter_for(spec)
    row_ok, rows_ok = row_check(spec), batch_check(spec)
    for row in rows:
        if row_ok(row):
            assert converter.problems(row) == []
    if rows_ok(rows):
        assert all(map(row_ok, rows))


def test_fast_checks_pass_clean_rows(shared_data):
    info = load_dataset_info(shared_data)
    for name in ("alpaca_en_demo", "glaive_toolcall_en_demo", "identity"):
        spec = info.get(name)
        rows = json.loads((shared_data / spec.file_name).read_text())
        converter = converter_for(spec, shared_data)
        clean = [row for row in rows if not converter.problems(row)]
        assert len(clean) > len(rows) * 0.9
        assert batch_check(spec)(clean)
        assert all(map(row_check(spec), clean))
