"""The export runner: `python -m tunedeck.core.runners.quantize CFG.yaml [key=value ...]`.

Reads a run config (purpose "export"), merges a LoRA adapter into its base when
adapter_name_or_path is set, and, when export_quantization_bit is set, GPTQ-quantizes the model
with calibration samples packed from export_quantization_dataset. The result (model + tokenizer)
goes to export_dir, which also receives run_status.json and trainer_log.jsonl as the run goes.

Backend: GPTQModel (auto-gptq 0.7.1, its last release, cannot import with transformers 5).
Exit codes: 0 done, 1 failed, 130 / 143 cancelled by SIGINT / SIGTERM (quantization cannot resume,
so a signal stops it at once).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunedeck.core.config import RunConfig
from tunedeck.core.errors import DatasetError, Location, MissingExtraError, TunedeckError
from tunedeck.core.runners import progress
from tunedeck.core.runners.common import config_from_argv, install_stop_handlers

MODULE = "tunedeck.core.runners.quantize"
MERGED_DIR = ".merged"  # inside export_dir while a merged base waits to be quantized
GROUP_SIZES = (128, 64, 32)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one export from a config file and overrides; return the process exit code."""
    config = config_from_argv(MODULE, argv, purpose="export")
    if isinstance(config, int):
        return config
    install_stop_handlers(config.export_dir)  # a signal writes status cancelled and exits
    return run_export(config)


def run_export(config: RunConfig) -> int:
    """Merge and/or quantize, turning failures into status 'failed' (message, no traceback)."""
    out = Path(config.export_dir or ".").absolute()  # the backend runs in a chdir
    status = progress.StatusWriter(out)
    try:
        status("loading", f"loading {config.model_name_or_path}")
        if config.export_quantization_bit:
            return _merge_and_quantize(config, out, status)
        tokenizer = load_export_tokenizer(config)
        if config.adapter_name_or_path:
            status("merging", f"merging {config.adapter_name_or_path} into the base model")
            merge_adapter(config, out, tokenizer)
        else:
            status("saving", f"saving to {out}")
            save_plain_copy(config, out, tokenizer)
        status("done", f"exported to {out}")
        return progress.EXIT_OK
    except TunedeckError as exc:
        progress.print_problems(exc)
        status("failed", str(exc) + (f" ({exc.hint})" if exc.hint else ""))
        return progress.EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 - any crash becomes status failed with its message
        traceback.print_exc()
        status("failed", f"{type(exc).__name__}: {exc}")
        return progress.EXIT_FAILED


def _merge_and_quantize(config: RunConfig, out: Path, status: progress.StatusWriter) -> int:
    """The GPTQ path: calibration first (cheap, fails early), then merge, quantize, save."""
    backend = pick_backend()
    tokenizer = load_export_tokenizer(config)
    extra = {"backend": backend.label, "bits": config.export_quantization_bit}
    dataset = config.export_quantization_dataset
    status("calibrating", f"building calibration samples from {dataset}", **extra)
    samples = calibration_samples(config, tokenizer)
    extra.update(samples=len(samples), maxlen=config.export_quantization_maxlen)
    source = Path(config.model_name_or_path)
    if config.adapter_name_or_path:
        status("merging", f"merging {config.adapter_name_or_path} into the base model", **extra)
        source = merge_adapter(config, out / MERGED_DIR, tokenizer)
    bits = config.export_quantization_bit
    status("quantizing", f"{backend.label}: {bits}-bit GPTQ, {len(samples)} samples", **extra)
    log = progress.TrainerLog(out)
    log.start()
    clock = progress.Stopwatch()
    layers = _layer_count(source)
    log.append(progress.log_line(0, layers, clock.elapsed))

    def layer_done(index: int) -> None:
        log.append(progress.log_line(index + 1, layers, clock.elapsed, layer=index))
        print(f"quantized layer {index + 1}/{layers}", flush=True)

    hook = LayerProgress(layer_done)
    model_dir = source.absolute()
    # GPTQModel writes its per-module log to ./logs: keep it inside the export folder
    with _working_directory(out):
        model = gptqmodel_quantize(model_dir, samples, config, on_layer=hook)
    status("saving", f"saving to {out}", **extra)
    model.save(out)
    tokenizer.save_pretrained(str(out))
    shutil.rmtree(out / MERGED_DIR, ignore_errors=True)
    if len(hook.seen) < layers:
        log.append(progress.log_line(layers, layers, clock.elapsed))
    status("done", f"{bits}-bit model saved to {out}", **extra)
    return progress.EXIT_OK


