"""`tunedeck runs compare`: the text tables and the --json document, from the real CLI."""

from __future__ import annotations

import json

from jobs_helpers import cli
from test_compare import add_job, steps, write_log


def _two_runs(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_log(a, steps(1, 8, lambda s: round(2.0 - s * 0.1, 4), tokens_per_step=64))
    write_log(b, steps(1, 8, lambda s: round(2.5 - s * 0.2, 4)))
    add_job("alpha1", "alpha", a, config={"learning_rate": 1e-4, "lora_rank": 8}, ran=65)
    add_job("beta22", "beta", b, at=100, config={"learning_rate": 3e-4, "lora_rank": 8})


def test_compare_prints_final_metrics_the_keys_that_differ_and_the_curves(tmp_path):
    _two_runs(tmp_path)

    done = cli("runs", "compare", "alpha1", "beta22")

    lines = done.stdout.splitlines()
    assert lines[0] == "2 runs compared by step"
    final = next(line for line in lines if line.startswith("alpha "))
    assert final.split()[:7] == ["alpha", "alpha1", "local", "succeeded", "8", "512", "1.2000"]
    assert final.split()[-1] == "0:01:05"
    key_row = next(line for line in lines if line.startswith("learning_rate"))
    assert key_row.split() == ["learning_rate", "0.0001", "0.0003"]
    assert not any(line.startswith("lora_rank") for line in lines)  # the same in both
    assert "loss by step:" in lines
    curve = next(line for line in lines if line.startswith("beta ") and "▁" in line)
    assert curve.split()[-3:] == ["0.9000", "@", "8"]  # its minimum and where
    assert "more key(s) the same" in done.stderr


def test_compare_by_tokens_says_which_run_counts_no_tokens(tmp_path):
    _two_runs(tmp_path)

    done = cli("runs", "compare", "alpha1", "beta22", "--by", "tokens")

    assert "loss by tokens:" in done.stdout
    assert any(line.split()[:2] == ["beta", "(none)"] for line in done.stdout.splitlines())
    assert "beta: its log counts no tokens seen (num_input_tokens_seen)" in done.stderr


def test_compare_json_is_the_same_document(tmp_path):
    _two_runs(tmp_path)

    doc = json.loads(cli("runs", "compare", "alpha1", "beta22", "--json", "--by", "tokens").stdout)

    assert doc["by"] == "tokens"
    alpha, beta = doc["runs"]
    assert alpha["ids"] == ["alpha1"] and alpha["has_tokens"] and not beta["has_tokens"]
    assert alpha["series"]["loss"][-1] == [512.0, 1.2]
    assert beta["series"]["loss"] == []
    assert beta["final"]["steps"] == 8 and beta["final"]["last_loss"] == 0.9
    assert doc["config_diff"]["keys"] == [{"key": "learning_rate", "values": [1e-4, 3e-4]}]
    assert any("beta" in note for note in doc["notes"])


def test_compare_of_one_run_or_a_bad_axis_fails_without_a_traceback(tmp_path):
    _two_runs(tmp_path)

    one = cli("runs", "compare", "alpha1", check=False)
    assert one.returncode == 1
    assert "compare needs two or more" in one.stderr and "Traceback" not in one.stderr

    axis = cli("runs", "compare", "alpha1", "beta22", "--by", "time", check=False)
    assert axis.returncode == 2 and "--by takes step or tokens" in axis.stderr


def test_compare_writes_hostile_names_out(tmp_path):
    write_log(tmp_path / "a", steps(1, 3, lambda s: 1.0 / s))
    write_log(tmp_path / "b", steps(1, 3, lambda s: 2.0 / s))
    add_job("evil01", "\x1b]0;pwned\x07x", tmp_path / "a", config={"learning_rate": 1e-4})
    add_job("evil02", "[red]b", tmp_path / "b", at=5, config={"learning_rate": 2e-4})

    done = cli("runs", "compare", "evil01", "evil02")

    assert "\x1b" not in done.stdout + done.stderr
    key_header = next(line for line in done.stdout.splitlines() if line.startswith("KEY"))
    assert key_header.split() == ["KEY", "\\x1b]0;pwned\\x07x", "[red]b"]
