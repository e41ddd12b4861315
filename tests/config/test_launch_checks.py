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
