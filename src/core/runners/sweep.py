"""Sweeps: `--sweep key=v1,v2` values, their grid, and one job per grid point.

Every point is checked before anything is submitted (a bad point submits nothing). The points
share a group id. A Slurm backend (`scheduler == "slurm"`) gets them as one job array; elsewhere
they run one after the other: all are submitted at once, and each next one waits for the previous
one to end (runners/after.py) before its runner starts.
"""

from __future__ import annotations

import difflib
import itertools
import json
import re
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path

from tunedeck.core.config import KNOWN_KEYS, RunConfig, check_config, parse_overrides
from tunedeck.core.errors import ConfigError, Location, UsageError
from tunedeck.core.jobs import LOCAL_HOST, Backend, Job, JobSpec, get_backend
from tunedeck.core.jobs.backend import Resources
from tunedeck.core.jobs.model import new_job_id
from tunedeck.core.runners.after import after_argv
from tunedeck.core.runners.inputs import SyncOptions
from tunedeck.core.runners.launch import PURPOSES, output_dir_of, prepare_run, run_name

FLAG = "--sweep"
_FIELD_TYPES = {f.name: f.type for f in fields(RunConfig)}
# Where each point writes: a folder of its own under these (one per kind).
OUTPUT_KEYS = {"train": "output_dir", "quantize": "export_dir"}
# Short names in point labels (NAME-lr2e-4-r16); other keys keep their own name.
SHORT_NAMES = {
    "learning_rate": "lr",
    "lora_rank": "r",
    "lora_alpha": "alpha",
    "lora_dropout": "drop",
    "num_train_epochs": "ep",
    "max_steps": "steps",
    "per_device_train_batch_size": "bs",
    "gradient_accumulation_steps": "ga",
    "warmup_ratio": "warmup",
    "weight_decay": "wd",
    "cutoff_len": "len",
}


def parse_sweeps(values: Sequence[str]) -> dict[str, list]:
    """`--sweep key=v1,v2` values as {key: [v1, v2]}, in the order given, each value checked."""
    sweeps: dict[str, list] = {}
    for item in values:
        key, sep, text = item.partition("=")
        key = key.strip()
        where = Location(file=FLAG, column=key or None)
        if not sep or not key or not text.strip():
            raise UsageError(
                f"'{item}' is not key=value[,value...]",
                location=where,
                hint="e.g. --sweep learning_rate=1e-4,2e-4",
            )
        _check_key(key, item, where, sweeps)
        sweeps[key] = _parse_values(key, text, item, where)
    return sweeps


def grid(sweeps: dict[str, list]) -> list[dict]:
    """Every combination of the swept values; the first key varies slowest."""
    keys = list(sweeps)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*sweeps.values())]


def launch_sweep(
    kind: str,
    config: RunConfig,
    sweeps: dict[str, list],
    *,
    host: str | None = None,
    config_path: str | Path | None = None,
    overrides: Sequence[str] = (),
    name: str | None = None,
    backend: Backend | None = None,
    sync: SyncOptions | None = None,
    resources: Resources | None = None,
) -> list[Job]:
    """Submit one run of `kind` per grid point of `sweeps`; the jobs, in grid order.

    Each point is `config` (from `config_path` + `overrides` when given) with its swept values and
    an output folder of its own (OUTPUT/<label>), named NAME-<label>. Nothing is submitted unless
    every point's config checks out.
    """
    points = grid(sweeps)
    if not points:
        raise UsageError(f"{FLAG} gives no values", location=Location(file=FLAG))
    host = host or LOCAL_HOST
    name = name or run_name(kind, config)
    base = output_dir_of(kind, config)
    labels = point_labels(points)
    point_args = [
        _point_overrides(kind, point, base, label)
        for point, label in zip(points, labels, strict=True)
    ]
    configs = [
        _checked_point(kind, config, config_path, overrides, args, host, k, len(points))
        for k, args in enumerate(point_args)
    ]
    own_backend = backend is None
    backend = backend or get_backend(host)
    try:
        specs = [
            prepare_run(
                kind,
                point_config,
                backend=backend,
                host=host,
                config_path=config_path,
                overrides=[*overrides, *args] if config_path is not None else (),
                name=f"{name}-{label}",
                sync=sync,
                resources=resources,
            )
            for point_config, args, label in zip(configs, point_args, labels, strict=True)
        ]
        return submit_grid(backend, in_group(specs))
    finally:
        if own_backend:
            backend.close()


def in_group(specs: Sequence[JobSpec]) -> list[JobSpec]:
    """The specs with one new group id and their place in it."""
    group = new_job_id()
    return [replace(spec, group=group, group_index=k) for k, spec in enumerate(specs)]


def submit_grid(backend: Backend, specs: Sequence[JobSpec]) -> list[Job]:
    """One job array on a Slurm backend; elsewhere one run after the other."""
    if getattr(backend, "scheduler", None) == "slurm":
        return list(backend.submit_array(list(specs)))
    return submit_one_after_another(backend, specs, python=specs[0].argv[0])


