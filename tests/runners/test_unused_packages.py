"""Which quantization packages a training process keeps out, and LoRA without them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tunedeck.core.config import RunConfig
from tunedeck.core.runners.unused_packages import QUANTIZATION_PACKAGES, unused_packages

REPO = Path(__file__).resolve().parents[2]


def _checkpoint(folder: Path, **extra) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", **extra}))
    return folder


def test_a_plain_run_uses_none_of_them(tmp_path):
    config = RunConfig(model_name_or_path=str(_checkpoint(tmp_path / "m")))
    assert unused_packages(config) == QUANTIZATION_PACKAGES


def test_quantization_bit_keeps_bitsandbytes(tmp_path):
    config = RunConfig(model_name_or_path=str(_checkpoint(tmp_path / "m")), quantization_bit=4)
    assert unused_packages(config) == ("gptqmodel", "torchao")


def test_an_optimizer_beyond_torch_keeps_them_all(tmp_path):
    config = RunConfig(model_name_or_path=str(_checkpoint(tmp_path / "m")), optim="adamw_8bit")
    assert unused_packages(config) == ()


def test_a_checkpoint_saved_quantized_keeps_them_all(tmp_path):
    folder = _checkpoint(tmp_path / "m", quantization_config={"quant_method": "gptq", "bits": 4})
    assert unused_packages(RunConfig(model_name_or_path=str(folder))) == ()


def test_a_checkpoint_whose_config_cannot_be_read_keeps_them_all(tmp_path):
    (tmp_path / "m").mkdir()
    assert unused_packages(RunConfig(model_name_or_path=str(tmp_path / "m"))) == ()
    assert unused_packages(RunConfig(model_name_or_path="nobody/not-cached-here")) == ()


LORA_WITHOUT_THEM = r"""
import sys
from tunedeck.core.config import RunConfig
from tunedeck.core.runners.train import load_model, load_tokenizer
from tunedeck.core.runners.unused_packages import hide_unused_packages
config = RunConfig(model_name_or_path=sys.argv[1], template="qwen", finetuning_type="lora")
hidden = hide_unused_packages(config)
model = load_model(config, load_tokenizer(config))
imported = [n for n in ("bitsandbytes", "gptqmodel", "torchao") if sys.modules.get(n) is not None]
print("hidden", ",".join(hidden), "imported", ",".join(imported) or "none",
      "lora", any("lora_" in n for n, _ in model.named_parameters()))
"""


@pytest.mark.slow
def test_lora_is_built_without_importing_them(tiny_model):
    done = subprocess.run(
        [sys.executable, "-c", LORA_WITHOUT_THEM, str(tiny_model)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    assert "imported none lora True" in last, last
