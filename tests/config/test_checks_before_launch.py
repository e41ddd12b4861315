"""Checks before launch, from the command line and in core: the template check in
`config check` (text and --json) and the datasets' check on launch (dropped and truncated rows)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
EXAMPLE_DATA = REPO / "examples" / "workspace" / "data"


def model_with_tokenizer(tmp_path: Path, tokenizer: str) -> Path:
    """A model folder: a tiny config.json and one of the fixture tokenizers."""
    folder = tmp_path / f"model-{tokenizer}"
    shutil.copytree(FIXTURES / tokenizer, folder)
    shutil.copy(FIXTURES / "model_configs" / "tiny-llama.json", folder / "config.json")
    return folder


def run_config(tmp_path: Path, model: Path, template: str, **changes) -> Path:
    values = {
        "model_name_or_path": str(model),
        "stage": "sft",
        "dataset": "demo_alpaca",
        "dataset_dir": str(EXAMPLE_DATA),
        "template": template,
        "output_dir": str(tmp_path / "out"),
        **changes,
    }
    path = tmp_path / "run.yaml"
    path.write_text("".join(f"{k}: {v}\n" for k, v in values.items()))
    return path


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tunedeck.tui", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
    )


def test_config_check_warns_when_the_template_differs_from_the_chat_template(tmp_path):
    path = run_config(tmp_path, model_with_tokenizer(tmp_path, "tokenizer_llama3"), "default")
    result = cli("config", "check", str(path))
    assert result.returncode == 0, result.stderr  # a warning, not an error
    assert "warning:" in result.stderr
    assert "'template': template 'default' differs from the tokenizer's chat_template" in (
        result.stderr
    )
    assert "hint: use template: llama3" in result.stderr


def test_config_check_json_lists_the_template_warning(tmp_path):
    path = run_config(tmp_path, model_with_tokenizer(tmp_path, "tokenizer_qwen2"), "llama3")
    document = json.loads(cli("config", "check", str(path), "--json").stdout)
    [warning] = [p for p in document["problems"] if p["key"] == "template"]
    assert warning["severity"] == "warning" and warning["hint"] == "use template: qwen"
    assert "at character 2" in warning["message"]


def test_config_check_is_quiet_when_the_template_matches(tmp_path):
    path = run_config(tmp_path, model_with_tokenizer(tmp_path, "tokenizer_qwen2"), "qwen")
    document = json.loads(cli("config", "check", str(path), "--json").stdout)
    assert not [p for p in document["problems"] if p["key"] == "template"]
    assert document["ok"] is True


@pytest.mark.parametrize("template", ["default", "llama3"])
def test_a_model_without_a_tokenizer_is_not_template_checked(tmp_path, template):
    folder = tmp_path / "bare"
    folder.mkdir()
    shutil.copy(FIXTURES / "model_configs" / "tiny-llama.json", folder / "config.json")
    document = json.loads(cli("config", "check", str(run_config(tmp_path, folder, template)),
                              "--json").stdout)  # fmt: skip
    assert not [p for p in document["problems"] if p["key"] == "template"]


# -- the datasets' check on launch (core) -------------------------------------------------------

TINY_MODEL = REPO / "examples" / "workspace" / "models" / "tiny"


def launch_config(data_dir: Path, dataset: str, model: Path | str, **changes):
    from tunedeck.core.config import load_config

    values = {
        "model_name_or_path": str(model),
        "dataset": dataset,
        "dataset_dir": str(data_dir),
        "template": "default",
        "output_dir": "unused",
        **changes,
    }
    return load_config(None, [f"{k}={v}" for k, v in values.items()], check_files=False)


def test_truncated_rows_are_those_data_lengths_counts_over_cutoff_len():
    from tunedeck.core.config.launch_check import check_launch_data

    config = launch_config(EXAMPLE_DATA, "demo_alpaca,demo_sharegpt", TINY_MODEL, cutoff_len=40)
    steps = []
    check = check_launch_data(config, progress=lambda *step: steps.append(step))
    for one in check.datasets:
        lengths = cli(
            "data", "lengths", one.dataset, "--dir", str(EXAMPLE_DATA), "--tokenizer",
            str(TINY_MODEL), "-t", "default", "--cutoff-len", "40", "--json",
        )  # fmt: skip
        summary = json.loads(lengths.stdout)
        assert one.truncated == summary["truncated_rows"] > 0
        assert one.longest == summary["max"] and one.dropped == 0
    assert check.truncated == sum(d.truncated for d in check.datasets)
    assert check.first_row() == ("demo_alpaca", check.datasets[0].first_truncated, "truncated")
    assert {step[0] for step in steps} >= {"validate"}


def test_the_first_dropped_row_is_indexed_over_every_file_of_the_entry(tmp_path):
    from tunedeck.core.config.launch_check import check_launch_data
    from tunedeck.core.datasets import get_row, load_dataset_info

    folder = tmp_path / "data"
    (folder / "parts").mkdir(parents=True)
    row = json.dumps({"instruction": "hi", "input": "", "output": "hello"})
    (folder / "parts" / "a.jsonl").write_text("\n".join([row] * 3) + "\n")
    (folder / "parts" / "b.jsonl").write_text(row + '\n{"instruction": \n' + row + "\n")
    (folder / "dataset_info.json").write_text(json.dumps({"parts": {"file_name": "parts"}}))
    check = check_launch_data(launch_config(folder, "parts", tmp_path / "no-model"))
    [parts] = check.datasets
    assert (parts.rows, parts.dropped, parts.first_dropped) == (6, 1, 4)
    assert parts.truncated is None and check.tokenizer is None  # no tokenizer: not counted
    info = load_dataset_info(folder)
    assert get_row(info.specs["parts"], folder, 4).conversation is None  # the very row
    assert check.first_row() == ("parts", 4, "dropped")


def test_a_dataset_that_is_not_in_dataset_info_is_said_not_raised():
    from tunedeck.core.config.launch_check import check_launch_data

    check = check_launch_data(launch_config(EXAMPLE_DATA, "no_such_set", TINY_MODEL))
    assert check.datasets[0].error == "not in dataset_info.json" and check.problems
