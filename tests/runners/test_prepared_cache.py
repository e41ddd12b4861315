"""`tunedeck data prepared`: the prepared-data cache listed, stamped when read, and removed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tunedeck.core.config import RunConfig
from tunedeck.core.jobs.prepared_cache import META_FILE, cache_root, list_prepared
from tunedeck.core.runners.prepared import prepare_dataset
from tunedeck.core.templates import load_tokenizer

REPO = Path(__file__).resolve().parents[2]
TOKENIZER_DIR = REPO / "tests" / "fixtures" / "tokenizer"
DAY = 86400


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(TOKENIZER_DIR, "llama3")


def _prepare(tmp_path: Path, tokenizer, name: str, rows: int):
    folder = tmp_path / name
    folder.mkdir()
    data = [{"instruction": f"{name} {n}", "output": f"answer {n}"} for n in range(rows)]
    (folder / "d.json").write_text(json.dumps(data))
    (folder / "dataset_info.json").write_text(json.dumps({name: {"file_name": "d.json"}}))
    config = RunConfig(
        template="llama3", dataset=name, dataset_dir=str(folder), model_name_or_path="m/tiny"
    )
    return config, prepare_dataset(config, tokenizer)


def tunedeck(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tunedeck.tui", "data", "prepared", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _age(folder: Path, days: float) -> None:
    then = time.time() - days * DAY
    os.utime(folder / META_FILE, (then, then))


def test_the_listing_says_what_made_each_folder_and_a_read_stamps_it(tmp_path, tokenizer):
    config, first = _prepare(tmp_path, tokenizer, "alpha", 5)
    _, second = _prepare(tmp_path, tokenizer, "beta", 7)
    _age(first.folder, 3)

    listed = json.loads(tunedeck("--json").stdout)
    assert listed["folder"] == str(cache_root())
    entries = {e["key"]: e for e in listed["prepared"]}
    assert [e["about"]["datasets"] for e in listed["prepared"]] == [["beta"], ["alpha"]]
    alpha = entries[first.folder.name]  # last used first, above
    assert alpha["examples"] == 5
    assert (alpha["about"]["template"], alpha["about"]["model"]) == ("llama3", "m/tiny")
    assert alpha["size"] > 0 and alpha["tokens"] == first.tokens

    again = prepare_dataset(config, tokenizer)  # a run reads it: used now
    assert again.from_cache
    assert time.time() - list_prepared()[0].used_at < 60
    assert list_prepared()[0].key == first.folder.name
    table = tunedeck()
    assert table.returncode == 0
    assert first.folder.name[:12] in table.stdout and "alpha" in table.stdout
    assert "2 in " in table.stderr and second.folder.name[:12] in table.stdout


def test_rm_takes_a_key_prefix_and_an_unknown_key_removes_nothing(tmp_path, tokenizer):
    _, first = _prepare(tmp_path, tokenizer, "alpha", 5)
    _, second = _prepare(tmp_path, tokenizer, "beta", 7)

    wrong = tunedeck("--rm", first.folder.name[:6], "--rm", "ffffffff")
    assert wrong.returncode == 2
    assert "'ffffffff' names no prepared data" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    assert first.folder.is_dir() and second.folder.is_dir()  # one bad key: nothing removed

    done = tunedeck("--rm", first.folder.name[:6])
    assert done.returncode == 0 and "removed 1 prepared data folder(s)" in done.stdout
    assert not first.folder.exists() and second.folder.is_dir()


def test_older_than_removes_only_what_no_run_read_since(tmp_path, tokenizer):
    _, old = _prepare(tmp_path, tokenizer, "alpha", 5)
    _, recent = _prepare(tmp_path, tokenizer, "beta", 7)
    _age(old.folder, 10)
    _age(recent.folder, 2)

    removed = json.loads(tunedeck("--older-than", "7", "--json").stdout)["removed"]
    assert [e["key"] for e in removed] == [old.folder.name]
    assert not old.folder.exists() and recent.folder.is_dir()


def test_a_dead_builds_partial_folder_is_listed_and_cleared_a_live_one_is_not(tmp_path, tokenizer):
    _, kept = _prepare(tmp_path, tokenizer, "alpha", 5)
    dead = subprocess.Popen(["true"])
    dead.wait()
    left = cache_root() / f".{'a' * 32}.{dead.pid}.partial"
    live = cache_root() / f".{'b' * 32}.{os.getpid()}.partial"
    for folder in (left, live):
        folder.mkdir()
        (folder / "rows.spool").write_bytes(b"x" * 10000)

    entries = json.loads(tunedeck("--json").stdout)["prepared"]
    assert {(e["key"], e["partial"]) for e in entries} == {
        (kept.folder.name, False),
        ("a" * 32, True),
    }
    assert tunedeck("--clear").returncode == 0
    assert not left.exists() and not kept.folder.exists()
    assert live.is_dir()  # still being written by its build


def test_two_ways_at_once_is_a_usage_error():
    done = tunedeck("--clear", "--older-than", "1")
    assert done.returncode == 2 and "give one of --rm, --older-than and --clear" in done.stderr
