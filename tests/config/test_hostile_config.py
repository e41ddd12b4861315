"""Hostile configs: alias bombs, huge files, floods of unknown keys and huge values stay cheap,
located and short (`tunedeck config check` run as a user runs it, under a memory limit)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tunedeck.core.config import check_config
from tunedeck.core.config.loader import MAX_CONFIG_BYTES, SHOWN_PROBLEMS
from tunedeck.core.errors import ConfigError, shorten

# The CLI imports in well under this; a bomb that is expanded needs gigabytes.
MEMORY_LIMIT = 1 << 30

_LIMITED = (
    "import resource, runpy, sys; "
    f"resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT}, {MEMORY_LIMIT})); "
    "sys.argv = ['tunedeck', *sys.argv[1:]]; "
    "runpy.run_module('tunedeck.tui', run_name='__main__')"
)


def _check_cli(*args: str) -> subprocess.CompletedProcess:
    """`tunedeck config check ARGS` in a process that may use at most MEMORY_LIMIT."""
    return subprocess.run(
        [sys.executable, "-c", _LIMITED, "config", "check", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _laughs() -> list[str]:
    """Nine anchors, each nine aliases of the one before: 9**9 strings once expanded."""
    anchors = ['&a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        anchors.append(f"&{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    return anchors


def _billion_laughs() -> str:
    lines = [f"{anchor[1]}: {anchor}" for anchor in _laughs()]
    return "\n".join(lines) + "\nlora_rank: *i\n"


def test_alias_bomb_is_refused_at_its_key_naming_the_alias(tmp_path, record_property):
    path = tmp_path / "bomb.yaml"
    path.write_text(_billion_laughs())
    started = time.perf_counter()
    result = _check_cli(str(path))
    record_property("seconds", round(time.perf_counter() - started, 2))
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr
    first = result.stderr.splitlines()[0]
    assert "bomb.yaml, line 5, 'e'" in first
    assert "expands YAML aliases to more than 10,000 values" in first
    assert "the alias *d, anchored on line 4, used 9 times" in first
    assert len(result.stderr) < 1000


def test_alias_bomb_into_a_known_key_only(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text("lora_target: [" + ", ".join(_laughs()) + "]\nlora_rank: *i\n")
    result = _check_cli(str(path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "line 1, 'lora_target'" in result.stderr
    assert "expands YAML aliases" in result.stderr


def test_value_that_contains_itself_is_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("model_name_or_path: m\nlora_target: &t [q_proj, *t]\n")
    with pytest.raises(ConfigError) as caught:
        check_config(path)
    assert caught.value.location.line == 2 and caught.value.location.column == "lora_target"
    assert "refers to itself through a YAML alias" in caught.value.message


def test_aliases_a_real_config_uses_still_work(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("lora_rank: &r 16\nlora_alpha: *r\nlora_target: &t [q_proj, v_proj]\n")
    check = check_config(path, check_files=False)
    assert check.config is None or check.config.lora_alpha == 16
    assert not [p for p in check.problems if "alias" in p.message]


def test_flood_of_unknown_keys_lists_fifty_and_counts_the_rest(tmp_path, record_property):
    path = tmp_path / "unknown.yaml"
    keys = 20_000
    path.write_text("".join(f"unknown_key_{i}: value_{i}\n" for i in range(keys)))
    started = time.perf_counter()
    result = _check_cli(str(path))
    record_property("seconds", round(time.perf_counter() - started, 2))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) <= 2 * SHOWN_PROBLEMS + 1
    assert lines[0].startswith("error: ") and "line 1, 'unknown_key_0': unknown key" in lines[0]
    assert lines[-1].startswith(f"... and {keys - SHOWN_PROBLEMS:,} more problems")
    assert f"{keys:,} in all" in lines[-1]


def test_json_lists_fifty_problems_with_the_full_count(tmp_path):
    path = tmp_path / "unknown.yaml"
    path.write_text("".join(f"unknown_key_{i}: 1\n" for i in range(300)))
    document = json.loads(_check_cli(str(path), "--json").stdout)
    assert document["problem_count"] == 300
    assert len(document["problems"]) == SHOWN_PROBLEMS
    everything = json.loads(_check_cli(str(path), "--json", "--max-problems", "0").stdout)
    assert len(everything["problems"]) == 300


def test_max_problems_zero_lists_every_problem(tmp_path):
    path = tmp_path / "unknown.yaml"
    path.write_text("".join(f"unknown_key_{i}: 1\n" for i in range(120)))
    result = _check_cli(str(path), "--max-problems", "0")
    assert sum(line.startswith("error: ") for line in result.stderr.splitlines()) == 120
    assert "more problem" not in result.stderr


def test_config_over_the_size_limit_is_refused_unread(tmp_path, record_property):
    path = tmp_path / "huge.yaml"
    with path.open("w") as handle:  # the 10 MB of unknown keys that once printed 108,129 lines
        for i in range(10 * MAX_CONFIG_BYTES // 12):
            handle.write(f"k{i:07d}: v\n")
    started = time.perf_counter()
    result = _check_cli(str(path))
    record_property("seconds", round(time.perf_counter() - started, 2))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "huge.yaml: is 10.0 MiB; a run config may be at most 1 MiB" in result.stderr
    assert len(result.stderr.splitlines()) == 2


def test_megabyte_value_is_shortened_in_the_message(tmp_path):
    path = tmp_path / "long.yaml"
    path.write_text('lora_rank: "' + "x" * 500_000 + '"\n')
    result = _check_cli(str(path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "long.yaml, line 1, 'lora_rank': expected a whole number, got 'xxx" in result.stderr
    assert len(result.stderr) < 400


def test_number_with_thousands_of_digits_is_located(tmp_path):
    path = tmp_path / "digits.yaml"
    path.write_text("stage: sft\nlora_rank: 1" + "0" * 5000 + "\n")
    result = _check_cli(str(path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "digits.yaml, line 2, 'lora_rank': cannot read this value" in result.stderr


def test_invalid_utf8_config_names_the_byte_and_line(tmp_path):
    path = tmp_path / "bytes.yaml"
    path.write_bytes(b"stage: sft\ntemplate: ll\xffama3\n")
    result = _check_cli(str(path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "bytes.yaml, line 2: not valid UTF-8: byte 0xff at byte offset 23" in result.stderr


def test_deeply_nested_value_is_an_error_not_a_crash(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("lora_rank: " + "[" * 50_000 + "]" * 50_000 + "\n")
    result = _check_cli(str(path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "deep.yaml" in result.stderr


def test_shorten_never_builds_the_whole_value():
    laughs: list = ["lol"] * 9
    for _ in range(12):  # 9**13 strings: far too many to repr
        laughs = [laughs] * 9
    assert len(shorten(laughs)) <= 80
    assert len(shorten("x" * 10**7)) <= 80 and "..." in shorten("x" * 10**7)
    assert shorten(10**5000) == "<an integer of about 5000 digits>"
    assert shorten("fast") == "'fast'"


def test_alias_bomb_in_an_override_is_refused(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("stage: sft\n")
    bomb = "[" + ", ".join(_laughs()) + "]"
    result = _check_cli(str(path), f"dataset={bomb}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "command line, 'dataset': override 'dataset' expands YAML aliases" in result.stderr
    assert len(result.stderr) < 600


def test_json_check_of_an_unreadable_file_is_one_json_document(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(_billion_laughs())
    result = _check_cli(str(path), "--json")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    document = json.loads(result.stdout)
    assert document["ok"] is False and document["problem_count"] == 1
    (problem,) = document["problems"]
    assert (problem["line"], problem["key"]) == (5, "e")
    assert "expands YAML aliases" in problem["message"]
