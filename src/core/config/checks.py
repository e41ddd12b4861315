"""Checks of a config against the disk: datasets, template, output folder, checkpoints.

Only light modules are imported (datasets and templates are torch-free).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tunedeck.core.config.loader import ConfigProblem
from tunedeck.core.config.schema import RunConfig
from tunedeck.core.errors import Location, Severity, TunedeckError
from tunedeck.core.jobs.metrics import TRAINER_LOG

# Which dataset kinds (tunedeck.core.datasets.dataset_kind) each stage can train on.
STAGE_KINDS = {
    "sft": ("sft", "multimodal"),
    "pt": ("pretrain", "sft"),
    "dpo": ("ranking",),
    "rm": ("ranking",),
    "kto": ("kto",),
}
_STAGE_NEEDS = {
    "dpo": "a ranking dataset (ranking: true)",
    "rm": "a ranking dataset (ranking: true)",
    "kto": "a dataset with a kto_tag column",
}
CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")
RUN_FILES = (
    TRAINER_LOG,
    "adapter_model.safetensors",
    "model.safetensors",
    "all_results.json",
)


def check_on_disk(
    config: RunConfig, where: dict[str, Location], purpose: str
) -> list[ConfigProblem]:
    """Everything that needs the disk: run after the types and ranges are known to be right."""
    problems: list[ConfigProblem] = []

    def at(key: str) -> Location:
        return where.get(key, Location(column=key))

    _check_model(config, at, problems)
    if purpose == "export":
        _check_calibration_dataset(config, at, problems)
        _check_writable("export_dir", config.export_dir, at, problems)
        return problems
    _check_datasets(config, "dataset", config.datasets, at, problems)
    _check_datasets(config, "eval_dataset", config.eval_datasets, at, problems)
    _check_template(config, at, problems)
    _check_output_dir(config, at, problems)
    return problems


def check_engine_paths(
    config: RunConfig, where: dict[str, Location], purpose: str
) -> list[ConfigProblem]:
    """What another engine (LLaMA-Factory) reads from the disk: the model, a writable output."""
    problems: list[ConfigProblem] = []

    def at(key: str) -> Location:
        return where.get(key, Location(column=key))

    _check_model(config, at, problems)
    key = "export_dir" if purpose == "export" else "output_dir"
    _check_writable(key, getattr(config, key), at, problems)
    return problems


def last_checkpoint(output_dir: str | Path) -> Path | None:
    """The checkpoint-N folder with the highest N in output_dir, or None."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    found = [
        (int(m.group(1)), p)
        for p in folder.iterdir()
        if p.is_dir() and (m := CHECKPOINT_DIR.match(p.name))
    ]
    return max(found)[1] if found else None


def _check_model(config: RunConfig, at, problems: list[ConfigProblem]) -> None:
    for key in ("model_name_or_path", "adapter_name_or_path"):
        value = getattr(config, key)
        if not value:
            continue
        for part in value.split(","):
            path = Path(part.strip()).expanduser()
            if path.exists():
                if (
                    path.is_dir()
                    and not (path / "config.json").exists()
                    and key == "model_name_or_path"
                ):
                    problems.append(ConfigProblem(key, f"{part} has no config.json", at(key)))
                continue
            looks_local = part.startswith((".", "/", "~")) or part.count("/") != 1
            problems.append(
                ConfigProblem(
                    key,
                    f"{part} does not exist"
                    if looks_local
                    else f"{part} is not a local folder; it will be fetched from the hub",
                    at(key),
                    hint="build the tiny demo model with `tunedeck demo model DIR`"
                    if looks_local
                    else None,
                    severity=Severity.ERROR if looks_local else Severity.WARNING,
                )
            )


def _load_info(config: RunConfig, key: str, at, problems: list[ConfigProblem]):
    from tunedeck.core.datasets import load_dataset_info

    try:
        return load_dataset_info(config.dataset_dir)
    except TunedeckError as exc:
        where = at("dataset_dir") if at("dataset_dir").file else at(key)
        problems.append(ConfigProblem("dataset_dir", exc.message, where, hint=exc.hint))
        return None


def _check_datasets(config: RunConfig, key: str, names, at, problems: list[ConfigProblem]) -> None:
    if not names:
        return
    from tunedeck.core.datasets import dataset_kind

    info = _load_info(config, key, at, problems)
    if info is None:
        return
    for name in names:
        try:
            spec = info.get(name)
        except TunedeckError as exc:
            hint = exc.hint or f"names in {info.path}: {', '.join(sorted(info.specs)[:8])}"
            problems.append(
                ConfigProblem(
                    key, f"'{name}' is not in {info.path}", at(key), hint=_hint_from(exc, hint)
                )
            )
            continue
        kind = dataset_kind(spec)
        allowed = STAGE_KINDS[config.stage]
        if kind not in allowed:
            need = _STAGE_NEEDS.get(config.stage, f"a dataset of kind {' or '.join(allowed)}")
            problems.append(
                ConfigProblem(
                    key,
                    f"'{name}' is {'an' if kind[0] in 'aeiosu' else 'a'} {kind} dataset; stage {config.stage} needs {need}",
                    at(key),
                    hint="change the stage or pick another dataset",
                )
            )
        if spec.is_local:
            source = Path(info.data_dir) / spec.file_name
            if not source.exists():
                problems.append(ConfigProblem(key, f"'{name}': {source} does not exist", at(key)))


