"""`tunedeck data lengths`: figures that match rendering, a progress bar only on a terminal."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys

from tunedeck.core.datasets import iter_conversations, load_dataset_info
from tunedeck.core.templates import NO_CUTOFF, load_tokenizer, render

from .conftest import TOKENIZER_DIR


def _lengths_argv(shared_data, *extra):
    return [
        sys.executable, "-m", "tunedeck.tui", "data", "lengths", "identity",
        "--dir", str(shared_data), "-t", "llama3", "--tokenizer", str(TOKENIZER_DIR), *extra,
    ]  # fmt: skip


def test_lengths_figures_match_rendered_rows(shared_data):
    info = load_dataset_info(shared_data)
    tokenizer = load_tokenizer(TOKENIZER_DIR, "llama3")
    lengths = sorted(
        len(render(conv, "llama3", tokenizer=tokenizer, cutoff_len=NO_CUTOFF).input_ids)
        for conv in iter_conversations(info.get("identity"), info.data_dir)
    )
    cutoff = lengths[len(lengths) // 2]
    result = subprocess.run(
        _lengths_argv(shared_data, "--cutoff-len", str(cutoff), "--json"),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["rows"] == len(lengths)
    assert (doc["min"], doc["max"]) == (lengths[0], lengths[-1])
    assert doc["median"] == lengths[len(lengths) // 2]
    assert doc["p95"] == lengths[int(len(lengths) * 0.95)]
    assert doc["truncated_rows"] == sum(1 for n in lengths if n > cutoff)
    for bucket in doc["histogram"]:
        inside = sum(1 for n in lengths if bucket["low"] <= n < bucket["high"])
        assert bucket["rows"] == inside
    assert result.stderr == ""  # no progress bar when stderr is not a terminal


def test_lengths_shows_progress_on_a_terminal_and_keeps_stdout_clean(shared_data):
    leader, follower = pty.openpty()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "100"}
    process = subprocess.Popen(
        _lengths_argv(shared_data, "--json"), stdout=subprocess.PIPE, stderr=follower, env=env
    )
    os.close(follower)
    shown = b""
    while True:  # read while it runs, so a full terminal buffer never blocks it
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    stdout = process.stdout.read()
    process.stdout.close()
    assert process.wait() == 0
    assert json.loads(stdout)["rows"] > 0
    assert b"counting tokens" in shown
