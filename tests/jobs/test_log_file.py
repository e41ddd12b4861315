"""Reading a log by byte offset: tail, windows, search, growth, truncation and rotation."""

from __future__ import annotations

import os
from pathlib import Path

from tunedeck.core.jobs.logs import MAX_LINE, LogFile


def _write(path: Path, count: int, start: int = 0) -> None:
    with path.open("a") as handle:
        for number in range(start, start + count):
            handle.write(f"line {number}\n")


def test_tail_returns_the_last_lines_and_the_end_of_the_last_complete_one(tmp_path):
    path = tmp_path / "run.log"
    _write(path, 1000)
    with path.open("a") as handle:
        handle.write("partial")
    log = LogFile(path)
    log.open()
    lines, end = log.tail(3)
    assert [line.text for line in lines] == ["line 998", "line 999", "partial"]
    assert end == path.stat().st_size - len("partial")
    assert log.read(lines[0].offset, 8) == b"line 998"


def test_windows_before_and_after_an_offset_join_up(tmp_path):
    path = tmp_path / "run.log"
    _write(path, 500)
    log = LogFile(path)
    log.open()
    middle = log.lines_after(0, 251)[-1]
    assert middle.text == "line 250"
    after = log.lines_after(middle.offset, 3)
    before = log.lines_before(middle.offset, 3)
    assert [line.text for line in before + after] == [f"line {n}" for n in range(247, 253)]
    assert log.lines_before(0, 5) == []


def test_find_goes_forwards_and_backwards_by_line(tmp_path):
    path = tmp_path / "run.log"
    _write(path, 20000)
    log = LogFile(path)
    log.open()
    hit = log.find("LINE 15000", 0)
    assert log.lines_after(hit, 1)[0].text == "line 15000"
    back = log.find("line 12", hit, backwards=True)
    assert log.lines_after(back, 1)[0].text == "line 12999"
    assert log.find("not there", 0) is None


def test_poll_sees_growth_truncation_and_rotation(tmp_path):
    path = tmp_path / "run.log"
    _write(path, 10)
    log = LogFile(path)
    size = log.open()
    _write(path, 5, start=10)
    change = log.poll()
    assert change.grew and change.size > size
    lines, end = log.read_appended(size)
    assert [line.text for line in lines] == [f"line {n}" for n in range(10, 15)]
    assert end == change.size
    path.write_text("fresh\n")
    assert log.poll().truncated
    path.write_text("rewritten with more bytes than before\n" * 3)
    assert log.poll().truncated
    os.rename(path, tmp_path / "run.log.1")
    path.write_text("new file\n")
    change = log.poll()
    assert change.rotated
    assert [line.text for line in log.tail(5)[0]] == ["new file"]


def test_a_huge_line_is_cut_not_read_whole(tmp_path):
    path = tmp_path / "run.log"
    path.write_bytes(b"start\n" + b"x" * (MAX_LINE * 20) + b"\nend\n")
    log = LogFile(path)
    log.open()
    lines, _ = log.tail(2)
    assert lines[-1].text == "end"
    assert all(len(line.text) <= MAX_LINE for line in lines)
    first = log.lines_after(0, 3)
    assert first[0].text == "start" and len(first[1].text) <= MAX_LINE


def test_a_missing_file_reads_as_empty_until_it_appears(tmp_path):
    path = tmp_path / "later.log"
    log = LogFile(path)
    assert log.open() == 0
    assert log.tail(5) == ([], 0)
    assert log.poll().missing
    _write(path, 2)
    change = log.poll()
    assert change.grew and not change.rotated
