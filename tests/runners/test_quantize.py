"""The export runner: real GPTQ quantization of the tiny model on the CPU, run as a real process."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tunedeck.core.config import load_config
from tunedeck.core.errors import DatasetError
from tunedeck.core.runners import progress

REPO = Path(__file__).resolve().parents[2]
WORKSPACE = REPO / "examples" / "workspace"
GPTQ_CONFIG = WORKSPACE / "configs" / "tiny_gptq_4bit.yaml"
# GPTQModel compiles two small C++ CPU extensions (cached under ~/.cache/gptqmodel) the first time
# it packs and loads a model: on a fresh 2-core machine that adds minutes to the first test.
COLD_START_TIMEOUT = 900

LOAD_AND_GENERATE = """
import json, sys
from gptqmodel import GPTQModel
from transformers import AutoTokenizer
folder = sys.argv[1]
tokenizer = AutoTokenizer.from_pretrained(folder)
model = GPTQModel.load(folder, device="cpu")
prompt = tokenizer("What colour is the sky?", return_tensors="pt")
out = model.generate(**prompt, max_new_tokens=8, do_sample=False, min_new_tokens=8)
layer = model.model.model.layers[0].self_attn.q_proj
print(json.dumps({"new_tokens": out.shape[1] - prompt["input_ids"].shape[1],
                  "text": tokenizer.decode(out[0]), "layer": type(layer).__name__}))
"""


@pytest.fixture(scope="module")
def python_with_gptq() -> str:
    """This venv's python; the `gptq` extra is part of the test environment, so it must import."""
    if importlib.util.find_spec("gptqmodel") is None:
        pytest.fail(
            "gptqmodel is not installed in this environment: the quantization tests need the "
            "`gptq` extra (`make venv` installs it; or pip install -e '.[train,gptq,dev]')"
        )
    return sys.executable


