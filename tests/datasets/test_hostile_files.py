"""Broken data files of every reader format: each data command names the file and the line or
row, exits non-zero where nothing can be shown, and never lets a traceback reach the user."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunedeck.core.datasets import load_dataset_info
from tunedeck.core.datasets.readers import read_file_rows
from tunedeck.core.datasets.rows import get_row

GOOD_JSON = b'{"instruction": "a", "output": "b"}'

# format -> (file name, bytes, 0-based index of the broken row, what locates it, why)
BROKEN = {
    "json": (
        "broken.json",
        b"[" + GOOD_JSON + b',\n{"instruction": "c\xff", "output": "d"}]\n',
        1,
        "broken.json, line 2, row 2",
        "byte 0xff at byte offset 56",
    ),
    "jsonl": (
        "broken.jsonl",
        GOOD_JSON + b'\n{"instruction": "c\xfe\xff", "output": "d"}\n',
        1,
        "broken.jsonl, line 2, row 2",
        "invalid UTF-8 on line 2: byte 0xfe at byte offset 54",
    ),
    "csv": (
        "broken.csv",
        b"instruction,output\na,b\nc,d,e\nf,g\n",
        1,
        "broken.csv, line 3, row 2",
        "line 3 has 3 fields where the header has 2: c,d,e",
    ),
    "parquet": (
        "broken.parquet",
        b"instruction,output\nthis is a text file named .parquet\n",
        0,
        "broken.parquet, row 1",
        "cannot read parquet data",
    ),
    "arrow": (
        "broken.arrow",
        b"this is a text file named .arrow\n",
        0,
        "broken.arrow, row 1",
        "cannot read arrow data",
    ),
    "txt": (
        "broken.txt",
        b"hello\nwor\xffld\n",
        1,
        "broken.txt, line 2, row 2",
        "invalid UTF-8 on line 2: byte 0xff at byte offset 9",
    ),
}


def _data_with(make_data, fmt: str) -> Path:
    name, content, *_ = BROKEN[fmt]
    entry = {"file_name": name}
    if fmt == "txt":
        entry["columns"] = {"prompt": "text"}
    return make_data({"broken": entry}, {name: content})


def _assert_no_traceback(result) -> None:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-3000:]


@pytest.mark.parametrize("fmt", list(BROKEN))
@pytest.mark.parametrize("command", ["validate", "stats", "show", "preview"])
def test_broken_file_is_located_without_traceback(make_data, cli, fmt, command):
    data = _data_with(make_data, fmt)
    _name, _content, index, where, why = BROKEN[fmt]
    args = {
        "validate": ["validate", str(data)],
        "stats": ["stats", "broken", "--dir", str(data)],
        "show": ["show", "broken", "--dir", str(data), "-i", str(index)],
        "preview": ["preview", "broken", "--dir", str(data), "-i", str(index), "-t", "llama3"],
    }[command]
    result = cli("data", *args)
    _assert_no_traceback(result)
    output = result.stdout + result.stderr
    assert where in output and why in output, output
    if command != "stats" or index == 0:  # stats of a file with a usable row succeeds
        assert result.returncode == 1, output


def test_text_file_named_parquet_shows_as_an_unreadable_row(make_data):
    data = _data_with(make_data, "parquet")
    spec = load_dataset_info(data).get_local("broken")
    view = get_row(spec, data, 0)
    assert view.conversation is None
    assert view.issues[0].code == "row_unreadable"
    assert "Parquet magic bytes not found" in view.issues[0].message


def test_ragged_csv_rows_are_reported_in_place_and_the_others_kept(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_bytes(b"instruction,output\na,b\nc,d,e\n\nf,g\nh\n")
    rows = list(read_file_rows(path, "csv"))
    assert rows == [
        (1, None, {"instruction": "a", "output": "b"}, None),
        (2, 3, None, "line 3 has 3 fields where the header has 2: c,d,e"),
        (3, None, {"instruction": "f", "output": "g"}, None),
        (4, 6, None, "line 6 has 1 field where the header has 2: h"),
    ]


def test_csv_value_that_is_not_utf8_spoils_only_its_row(tmp_path):
    path = tmp_path / "bytes.csv"
    path.write_bytes(b"instruction,output\na,b\nc\xff,d\ne,f\n")
    rows = list(read_file_rows(path, "csv"))
    assert rows[0] == (1, None, {"instruction": "a", "output": "b"}, None)
    assert rows[1] == (
        2,
        3,
        None,
        "invalid UTF-8 on line 3: 'instruction' has byte 0xff at byte 1 of its value",
    )
    assert rows[2] == (3, None, {"instruction": "e", "output": "f"}, None)


@pytest.mark.parametrize("extension", ["json", "jsonl", "csv", "txt"])
def test_utf8_bom_is_accepted_by_every_text_format(make_data, cli, extension):
    body = {
        "json": b"[" + GOOD_JSON + b"]\n",
        "jsonl": GOOD_JSON + b"\n" + GOOD_JSON + b"\n",
        "csv": b"instruction,output\na,b\n",
        "txt": b"a\n",
    }[extension]
    entry = {"file_name": f"bom.{extension}"}
    if extension == "txt":
        entry["columns"] = {"prompt": "text"}
    data = make_data({"bom": entry}, {f"bom.{extension}": b"\xef\xbb\xbf" + body})
    result = cli("data", "validate", str(data), "--json")
    _assert_no_traceback(result)
    report = json.loads(result.stdout)["datasets"][0]
    assert report["status"] == "ok", report
    spec = load_dataset_info(data).get_local("bom")
    first = get_row(spec, data, 0)
    assert first.conversation is not None and first.conversation.prompt[0].content == "a"


def test_stats_json_carries_the_first_issue_and_the_usable_rows(make_data, cli):
    data = _data_with(make_data, "csv")
    result = cli("data", "stats", "broken", "--dir", str(data), "--json")
    assert result.returncode == 0
    stats = json.loads(result.stdout)
    assert stats["usable_rows"] == 2
    assert stats["first_issue"]["line"] == 3 and stats["first_issue"]["row"] == 2


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("folder", "folder: is a folder, not a file"),
        ("a_file/out.jsonl", "a_file/out.jsonl: cannot be written: "),
        ("/proc/no-such-place/out.jsonl", "out.jsonl: cannot be written: "),
    ],
)
def test_to_text_onto_a_place_it_cannot_write_is_a_located_error(
    make_data, cli, tmp_path, target, expected
):
    data = make_data({"good": {"file_name": "good.json"}}, {"good.json": b"[" + GOOD_JSON + b"]"})
    (tmp_path / "folder").mkdir()
    (tmp_path / "a_file").write_text("not a folder")
    result = cli("data", "to-text", "good", "--dir", str(data), "-o", target, cwd=tmp_path)
    _assert_no_traceback(result)
    assert result.returncode != 0
    assert expected in result.stderr, result.stderr
    assert not list((tmp_path / "folder").iterdir())


def test_to_text_makes_a_missing_folder(make_data, cli, tmp_path):
    data = make_data({"good": {"file_name": "good.json"}}, {"good.json": b"[" + GOOD_JSON + b"]"})
    output = tmp_path / "new" / "deeper" / "out.jsonl"
    result = cli("data", "to-text", "good", "--dir", str(data), "-o", str(output))
    assert result.returncode == 0, result.stderr
    assert json.loads(output.read_text()) == {"text": "a\nb"}
    assert [p.name for p in output.parent.iterdir()] == ["out.jsonl"]