# --- backend -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    """The GPTQ library that runs: its import name and version."""

    name: str
    version: str

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"


def pick_backend() -> Backend:
    """GPTQModel when it imports, else MissingExtraError('gptq')."""
    _cap_cpu_workers()
    try:
        import gptqmodel
    except ImportError:
        raise MissingExtraError("gptqmodel", "gptq") from None
    return Backend("gptqmodel", gptqmodel.__version__)


def _cap_cpu_workers() -> None:
    # GPTQModel's CPU pool defaults to half the cores but its model loader needs two workers:
    # on machines with fewer than three cores it refuses to start unless told otherwise.
    if "GPTQMODEL_CPU_WORKERS" not in os.environ and (os.cpu_count() or 1) < 3:
        os.environ["GPTQMODEL_CPU_WORKERS"] = "2"


def gptqmodel_quantize(source: Path, samples: list[list[int]], config: RunConfig, *, on_layer):
    """Quantize the model in `source` with GPTQModel; returns an object with .save(folder)."""
    import torch
    from gptqmodel import GPTQModel, QuantizeConfig

    quantize_config = QuantizeConfig(
        bits=config.export_quantization_bit, group_size=group_size_for(source)
    )
    device = "cuda:0" if torch.cuda.is_available() else "cpu"
    model = GPTQModel.load(
        str(source), quantize_config, device=device, trust_remote_code=config.trust_remote_code
    )
    model.layer_callback = on_layer  # GPTQModel calls on_layer.layer_complete(...)
    calibration = [{"input_ids": ids, "attention_mask": [1] * len(ids)} for ids in samples]
    model.quantize(calibration, batch_size=min(4, len(calibration)))
    return _Saver(lambda out: model.save(str(out), max_shard_size=f"{config.export_size}GB"))


@contextlib.contextmanager
def _working_directory(folder: Path):
    previous = Path.cwd()
    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def group_size_for(model_dir: Path) -> int:
    """The GPTQ group size: 128 (LLaMA-Factory's) unless the layers are too narrow for it."""
    config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    widths = [config.get("hidden_size"), config.get("intermediate_size")]
    widths = [w for w in widths if isinstance(w, int) and w > 0]
    for size in GROUP_SIZES:
        if all(w % size == 0 for w in widths):
            return size
    return -1  # one group per output row


@dataclass(frozen=True)
class _Saver:
    write: Callable[[Path], Any]

    def save(self, out: Path) -> None:
        self.write(out)


class LayerProgress:
    """GPTQModel's layer-complete hook: reports each decoder layer once (it may call from threads)."""

    def __init__(self, on_layer: Callable[[int], None]):
        self.on_layer = on_layer
        self.seen: set[int] = set()
        self._lock = threading.Lock()

    def layer_complete(self, *, layer_idx: int, submodule_finalized: bool) -> None:
        with self._lock:
            if layer_idx in self.seen or layer_idx < 0:
                return
            self.seen.add(layer_idx)
            try:
                self.on_layer(layer_idx)
            except OSError:
                pass  # progress is best effort; the quantization itself goes on


def _layer_count(model_dir: Path) -> int:
    config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    text = config.get("text_config") or config
    return int(text.get("num_hidden_layers") or 1)


# --- model and tokenizer -----------------------------------------------------------------------


def load_export_tokenizer(config: RunConfig):
    """The tokenizer saved beside the export: the adapter's when it has one, else the base's."""
    from tunedeck.core.templates import load_tokenizer

    folder = Path(config.model_name_or_path)
    adapter = config.adapter_name_or_path
    if adapter and (Path(adapter) / "tokenizer_config.json").is_file():
        folder = Path(adapter)
    tokenizer = load_tokenizer(folder, config.template)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def merge_adapter(config: RunConfig, target: Path, tokenizer) -> Path:
    """Load the base, apply the LoRA adapter(s), merge them into the weights, save with tokenizer."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    device_map = "auto" if config.export_device == "auto" else "cpu"
    model = AutoModelForCausalLM.from_pretrained(
        config.model_name_or_path,
        dtype="auto",
        device_map=device_map,
        trust_remote_code=config.trust_remote_code,
    )
    for adapter in [a.strip() for a in config.adapter_name_or_path.split(",") if a.strip()]:
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    _save_model(model, config, target, tokenizer)
    return target


def save_plain_copy(config: RunConfig, out: Path, tokenizer) -> None:
    """Export without quantization or adapter: re-save the base model in export_size shards."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        config.model_name_or_path, dtype="auto", trust_remote_code=config.trust_remote_code
    )
    _save_model(model, config, out, tokenizer)