def _hint_from(exc: TunedeckError, fallback: str) -> str:
    message = str(exc.message)
    if "did you mean" in message:
        return "did you mean" + message.split("did you mean", 1)[1]
    return fallback


def _check_calibration_dataset(config: RunConfig, at, problems: list[ConfigProblem]) -> None:
    name = config.export_quantization_dataset
    if not name or Path(name).is_file():
        return
    info = _load_info(config, "export_quantization_dataset", at, problems)
    if info is None:
        return
    if name not in info.specs:
        problems.append(
            ConfigProblem(
                "export_quantization_dataset",
                f"'{name}' is neither a file nor a name in {info.path}",
                at("export_quantization_dataset"),
            )
        )


def _check_template(config: RunConfig, at, problems: list[ConfigProblem]) -> None:
    if not config.template:
        return
    from tunedeck.core.templates import get_template

    try:
        get_template(config.template)
    except TunedeckError as exc:
        problems.append(
            ConfigProblem(
                "template",
                f"unknown template '{config.template}'",
                at("template"),
                hint=exc.hint or _hint_from(exc, "see `tunedeck data preview --help`"),
            )
        )


def _check_output_dir(config: RunConfig, at, problems: list[ConfigProblem]) -> None:
    if not config.output_dir:
        return
    _check_writable("output_dir", config.output_dir, at, problems)
    folder = Path(config.output_dir)
    resume = config.resume_from_checkpoint
    if resume is True:
        if last_checkpoint(folder) is None:
            problems.append(
                ConfigProblem(
                    "resume_from_checkpoint",
                    f"there is no checkpoint-N folder in {folder} to resume from",
                    at("resume_from_checkpoint"),
                )
            )
        return
    if isinstance(resume, str):
        if not Path(resume).is_dir():
            problems.append(
                ConfigProblem(
                    "resume_from_checkpoint",
                    f"{resume} does not exist",
                    at("resume_from_checkpoint"),
                )
            )
        return
    if config.overwrite_output_dir or not folder.is_dir():
        return
    if any((folder / name).exists() for name in RUN_FILES) or last_checkpoint(folder):
        problems.append(
            ConfigProblem(
                "output_dir",
                f"{folder} already holds a run",
                at("output_dir"),
                hint="set overwrite_output_dir: true to start over, or resume_from_checkpoint: true",
            )
        )


def _check_writable(key: str, value: str | None, at, problems: list[ConfigProblem]) -> None:
    if not value:
        return
    path = Path(value).expanduser().absolute()
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        problems.append(ConfigProblem(key, f"{probe} is a file, not a folder", at(key)))
    elif not os.access(probe, os.W_OK | os.X_OK):
        problems.append(ConfigProblem(key, f"{probe} is not writable", at(key)))


def template_problem(
    config: RunConfig, path: str | Path | None = None, tokenizer: str | Path | None = None
) -> ConfigProblem | None:
    """A warning (key `template`) when the config's template renders a probe conversation
    otherwise than the tokenizer's own chat_template; None when they agree or there is no
    local tokenizer with a chat_template (the model folder, unless `tokenizer` is given).
    Loads the tokenizer (transformers), so it is not part of `check_config`."""
    from tunedeck.core.templates import TEMPLATES
    from tunedeck.core.templates.probe import has_chat_template, probe_template_dir

    if config.template and config.template not in TEMPLATES:
        return None  # the unknown name is an error of its own
    folder = Path(tokenizer or config.model_name_or_path or "").expanduser()
    if not str(folder) or not folder.is_dir() or not has_chat_template(folder):
        return None
    try:
        probe = probe_template_dir(folder, config.template)
    except TunedeckError as exc:
        message = f"the template was not checked against {folder}: {exc.message}"
        return _template_warning(message, path, None)
    return template_warning(probe, path)


def template_warning(probe, path: str | Path | None = None) -> ConfigProblem | None:
    """A TemplateProbe that found a difference, as a warning on the key `template`."""
    if probe.matches is not False:
        return None
    return _template_warning(probe.summary(), path, probe.advice() or None)


def with_template_check(check, tokenizer: str | Path | None = None):
    """`check` (a ConfigCheck) plus the template warning, when there is one."""
    from dataclasses import replace

    if check.config is None:
        return check
    problem = template_problem(check.config, check.path, tokenizer)
    if problem is None:
        return check
    return replace(check, problems=(*check.problems, problem))


def _template_warning(message: str, path, hint: str | None) -> ConfigProblem:
    location = Location(file=str(path) if path else None, column="template")
    return ConfigProblem("template", message, location, hint=hint, severity=Severity.WARNING)
