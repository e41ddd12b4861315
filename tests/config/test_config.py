"""Run config loading and checking: located errors, overrides, and the CLI that prints them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tunedeck.core.config import ConfigInvalid, RunConfig, check_config, dump_config, load_config
from tunedeck.core.errors import ConfigError, UsageError

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "llamafactory-data"


@pytest.fixture()
def model_dir(tmp_path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


def write(tmp_path: Path, text: str, name: str = "run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def base(model_dir: Path, tmp_path: Path, **changes) -> str:
    values = {
        "model_name_or_path": str(model_dir),
        "stage": "sft",
        "dataset": "alpaca_en_demo",
        "dataset_dir": str(SHARED),
        "template": "llama3",
        "output_dir": str(tmp_path / "out"),
        "learning_rate": "1.0e-4",
    }
    values.update(changes)
    return "".join(f"{k}: {v}\n" for k, v in values.items())


def errors_of(path: Path, *overrides: str) -> dict[str, object]:
    check = check_config(path, overrides)
    return {p.key: p for p in check.errors}


def test_llamafactory_style_file_loads_with_its_types(tmp_path, model_dir):
    path = write(tmp_path, base(model_dir, tmp_path, num_train_epochs="3.0", lora_target="all"))
    config = load_config(path)
    assert config.learning_rate == pytest.approx(1e-4)  # "1.0e-4" is text in YAML 1.1
    assert config.num_train_epochs == 3.0 and config.lora_targets == ("all",)
    assert config.datasets == ("alpaca_en_demo",)


def test_unknown_key_names_its_line_and_suggests_the_right_one(tmp_path, model_dir):
    path = write(tmp_path, base(model_dir, tmp_path) + "lerning_rate: 0.1\n")
    problem = errors_of(path)["lerning_rate"]
    assert problem.location.line == 8 and problem.location.file == str(path)
    assert problem.hint == "did you mean 'learning_rate'?"
    assert str(problem).startswith(f"{path}, line 8, 'lerning_rate'")


def test_wrong_type_and_out_of_range_values_are_located(tmp_path, model_dir):
    path = write(tmp_path, base(model_dir, tmp_path, lora_rank=0, cutoff_len="long"))
    found = errors_of(path)
    assert "must be >= 1" in found["lora_rank"].message and found["lora_rank"].location.line == 8
    assert "whole number" in found["cutoff_len"].message and found["cutoff_len"].location.line == 9


def test_overrides_replace_file_values_and_are_located_on_the_command_line(tmp_path, model_dir):
    path = write(tmp_path, base(model_dir, tmp_path))
    config = load_config(path, ["learning_rate=3e-4", "bf16=true", "max_samples=null"])
    assert config.learning_rate == pytest.approx(3e-4) and config.bf16 is True
    problem = errors_of(path, "quantization_bit=3")["quantization_bit"]
    assert problem.location.file == "command line" and "4, 8" in problem.message
    with pytest.raises(UsageError):
        load_config(path, ["learning_rate"])


def test_dataset_missing_from_dataset_info_is_reported_with_a_suggestion(tmp_path, model_dir):
    path = write(tmp_path, base(model_dir, tmp_path, dataset="alpaca_en_dem"))
    problem = errors_of(path)["dataset"]
    assert "not in" in problem.message and problem.location.line == 3
    assert "alpaca_en_demo" in (problem.hint or "")


def test_unknown_template_is_an_error(tmp_path, model_dir):
    path = write(tmp_path, base(model_dir, tmp_path, template="llama9"))
    assert "unknown template" in errors_of(path)["template"].message


def test_dataset_kind_must_fit_the_stage(tmp_path, model_dir):
    dpo_on_sft = write(tmp_path, base(model_dir, tmp_path, stage="dpo"))
    assert "ranking" in errors_of(dpo_on_sft)["dataset"].message
    kto_on_ranking = write(tmp_path, base(model_dir, tmp_path, stage="kto", dataset="dpo_en_demo"))
    assert "kto_tag" in errors_of(kto_on_ranking)["dataset"].message
    assert check_config(
        write(tmp_path, base(model_dir, tmp_path, stage="dpo", dataset="dpo_en_demo"))
    ).ok


def test_kto_needs_two_examples_per_batch_for_its_kl_term(tmp_path, model_dir):
    kto = base(model_dir, tmp_path, stage="kto", dataset="kto_en_demo")
    assert check_config(write(tmp_path, kto), ["per_device_train_batch_size=2"]).ok
    problem = errors_of(write(tmp_path, kto), "per_device_train_batch_size=1")
    assert "at least 2" in problem["per_device_train_batch_size"].message


def test_output_dir_under_a_file_is_not_writable(tmp_path, model_dir):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    path = write(tmp_path, base(model_dir, tmp_path, output_dir=blocker / "out"))
    assert "is a file" in errors_of(path)["output_dir"].message


def test_existing_run_needs_overwrite_or_resume(tmp_path, model_dir):
    out = tmp_path / "out"
    out.mkdir()
    (out / "trainer_log.jsonl").write_text("")
    path = write(tmp_path, base(model_dir, tmp_path))
    assert "already holds a run" in errors_of(path)["output_dir"].message
    assert check_config(path, ["overwrite_output_dir=true"]).ok
    assert (
        "no checkpoint"
        in errors_of(path, "resume_from_checkpoint=true")["resume_from_checkpoint"].message
    )
    (out / "checkpoint-4").mkdir()
    assert check_config(path, ["resume_from_checkpoint=true"]).ok


def test_json_configs_and_yaml_syntax_errors(tmp_path, model_dir):
    doc = {
        "model_name_or_path": str(model_dir),
        "dataset": "alpaca_en_demo",
        "dataset_dir": str(SHARED),
        "template": "llama3",
        "output_dir": str(tmp_path / "o"),
        "lora_rank": 16,
    }
    assert load_config(write(tmp_path, json.dumps(doc, indent=2), "run.json")).lora_rank == 16
    broken = write(tmp_path, "stage: sft\nlora_rank: [1,\n", "broken.yaml")
    with pytest.raises(ConfigError) as caught:
        load_config(broken)
    assert caught.value.location.line is not None


def test_key_given_twice_is_an_error(tmp_path, model_dir):
    path = write(tmp_path, base(model_dir, tmp_path) + "learning_rate: 0.1\n")
    assert "given twice" in errors_of(path)["learning_rate"].message


def test_dumped_config_loads_back_identically(tmp_path, model_dir):
    config = load_config(write(tmp_path, base(model_dir, tmp_path, quantization_bit=4)))
    again = load_config(dump_config(config, tmp_path / "snapshot.yaml"))
    assert again == config and isinstance(again, RunConfig)


def test_load_config_raises_with_every_problem(tmp_path, model_dir):
    path = write(tmp_path, base(model_dir, tmp_path, lora_rank=0, warmup_ratio=2))
    with pytest.raises(ConfigInvalid) as caught:
        load_config(path)
    assert {p.key for p in caught.value.problems} == {"lora_rank", "warmup_ratio"}


def test_export_purpose_needs_export_dir_and_calibration_data(tmp_path, model_dir):
    path = write(tmp_path, f"model_name_or_path: {model_dir}\nexport_quantization_bit: 4\n")
    found = {p.key for p in check_config(path, purpose="export").errors}
    assert found == {"export_dir", "export_quantization_dataset"}
    good = check_config(
        path,
        [
            f"export_dir={tmp_path / 'q'}",
            "export_quantization_dataset=alpaca_en_demo",
            f"dataset_dir={SHARED}",
        ],
        purpose="export",
    )
    assert good.ok


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tunedeck.tui", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_config_check_cli_prints_located_errors_and_exits_1(tmp_path, model_dir):
    path = write(tmp_path, base(model_dir, tmp_path) + "lerning_rate: 0.1\n")
    result = _cli("config", "check", str(path))
    assert result.returncode == 1
    assert "line 8, 'lerning_rate': unknown key" in result.stderr
    assert "did you mean 'learning_rate'?" in result.stderr and "Traceback" not in result.stderr


def test_config_check_cli_json_and_resolved_output(tmp_path, model_dir):
    path = write(tmp_path, base(model_dir, tmp_path))
    result = _cli("config", "check", str(path), "lora_rank=4", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["ok"] and document["config"]["lora_rank"] == 4
    plain = _cli("config", "check", str(path))
    assert plain.returncode == 0 and "learning_rate: 0.0001" in plain.stdout


def test_train_cli_rejects_a_bad_config_without_importing_torch(tmp_path, model_dir):
    path = write(tmp_path, base(model_dir, tmp_path, stage="dpo"))
    code = (
        "import sys; from tunedeck.tui.cli import main; rc = main(sys.argv[1:]); "
        "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(rc)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "train", str(path)], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 1, result.stderr
    assert "line 3, 'dataset'" in result.stderr and "ranking" in result.stderr


def test_missing_config_file_is_a_located_error(tmp_path):
    result = _cli("train", str(tmp_path / "nope.yaml"))
    assert result.returncode == 1 and "config file not found" in result.stderr
