"""What a run reads, sent to the host that runs it, and the host's own check of the config.

The files of a run: dataset_info.json and the files of the entries it names (dataset,
eval_dataset, a calibration entry) with their media, and a local model, adapter or calibration
file the host lacks. They are laid out in one tree on the host (data/, model/, adapter-N/,
calibration/) and the settings sent name the paths there.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunedeck.core.config import RunConfig
from tunedeck.core.errors import ConfigError, Location, TunedeckError, UsageError
from tunedeck.core.jobs.store import SyncResult, human_bytes, sync_tree

BIG_MODEL = 1 << 30  # a local model this big asks before it is sent
OUTPUT_MIN_FREE = 256 << 20  # what a host's output disk must have free for a run to start
MEDIA_COLUMNS = ("images", "videos", "audios")
MODEL_KEYS = ("model_name_or_path", "adapter_name_or_path")


@dataclass(frozen=True)
class SyncOptions:
    """How a launch sends what the run reads: on (default), and who answers for big models."""

    enabled: bool = True
    assume_yes: bool = False
    confirm: Callable[[str], bool] | None = None  # asks a person; None: no terminal
    on_progress: Callable | None = None
    report: Callable[[str], None] | None = None
    bwlimit: int | None = None  # bytes per second, None: as fast as the link goes


@dataclass(frozen=True)
class RunInputs:
    """The local files of a run by their name in its tree, and the settings that point there."""

    files: dict[str, Path] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)  # key -> path inside the tree
    models: dict[str, Path] = field(default_factory=dict)  # tree folder -> local model folder


class RemoteCheckFailed(ConfigError):
    """The host's own check of a run's config found errors; no job was created."""

    def __init__(self, host: str, problems: list):
        first = problems[0]
        where = Location(
            file=f"{host}:{first.location.file}" if first.location.file else host,
            line=first.location.line,
            column=first.location.column or first.key,
        )
        more = len(problems) - 1
        message = f"on {host}: {first.message}" + (f" (and {more} more)" if more else "")
        super().__init__(message, location=where, hint=first.hint)
        self.problems = tuple(problems)


def run_inputs(kind: str, config: RunConfig, host_paths: set[str] = frozenset()) -> RunInputs:
    """What `config` reads from this box; models already at the same path on the host
    (`host_paths`) are left out."""
    inputs = RunInputs()
    _add_datasets(inputs, config, kind)
    for key in MODEL_KEYS:
        _add_models(inputs, key, getattr(config, key), host_paths)
    calibration = config.export_quantization_dataset
    if kind == "quantize" and calibration and Path(calibration).is_file():
        name = f"calibration/{Path(calibration).name}"
        inputs.files[name] = Path(calibration)
        inputs.settings["export_quantization_dataset"] = name
    return inputs


def local_model_paths(config: RunConfig) -> list[str]:
    """The model and adapter paths of a config that exist on this box."""
    parts = [p.strip() for key in MODEL_KEYS for p in (getattr(config, key) or "").split(",")]
    return [p for p in parts if p and Path(p).expanduser().exists()]


def send_inputs(
    backend,
    host: str,
    kind: str,
    config: RunConfig,
    options: SyncOptions,
    settings: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], SyncResult | None]:
    """Send what the run reads to the host's store; returns the settings to send and what moved.

    `settings`: the mapping whose paths are renamed (default the config's changed keys)."""
    settings = dict(config.changed() if settings is None else settings)
    paths = local_model_paths(config)
    present = (
        set(backend.request("store_have", hashes=[], paths=paths)["paths"]) if paths else set()
    )
    inputs = run_inputs(kind, config, present)
    if not inputs.files:
        return settings, None
    result = sync_tree(
        backend,
        inputs.files,
        on_progress=options.on_progress,
        approve=lambda missing: _approve_models(host, inputs, missing, options),
        bwlimit=options.bwlimit,
    )
    for key, inside in inputs.settings.items():
        settings[key] = ",".join(f"{result.tree}/{part}" for part in inside.split(","))
    if options.report:
        options.report(result.summary(host))
    return settings, result


def check_on_host(backend, host: str, purpose: str, settings: Mapping[str, Any]) -> None:
    """Have the host's tunedeck check the settings there; RemoteCheckFailed on an error."""
    from tunedeck.core.config import ConfigCheck

    answer = backend.request(
        "check_config", purpose=purpose, settings=dict(settings), min_free=OUTPUT_MIN_FREE
    )
    check = ConfigCheck.from_dict(answer)
    if not check.ok:
        raise RemoteCheckFailed(host, list(check.errors))


def ask_on_terminal(question: str) -> bool:
    """A yes/no question on the terminal (default no)."""
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def _approve_models(host: str, inputs: RunInputs, missing: Mapping[str, int], options) -> None:
    for folder, local in inputs.models.items():
        size = sum(s for name, s in missing.items() if name.startswith(folder + "/"))
        if size < BIG_MODEL or options.assume_yes:
            continue
        question = f"send the model {local} ({human_bytes(size)}) to {host}?"
        if options.confirm is None:
            raise UsageError(
                f"the model {local} is {human_bytes(size)}: not sent to {host} without asking",
                hint="pass --yes to send it, or --no-sync to use the host's own paths",
            )
        if not options.confirm(question):
            raise TunedeckError(
                f"not sent: the model {local} ({human_bytes(size)}); nothing was started",
                hint="pass --no-sync to use a model already on the host",
            )


def _add_datasets(inputs: RunInputs, config: RunConfig, kind: str) -> None:
    names = list(config.datasets) + list(config.eval_datasets)
    calibration = config.export_quantization_dataset
    if kind == "quantize" and calibration and not Path(calibration).is_file():
        names.append(calibration)
    if not names:
        return
    from tunedeck.core.datasets import load_dataset_info

    data_dir = Path(config.dataset_dir).expanduser()
    try:
        info = load_dataset_info(data_dir)
    except TunedeckError:
        return  # the check on the host reports it, located
    inputs.files["data/dataset_info.json"] = info.path
    inputs.settings["dataset_dir"] = "data"
    for name in dict.fromkeys(names):
        spec = info.specs.get(name)
        if spec is None or not spec.is_local or not spec.file_name:
            continue
        for path in _entry_files(info.data_dir / spec.file_name):
            inputs.files[f"data/{path.relative_to(info.data_dir).as_posix()}"] = path
        for path in _media_files(spec, info.data_dir):
            inputs.files[f"data/{path.relative_to(info.data_dir).as_posix()}"] = path


def _entry_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p, path))
    return []


