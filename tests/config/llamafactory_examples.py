"""LLaMA-Factory's own example configs (../shared/llamafactory-examples), made runnable here:
model paths point to the tiny model, outputs to a temp folder, data and DeepSpeed files to the
shared copies."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO.parent / "shared" / "llamafactory-examples"
DATA = REPO.parent / "shared" / "llamafactory-data"
FOLDERS = ("train_lora", "train_qlora", "train_full", "merge_lora", "extras")
_OUTPUT_KEYS = ("output_dir", "export_dir", "tokenized_path")


def example_files() -> list[Path]:
    """Every YAML of the five folders, in a stable order."""
    return [path for folder in FOLDERS for path in sorted((EXAMPLES / folder).rglob("*.yaml"))]


def example_name(path: Path) -> str:
    return str(path.relative_to(EXAMPLES))


def localised(example: Path, out: Path, model: Path, adapter: Path) -> Path:
    """A copy of `example` in `out` with this machine's paths; its other keys unchanged."""
    document = yaml.safe_load(example.read_text(encoding="utf-8"))
    if isinstance(document, dict) and "model_name_or_path" in document:
        document = _with_local_paths(document, out, model, adapter)
    target = out / example_name(example).replace("/", "__")
    target.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return target


def _with_local_paths(document: dict, out: Path, model: Path, adapter: Path) -> dict:
    document = dict(document, model_name_or_path=str(model))
    if document.get("adapter_name_or_path"):
        document["adapter_name_or_path"] = str(adapter)
    for key in _OUTPUT_KEYS:
        if document.get(key):
            document[key] = str(out / str(document[key]))
    if document.get("dataset") or document.get("eval_dataset"):
        document["dataset_dir"] = str(DATA)
    deepspeed = document.get("deepspeed")
    if isinstance(deepspeed, str) and deepspeed.startswith("examples/"):
        document["deepspeed"] = str(EXAMPLES / deepspeed.removeprefix("examples/"))
    calibration = document.get("export_quantization_dataset")
    if isinstance(calibration, str) and calibration.startswith("data/"):
        document["export_quantization_dataset"] = str(DATA / calibration.removeprefix("data/"))
    return document