def submit_one_after_another(
    backend: Backend, specs: Sequence[JobSpec], *, python: str
) -> list[Job]:
    """Submit every spec now; each after the first waits for all the ones before it to end.

    `python` runs tunedeck on the backend's host (the waiting part of each later job).
    """
    jobs: list[Job] = []
    earlier: list[str] = []
    for spec in specs:
        if earlier:
            spec = replace(spec, argv=tuple(after_argv(python, earlier, spec.argv)))
        jobs.append(backend.submit(spec))
        assert spec.id is not None  # prepare_run chose it
        earlier.append(spec.id)
    return jobs


def point_labels(points: Sequence[dict]) -> list[str]:
    """A short, path-safe label per point (lr2e-4-r16), made unique by its index if need be."""
    labels = ["-".join(_label_part(key, value) for key, value in point.items()) for point in points]
    seen: set[str] = set()
    unique = []
    for k, label in enumerate(labels):
        label = label if label not in seen and labels.count(label) == 1 else f"{k}-{label}"
        seen.add(label)
        unique.append(label)
    return unique


def format_value(value) -> str:
    """A value as a label shows it: 2e-4 rather than 0.0002, 16 rather than 16.0."""
    if isinstance(value, float):
        if value and (abs(value) < 1e-2 or abs(value) >= 1e5):
            mantissa, exponent = f"{value:.4e}".split("e")
            mantissa = mantissa.rstrip("0").rstrip(".")
            return f"{mantissa}e{int(exponent)}"
        return f"{value:.6g}"
    return str(value)


# --- helpers -----------------------------------------------------------------------------------


def _check_key(key: str, item: str, where: Location, sweeps: dict[str, list]) -> None:
    if key not in KNOWN_KEYS:
        close = difflib.get_close_matches(key, KNOWN_KEYS, n=1, cutoff=0.6)
        raise UsageError(
            f"unknown key '{key}'",
            location=where,
            hint=f"did you mean '{close[0]}'?"
            if close
            else "see `tunedeck config keys` for every key",
        )
    if key in OUTPUT_KEYS.values():
        raise UsageError(
            f"{key} cannot be swept",
            location=where,
            hint=f"each point writes to a folder of its own under {key}",
        )
    if key in sweeps:
        raise UsageError(
            f"{key} is swept twice",
            location=where,
            hint=f"give all its values in one {FLAG} {key}=v1,v2",
        )


def _parse_values(key: str, text: str, item: str, where: Location) -> list:
    """The comma-separated values of one --sweep, each read and checked as that key's value."""
    values = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            raise UsageError(f"an empty value in '{item}'", location=where)
        ((_, value),) = parse_overrides([f"{key}={part}"])
        problem = _value_problem(key, value)
        if problem is not None:
            raise UsageError(f"{part!r}: {problem.message}", location=where, hint=problem.hint)
        value = _typed(key, value)
        if value in values:
            raise UsageError(f"{part!r} is given twice", location=where)
        values.append(value)
    return values


def _typed(key: str, value):
    """A number YAML read as text (1e-4 has no dot) as the float its key takes."""
    kinds = str(_FIELD_TYPES[key])
    if isinstance(value, str) and "float" in kinds and "str" not in kinds:
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _value_problem(key: str, value):
    """What check_config says about `key` set to `value` alone (type, range), else None."""
    check = check_config(None, [f"{key}={json.dumps(value)}"], check_files=False)
    return next((p for p in check.errors if p.key == key), None)


def _label_part(key: str, value) -> str:
    text = f"{SHORT_NAMES.get(key, key)}{format_value(value)}"
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text)


def _point_overrides(kind: str, point: dict, base: str | None, label: str) -> list[str]:
    """The point's key=value overrides: its swept values and its own output folder."""
    args = [f"{key}={json.dumps(value)}" for key, value in point.items()]
    if base:
        args.append(f"{OUTPUT_KEYS[kind]}={json.dumps(str(Path(base) / label))}")
    return args


def _checked_point(
    kind: str,
    config: RunConfig,
    config_path: str | Path | None,
    overrides: Sequence[str],
    point_args: list[str],
    host: str,
    index: int,
    count: int,
) -> RunConfig:
    """The point's config, checked like a single run's (the disk only when it runs here)."""
    if config_path is not None:
        path, args = config_path, [*overrides, *point_args]
    else:
        path = None
        args = [f"{k}={json.dumps(v)}" for k, v in config.changed().items()] + point_args
    check = check_config(path, args, purpose=PURPOSES[kind], check_files=host == LOCAL_HOST)
    if check.ok and check.config is not None:
        return check.config
    first = check.errors[0]
    swept = ", ".join(a for a in point_args if not a.startswith(f"{OUTPUT_KEYS[kind]}="))
    raise ConfigError(
        f"sweep point {index + 1} of {count} ({swept}): {first.message}",
        location=first.location,
        hint=first.hint,
    )