def _media_files(spec, data_dir: Path) -> list[Path]:
    """Files named by an entry's images/videos/audios columns, inside the data folder."""
    columns = [getattr(spec.columns, c) for c in MEDIA_COLUMNS if getattr(spec.columns, c)]
    if not columns:
        return []
    from tunedeck.core.datasets.readers import iter_rows

    found: dict[Path, None] = {}
    root = data_dir.resolve()
    try:
        for row in iter_rows(spec, data_dir):
            if not isinstance(row.value, dict):
                continue
            for column in columns:
                value = row.value.get(column)
                for item in value if isinstance(value, list) else [value]:
                    if isinstance(item, str) and not os.path.isabs(item):
                        path = data_dir / item
                        if path.is_file() and path.resolve().is_relative_to(root):
                            found[path] = None
    except TunedeckError:
        pass  # an unreadable file is the host check's to report
    return list(found)


def _add_models(inputs: RunInputs, key: str, value: str | None, host_paths: set[str]) -> None:
    if not value:
        return
    parts = [p.strip() for p in value.split(",")]
    if any(part in host_paths or not Path(part).expanduser().exists() for part in parts):
        return  # the host's own (or a hub) path: sent as written
    inside = []
    for index, part in enumerate(parts):
        local = Path(part).expanduser()
        folder = "model" if key == "model_name_or_path" else f"adapter-{index}"
        inside.append(folder)
        inputs.models[folder] = local
        if local.is_file():
            inputs.files[f"{folder}/{local.name}"] = local
            inside[-1] = f"{folder}/{local.name}"
            continue
        for path in sorted(p for p in local.rglob("*") if p.is_file() and not _hidden(p, local)):
            inputs.files[f"{folder}/{path.relative_to(local).as_posix()}"] = path
    inputs.settings[key] = ",".join(inside)


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)