def _save_model(model, config: RunConfig, target: Path, tokenizer) -> None:
    if config.export_legacy_format:
        print("export_legacy_format is ignored: transformers 5 writes safetensors only", flush=True)
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(target), max_shard_size=f"{config.export_size}GB")
    tokenizer.save_pretrained(str(target))


# --- calibration -------------------------------------------------------------------------------


def calibration_samples(config: RunConfig, tokenizer) -> list[list[int]]:
    """export_quantization_nsamples token-id lists of export_quantization_maxlen tokens each.

    Rows of any dataset kind become text (through the config's template when one is set), short
    rows are packed together, and each sample is cut to the calibration length.
    """
    from tunedeck.core.templates.text_export import export_text

    spec, data_dir = calibration_dataset(config)
    wanted, maxlen = config.export_quantization_nsamples, config.export_quantization_maxlen
    rows = export_text(
        spec,
        data_dir,
        template=config.template,
        tokenizer=tokenizer,
        pack_to=maxlen,
        samples=wanted,
        seed=config.seed,
    )
    samples = []
    for row in rows:
        ids = tokenizer(row["text"], add_special_tokens=False)["input_ids"]
        if len(ids) >= maxlen:
            samples.append(ids[:maxlen])
    if len(samples) < wanted:
        where = Location(column="export_quantization_nsamples")
        raise DatasetError(
            f"too few calibration samples: '{config.export_quantization_dataset}' gives "
            f"{len(samples)} samples of {maxlen} tokens, {wanted} are needed",
            location=where,
            hint="lower export_quantization_nsamples or export_quantization_maxlen, "
            "or use a larger dataset",
        )
    return samples


def calibration_dataset(config: RunConfig):
    """(DatasetSpec, data_dir) for export_quantization_dataset: a dataset_info name or a file."""
    from tunedeck.core.datasets import load_dataset_info, spec_from_entry

    name = config.export_quantization_dataset or ""
    path = Path(name).expanduser()
    if path.is_file():
        path = path.absolute()
        return spec_from_entry(path.stem, {"file_name": path.name, **_entry_for(path)}), path.parent
    info = load_dataset_info(config.dataset_dir)
    return info.get(name), info.data_dir


def _entry_for(path: Path) -> dict[str, Any]:
    """dataset_info attributes for a bare file, guessed from the columns of its first row."""
    from tunedeck.core.datasets import iter_rows, spec_from_entry

    probe = spec_from_entry(path.stem, {"file_name": path.name})
    first = next(
        (r.value for r in iter_rows(probe, path.parent) if isinstance(r.value, dict)), None
    )
    if first is None:
        raise DatasetError(
            "no readable row of JSON objects or text", location=Location(file=str(path))
        )
    if "text" in first:
        return {"columns": {"prompt": "text"}}
    if "instruction" in first and "chosen" in first and "rejected" in first:
        return {"ranking": True, "columns": {"chosen": "chosen", "rejected": "rejected"}}
    if "instruction" in first:
        return {}
    for column in ("conversations", "messages"):
        turns = first.get(column)
        if isinstance(turns, list) and turns and isinstance(turns[0], dict):
            if "role" in turns[0]:
                return {"formatting": "openai", "columns": {"messages": column}}
            return {"formatting": "sharegpt", "columns": {"messages": column}}
    raise DatasetError(
        f"cannot tell the format of {path.name} from its columns {sorted(first)}",
        location=Location(file=str(path), row=1),
        hint="use a 'text', alpaca ('instruction'/'output') or sharegpt ('conversations') file, "
        "or add it to dataset_info.json and name the entry",
    )


if __name__ == "__main__":
    sys.exit(main())