def run_quantize(python: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [python, "-m", "tunedeck.core.runners.quantize", str(GPTQ_CONFIG), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


def load_and_generate(python: str, folder: Path) -> dict:
    done = subprocess.run(
        [python, "-c", LOAD_AND_GENERATE, str(folder)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def make_lora_adapter(base: Path, folder: Path) -> Path:
    """A LoRA adapter on the tiny model with non-zero weights, so merging changes the model."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base)
    lora = get_peft_model(
        model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"])
    )
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in lora.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.5)
    lora.save_pretrained(folder)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    return folder


@pytest.mark.slow
@pytest.mark.timeout(COLD_START_TIMEOUT)
def test_tiny_model_quantized_to_4_bits_from_alpaca_entry_loads_back_and_generates(
    python_with_gptq, tiny_model, tmp_path
):
    out = tmp_path / "gptq"
    relative_out = os.path.relpath(out, REPO)  # as in the example config: relative to the cwd
    done = run_quantize(
        python_with_gptq, f"model_name_or_path={tiny_model}", f"export_dir={relative_out}"
    )

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    status = progress.read_status(out)
    assert status["phase"] == "done"
    assert status["backend"].startswith("gptqmodel ")
    assert status["bits"] == 4 and status["samples"] == 8 and status["maxlen"] == 64
    assert "gptqmodel" in done.stdout
    quantize_config = json.loads((out / "quantize_config.json").read_text())
    assert quantize_config["bits"] == 4
    assert (out / "tokenizer.json").is_file() and (out / "model.safetensors").is_file()
    assert list((out / "logs").glob("gptq_log_*")) and not (REPO / "logs").exists()
    lines = progress.TrainerLog(out).read()
    # one line at the start, then one per quantized decoder layer (the tiny model has two)
    assert [line["current_steps"] for line in lines] == [0, 1, 2]
    assert lines[-1]["total_steps"] == 2

    loaded = load_and_generate(python_with_gptq, out)
    assert loaded["new_tokens"] == 8
    assert "Linear" in loaded["layer"] and loaded["layer"] != "Linear"  # a GPTQ kernel layer


@pytest.mark.slow
@pytest.mark.timeout(COLD_START_TIMEOUT)
def test_lora_merged_into_tiny_model_then_quantized_loads_back_and_generates(
    python_with_gptq, tiny_model, tmp_path
):
    adapter = make_lora_adapter(tiny_model, tmp_path / "adapter")
    out = tmp_path / "merged-gptq"
    done = run_quantize(
        python_with_gptq,
        f"model_name_or_path={tiny_model}",
        f"adapter_name_or_path={adapter}",
        f"export_dir={out}",
    )

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "[merging]" in done.stdout
    assert progress.read_status(out)["phase"] == "done"
    assert not (out / ".merged").exists()
    assert json.loads((out / "quantize_config.json").read_text())["bits"] == 4
    assert load_and_generate(python_with_gptq, out)["new_tokens"] == 8


@pytest.mark.slow
@pytest.mark.timeout(COLD_START_TIMEOUT)
def test_sigterm_while_quantizing_stops_at_once_with_status_cancelled(
    python_with_gptq, tiny_model, tmp_path
):
    out = tmp_path / "gptq"
    argv = [python_with_gptq, "-m", "tunedeck.core.runners.quantize", str(GPTQ_CONFIG)]
    runner = subprocess.Popen(
        [*argv, f"model_name_or_path={tiny_model}", f"export_dir={out}"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while runner.poll() is None:
            status = progress.read_status(out) or {}
            if status.get("phase") in ("calibrating", "quantizing"):
                runner.send_signal(signal.SIGTERM)
                break
            time.sleep(0.05)
        code = runner.wait(timeout=120)
    finally:
        if runner.poll() is None:
            runner.kill()

    assert code == progress.EXIT_CANCELLED_SIGTERM
    status = progress.read_status(out)
    assert status["phase"] == "cancelled" and "SIGTERM" in status["message"]


def test_merge_only_export_without_quantization_loads_with_transformers(tiny_model, tmp_path):
    adapter = make_lora_adapter(tiny_model, tmp_path / "adapter")
    out = tmp_path / "merged"
    done = run_quantize(
        sys.executable,
        f"model_name_or_path={tiny_model}",
        f"adapter_name_or_path={adapter}",
        f"export_dir={out}",
        "export_quantization_bit=null",
    )

    assert done.returncode == 0, done.stderr[-3000:]
    assert progress.read_status(out)["phase"] == "done"
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    name = "model.layers.0.self_attn.q_proj.weight"
    assert not merged.state_dict()[name].equal(base.state_dict()[name])
    assert "lora" not in " ".join(merged.state_dict())


def test_missing_gptq_backend_names_the_gptq_extra_without_traceback(tiny_model, tmp_path):
    blocker = tmp_path / "blocked"
    (blocker / "gptqmodel").mkdir(parents=True)
    (blocker / "gptqmodel" / "__init__.py").write_text("raise ImportError('not installed')\n")
    out = tmp_path / "gptq"
    done = run_quantize(
        sys.executable,
        f"model_name_or_path={tiny_model}",
        f"export_dir={out}",
        env={"PYTHONPATH": str(blocker)},
    )

    assert done.returncode == 1
    assert "gptqmodel" in done.stderr and "tunedeck[gptq]" in done.stderr
    assert "Traceback" not in done.stderr
    status = progress.read_status(out)
    assert status["phase"] == "failed" and "tunedeck[gptq]" in status["message"]


def test_too_few_calibration_samples_fail_with_the_numbers_and_a_hint(
    python_with_gptq, tiny_model, tmp_path
):
    out = tmp_path / "gptq"
    done = run_quantize(
        python_with_gptq,
        f"model_name_or_path={tiny_model}",
        f"export_dir={out}",
        "export_quantization_nsamples=500",
    )

    assert done.returncode == 1
    assert "too few calibration samples" in done.stderr and "500 are needed" in done.stderr
    assert "export_quantization_nsamples" in done.stderr and "Traceback" not in done.stderr
    assert progress.read_status(out)["phase"] == "failed"
    assert not (out / "model.safetensors").exists()


def test_unknown_calibration_dataset_is_a_config_error_naming_the_key(tiny_model, tmp_path):
    done = run_quantize(
        sys.executable,
        f"model_name_or_path={tiny_model}",
        f"export_dir={tmp_path / 'gptq'}",
        "export_quantization_dataset=demo_alpacca",
    )

    assert done.returncode == 1
    assert "export_quantization_dataset" in done.stderr and "demo_alpacca" in done.stderr
    assert "Traceback" not in done.stderr


# --- calibration samples (in process: no quantization needed) -----------------------------------


@pytest.fixture(autouse=True)
def in_repository(monkeypatch):
    """The example config's relative paths (dataset_dir) resolve from the repository root."""
    monkeypatch.chdir(REPO)


def export_config(tiny_model: Path, tmp_path: Path, **overrides):
    pairs = [f"model_name_or_path={tiny_model}", f"export_dir={tmp_path / 'out'}"]
    pairs += [f"{key}={value}" for key, value in overrides.items()]
    return load_config(GPTQ_CONFIG, pairs, purpose="export")


def samples_for(config) -> list[list[int]]:
    from tunedeck.core.runners.quantize import calibration_samples, load_export_tokenizer

    return calibration_samples(config, load_export_tokenizer(config))


@pytest.mark.parametrize("entry", ["demo_alpaca", "demo_sharegpt", "demo_preference", "demo_kto"])
def test_calibration_samples_from_any_dataset_kind_have_the_calibration_length(
    entry, tiny_model, tmp_path
):
    config = export_config(
        tiny_model, tmp_path, export_quantization_dataset=entry, export_quantization_nsamples=4
    )
    samples = samples_for(config)

    assert len(samples) == 4
    assert all(len(ids) == 64 for ids in samples)


def test_calibration_samples_are_the_same_for_the_same_seed(tiny_model, tmp_path):
    config = export_config(tiny_model, tmp_path)
    assert samples_for(config) == samples_for(config)
    other = export_config(tiny_model, tmp_path, seed=7)
    assert samples_for(other) != samples_for(config)


@pytest.mark.parametrize(
    ("name", "rows"),
    [
        (
            "alpaca.json",
            [
                {"instruction": f"Question {i}?", "input": "", "output": "An answer."}
                for i in range(40)
            ],
        ),
        (
            "text.jsonl",
            [{"text": f"Plain text line number {i} for calibration."} for i in range(40)],
        ),
        (
            "chat.json",
            [
                {
                    "conversations": [
                        {"from": "human", "value": f"Hi {i}"},
                        {"from": "gpt", "value": "Hello there."},
                    ]
                }
                for i in range(60)
            ],
        ),
        (
            "openai.json",
            [
                {
                    "messages": [
                        {"role": "user", "content": f"Hi {i}"},
                        {"role": "assistant", "content": "Hello."},
                    ]
                }
                for i in range(60)
            ],
        ),
    ],
)
def test_calibration_dataset_may_be_a_bare_file_of_a_known_layout(name, rows, tiny_model, tmp_path):
    file = tmp_path / name
    if name.endswith(".jsonl"):
        file.write_text("".join(json.dumps(row) + "\n" for row in rows))
    else:
        file.write_text(json.dumps(rows))
    config = export_config(
        tiny_model, tmp_path, export_quantization_dataset=file, export_quantization_nsamples=3
    )

    samples = samples_for(config)

    assert len(samples) == 3 and all(len(ids) == 64 for ids in samples)


def test_calibration_file_of_unknown_columns_is_a_dataset_error_with_the_file(tiny_model, tmp_path):
    file = tmp_path / "odd.json"
    file.write_text(json.dumps([{"question": "a", "answer": "b"}]))
    config = export_config(tiny_model, tmp_path, export_quantization_dataset=file)

    with pytest.raises(DatasetError) as caught:
        samples_for(config)

    assert "odd.json" in str(caught.value) and "question" in caught.value.message
    assert caught.value.hint
