"""The prepared-data cache: the same examples as the in-memory encoding, read back on a second
run, rebuilt when any input changes or the folder is damaged, tokenized_path saved and loaded."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from tunedeck.core.config import RunConfig
from tunedeck.core.errors import TunedeckError
from tunedeck.core.runners.encode import PREPROCESSING_BATCH, encode_dataset
from tunedeck.core.runners.prepared import META_FILE, cache_key, prepare_dataset
from tunedeck.core.templates import load_tokenizer

REPO = Path(__file__).resolve().parents[2]
TOKENIZER_DIR = REPO / "tests" / "fixtures" / "tokenizer"
TEMPLATE = "llama3"
# the demo datasets through every stage, packing and mixing
CASES = {
    "sft-val": {"stage": "sft", "dataset": "alpaca_en_demo", "val_size": 0.1},
    "sft-packed": {"stage": "sft", "dataset": "alpaca_en_demo", "packing": True},
    "sft-neat": {"stage": "sft", "dataset": "alpaca_en_demo", "neat_packing": True},
    "pt": {"stage": "pt", "dataset": "c4_demo", "cutoff_len": 128},
    "dpo": {"stage": "dpo", "dataset": "dpo_en_demo"},
    "kto": {"stage": "kto", "dataset": "kto_en_demo", "cutoff_len": 256},
    "mix-concat": {"stage": "sft", "dataset": "alpaca_en_demo,identity"},
    "mix-over": {
        "stage": "sft",
        "dataset": "alpaca_en_demo,identity",
        "mix_strategy": "interleave_over",
        "interleave_probs": "0.3,0.7",
    },
    "eval-dataset": {"stage": "sft", "dataset": "identity", "eval_dataset": "alpaca_en_demo"},
}


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(TOKENIZER_DIR, TEMPLATE)


def _config(data_dir: Path, **keys) -> RunConfig:
    return RunConfig(
        **{"template": TEMPLATE, "dataset_dir": str(data_dir), "max_samples": 60, **keys}
    )


def _rows(dataset) -> list[dict]:
    return [dict(row) for row in dataset] if dataset is not None else []


@pytest.mark.parametrize("name", sorted(CASES))
def test_prepared_data_equals_the_in_memory_encoding(name, shared_data, tokenizer):
    config = _config(shared_data, **CASES[name])
    expected = encode_dataset(config, tokenizer)
    prepared = prepare_dataset(config, tokenizer)
    assert not prepared.from_cache
    assert _rows(prepared.train) == expected.train
    assert _rows(prepared.eval) == (expected.eval or [])
    assert prepared.tokens == expected.tokens


def test_two_workers_give_the_same_examples_in_the_same_order(tmp_path, tokenizer):
    rows = [{"instruction": f"question {n}", "output": f"answer {n}"} for n in range(2500)]
    folder = _data_folder(tmp_path, rows)
    config = _config(folder, stage="sft", dataset="d", max_samples=None, packing=True)
    single = prepare_dataset(config, tokenizer)
    twice = replace(config, preprocessing_num_workers=2, overwrite_cache=True)
    double = prepare_dataset(twice, tokenizer)
    assert len(single.train) > PREPROCESSING_BATCH // 10
    assert _rows(double.train) == _rows(single.train) == encode_dataset(config, tokenizer).train


def test_a_second_run_reads_the_cache_without_encoding_again(tmp_path, tokenizer):
    config = _config(_data_folder(tmp_path, _alpaca(30)), stage="sft", dataset="d")
    lines: list[str] = []
    first = prepare_dataset(config, tokenizer, lambda _phase, message, **_: lines.append(message))
    arrow = first.folder / "train.arrow"
    written = arrow.stat().st_mtime_ns
    second = prepare_dataset(config, tokenizer, lambda _phase, message, **_: lines.append(message))
    assert (first.from_cache, second.from_cache) == (False, True)
    assert second.folder == first.folder and arrow.stat().st_mtime_ns == written
    assert any("rows/s" in line for line in lines)
    assert lines[-1].startswith("prepared data read from")
    assert _rows(second.train) == _rows(first.train)


@pytest.mark.parametrize(
    "change",
    [
        "data",
        "mtime",
        "template",
        "cutoff_len",
        "train_on_prompt",
        "packing",
        "thinking",
        "tokenizer",
    ],
)
def test_a_change_in_any_input_misses_the_cache(change, tmp_path, tokenizer):
    folder = _data_folder(tmp_path, _alpaca(30))
    config = _config(folder, stage="sft", dataset="d")
    before = cache_key(config, tokenizer)
    other_tokenizer = tokenizer
    if change == "data":
        stat = (folder / "d.json").stat()  # same size, same mtime: only the content differs
        text = (folder / "d.json").read_text().replace('"answer 7"', '"answer X"')
        (folder / "d.json").write_text(text)
        assert (folder / "d.json").stat().st_size == stat.st_size
        os.utime(folder / "d.json", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    elif change == "mtime":
        stat = (folder / "d.json").stat()
        os.utime(folder / "d.json", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    elif change == "template":
        config = replace(config, template="qwen")
    elif change == "cutoff_len":
        config = replace(config, cutoff_len=512)
    elif change == "train_on_prompt":
        config = replace(config, train_on_prompt=True)
    elif change == "packing":
        config = replace(config, packing=True)
    elif change == "thinking":
        config = replace(config, enable_thinking=not config.enable_thinking)
    else:
        other_tokenizer = load_tokenizer(TOKENIZER_DIR, TEMPLATE)
        other_tokenizer.add_tokens(["<extra_token>"])
    assert cache_key(config, other_tokenizer) != before


def test_tokenized_path_is_saved_then_loaded_as_it_is(tmp_path, tokenizer):
    saved = tmp_path / "tokenized"
    config = _config(
        _data_folder(tmp_path, _alpaca(20)), stage="sft", dataset="d", tokenized_path=str(saved)
    )
    first = prepare_dataset(config, tokenizer)
    assert first.folder == saved and (saved / META_FILE).is_file() and not first.from_cache
    # LLaMA-Factory's meaning: an existing tokenized_path is loaded, whatever the data says now
    (tmp_path / "data" / "d.json").write_text(json.dumps(_alpaca(5)))
    second = prepare_dataset(config, tokenizer)
    assert second.from_cache and len(second.train) == len(first.train) == 20


def test_tokenized_path_never_replaces_a_folder_of_other_files(tmp_path, tokenizer):
    saved = tmp_path / "mine"
    saved.mkdir()
    (saved / "notes.txt").write_text("keep me")
    config = _config(
        _data_folder(tmp_path, _alpaca(5)), stage="sft", dataset="d", tokenized_path=str(saved)
    )
    with pytest.raises(TunedeckError, match="holds other files"):
        prepare_dataset(config, tokenizer)
    assert (saved / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("damage", ["truncated", "no-meta", "bad-meta"])
def test_a_damaged_cache_is_rebuilt_not_trusted(damage, tmp_path, tokenizer):
    config = _config(_data_folder(tmp_path, _alpaca(40)), stage="sft", dataset="d")
    first = prepare_dataset(config, tokenizer)
    arrow, meta = first.folder / "train.arrow", first.folder / META_FILE
    if damage == "truncated":
        arrow.write_bytes(arrow.read_bytes()[: arrow.stat().st_size // 2])
    elif damage == "no-meta":
        meta.unlink()
    else:
        meta.write_text("{not json")
    again = prepare_dataset(config, tokenizer)
    assert not again.from_cache
    assert _rows(again.train) == encode_dataset(config, tokenizer).train


def _alpaca(count: int) -> list[dict]:
    return [{"instruction": f"question {n}", "output": f"answer {n}"} for n in range(count)]


def _data_folder(tmp_path: Path, rows: list[dict]) -> Path:
    folder = tmp_path / "data"
    folder.mkdir(exist_ok=True)
    (folder / "d.json").write_text(json.dumps(rows))
    (folder / "dataset_info.json").write_text(json.dumps({"d": {"file_name": "d.json"}}))
    return folder


# The runner's stop handlers are installed before the data is prepared; forked workers must not
# keep them, or closing the pool waits on workers that ignore SIGTERM.
UNDER_STOP_HANDLERS = """
import signal, sys
from tunedeck.core.config import RunConfig
from tunedeck.core.runners.prepared import prepare_dataset
from tunedeck.core.templates import load_tokenizer
signal.signal(signal.SIGTERM, lambda *_: None)
tokenizer_dir, data_dir = sys.argv[1:3]
config = RunConfig(template="llama3", dataset_dir=data_dir, dataset="d", preprocessing_num_workers=2)
print(len(prepare_dataset(config, load_tokenizer(tokenizer_dir, "llama3")).train))
"""


def test_workers_finish_under_the_runners_stop_handlers(tmp_path):
    import subprocess
    import sys

    folder = _data_folder(tmp_path, _alpaca(PREPROCESSING_BATCH + 200))
    done = subprocess.run(
        [sys.executable, "-c", UNDER_STOP_HANDLERS, str(TOKENIZER_DIR), str(folder)],
        capture_output=True,
        text=True,
        timeout=600,  # a guard against the hang, not a timing assertion
        env={**os.environ},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == str(PREPROCESSING_BATCH + 200)


# A second rank of a torchrun node: it waits for the first rank's build and reads it.
OTHER_RANK = """
import sys
from tunedeck.core.config import RunConfig
from tunedeck.core.runners.prepared import prepare_dataset
from tunedeck.core.templates import load_tokenizer
tokenizer_dir, data_dir = sys.argv[1:3]
config = RunConfig(template="llama3", dataset_dir=data_dir, dataset="d")
say = lambda phase, message, **_: print(message, flush=True)
prepared = prepare_dataset(config, load_tokenizer(tokenizer_dir, "llama3"), say)
print("examples", len(prepared.train), "from cache", prepared.from_cache, flush=True)
"""


def test_a_second_local_rank_waits_for_the_first_ranks_build(tmp_path, tokenizer):
    import subprocess
    import sys

    folder = _data_folder(tmp_path, _alpaca(40))
    other = subprocess.Popen(
        [sys.executable, "-c", OTHER_RANK, str(TOKENIZER_DIR), str(folder)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "LOCAL_RANK": "1"},
    )
    try:
        assert "waiting for local rank 0" in other.stdout.readline()
        assert other.poll() is None  # it waits: nothing is built yet
        built = prepare_dataset(
            _config(folder, stage="sft", dataset="d", max_samples=None), tokenizer
        )
        out, _ = other.communicate(timeout=120)
    finally:
        other.kill()
    assert not built.from_cache
    assert out.strip().splitlines()[-1] == "examples 40 from cache True"
