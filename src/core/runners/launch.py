"""Start a runner (train or quantize) as a job on a host: the one path every face takes.

It works out the interpreter (this one, or the host's from its agent), writes the config snapshot,
builds the runner's argv and the command a user can rerun, and submits through the jobs backend.
It names the runner modules and never imports them: nothing here loads torch.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from tunedeck.core.config import RunConfig
from tunedeck.core.config.schema import SLURM_KEYS
from tunedeck.core.errors import ConfigError, JobError, Location
from tunedeck.core.jobs import LOCAL_HOST, Backend, Job, JobRegistry, JobSpec, get_backend, submit
from tunedeck.core.jobs.backend import Resources
from tunedeck.core.locations import ensure, state_dir
from tunedeck.core.runners.inputs import SyncOptions, check_on_host, send_inputs

RUNNERS = {"train": "tunedeck.core.runners.train", "quantize": "tunedeck.core.runners.quantize"}
PURPOSES = {"train": "train", "quantize": "export"}  # what check_config calls each kind
STDIN_CONFIG = "-"  # the runner's "no config file: every setting is an override"


def launch_run(
    kind: str,
    config: RunConfig,
    *,
    host: str | None = None,
    config_path: str | Path | None = None,
    overrides: Sequence[str] = (),
    name: str | None = None,
    cwd: str | None = None,
    backend: Backend | None = None,
    sync: SyncOptions | None = None,
    resources: Resources | None = None,
) -> Job:
    """Submit the runner of `kind` for a checked `config` on `host` (None: this box).

    `config_path` and `overrides` are what the user wrote; they become the job's command line
    (without a path, the snapshot stands in for it). A given `backend` stays open for the caller.
    On another host, `sync` (when enabled) first sends what the run reads into the host's store
    and names the paths there; the host's tunedeck then checks the settings, and an error there
    (RemoteCheckFailed, located on the host) creates no job.
    """
    own_backend = backend is None
    backend = backend or get_backend(host or LOCAL_HOST)
    try:
        spec = prepare_run(
            kind,
            config,
            host=host,
            config_path=config_path,
            overrides=overrides,
            name=name,
            cwd=cwd,
            backend=backend,
            sync=sync,
            resources=resources,
        )
        return backend.submit(spec)
    finally:
        if own_backend:
            backend.close()


def prepare_run(
    kind: str,
    config: RunConfig,
    *,
    backend: Backend,
    host: str | None = None,
    config_path: str | Path | None = None,
    overrides: Sequence[str] = (),
    name: str | None = None,
    cwd: str | None = None,
    sync: SyncOptions | None = None,
    resources: Resources | None = None,
    keep_snapshot: bool = True,
) -> JobSpec:
    """The JobSpec launch_run submits (snapshot written, inputs sent): nothing is started.

    Without `keep_snapshot` the snapshot is named but not written (a preview)."""
    if kind not in RUNNERS:
        raise ValueError(f"kind must be one of {tuple(RUNNERS)}")
    host = host or LOCAL_HOST
    name = name or run_name(kind, config)
    if resources is None and is_slurm_host(host, backend):
        resources = run_resources(config, config_path=config_path)
    job_id = _new_job_id()
    if config.engine == "llamafactory":  # llamafactory-cli train|export on the host
        from tunedeck.core.runners.engines import llamafactory_spec

        return llamafactory_spec(
            kind, config, backend=backend, host=host, job_id=job_id, name=name,
            config_path=config_path, overrides=overrides, cwd=cwd, resources=resources,
            sync=sync, keep_snapshot=keep_snapshot,
        )  # fmt: skip
    text = config_yaml(config)
    snapshot = write_snapshot(text, job_id, name) if keep_snapshot else snapshot_path(job_id, name)
    local = host == LOCAL_HOST
    python = sys.executable if local else host_python(backend)
    if local:
        argv = [python, "-m", RUNNERS[kind], str(snapshot)]
    else:  # the snapshot is a file here: the host gets every setting as key=value
        argv = remote_runner_argv(
            python, RUNNERS[kind], remote_settings(kind, config, host, backend, sync)
        )
    return JobSpec(
        argv=tuple(argv),
        launch_lines=multi_node_lines(kind, argv, resources),
        name=name,
        kind=kind,
        cwd=(cwd or os.getcwd()) if local else cwd,
        output_dir=output_dir_of(kind, config),
        config=text,
        id=job_id,
        command_line=_command_line(kind, config_path, overrides, snapshot, host),
        resources=resources,
    )


# Slurm's --time forms: minutes, minutes:seconds, hours:minutes:seconds, days-hours[:min[:sec]]
_SLURM_TIME = re.compile(r"\d+(:\d+){0,2}|\d+-\d+(:\d+){0,2}|unlimited|infinite", re.I)
_SLURM_MEM = re.compile(r"\d+[KMGT]?", re.I)
_RESOURCE_FIELDS = ("nodes", "gpus_per_node", "time", "mem", "cpus_per_task", "partition")
_RESOURCE_FIELDS += ("account", "qos", "requeue", "hold")


def run_resources(
    config: RunConfig, flags: dict | None = None, *, config_path: str | Path | None = None
) -> Resources | None:
    """A Slurm run's resources: the config's slurm_* keys, each replaced by the flag of the
    same name when one was given (flags win); None when neither asks for anything.

    A value Slurm cannot read is refused at its key (or flag) before anything is submitted."""
    from_keys = {key.removeprefix("slurm_"): getattr(config, key) for key in SLURM_KEYS}
    from_keys = {name: value for name, value in from_keys.items() if value is not None}
    given = {name: value for name, value in (flags or {}).items() if value not in (None, False)}
    unknown = set(given) - set(_RESOURCE_FIELDS)
    if unknown:
        raise ValueError(f"not a resource: {sorted(unknown)}")
    merged = {**from_keys, **given}
    if not merged:
        return None
    for name, value in merged.items():
        where = (
            Location(column="--" + name.replace("_", "-"))
            if name in given
            else Location(str(config_path) if config_path else None, column=f"slurm_{name}")
        )
        _check_resource(name, value, where)
    return Resources(**merged)


def _check_resource(name: str, value, where: Location) -> None:
    """Refuse a time, memory or count Slurm would not read, located at its key or flag."""
    said = None
    if name == "time" and not _SLURM_TIME.fullmatch(str(value).strip()):
        said = f"{value!r} is not a Slurm time limit (30, 2:00:00, 1-12:00:00)"
    elif name == "mem" and not _SLURM_MEM.fullmatch(str(value).strip()):
        said = f"{value!r} is not a Slurm memory size (2000, 500M, 64G)"
    elif name in ("nodes", "gpus_per_node", "cpus_per_task") and int(value) < 1:
        said = f"must be at least 1, got {value}"
    elif name in ("partition", "account", "qos") and not re.fullmatch(r"[\w.+-]+", str(value)):
        said = f"{value!r} is not a Slurm {name} name"
    if said:
        raise ConfigError(said, location=where, hint="see `sbatch --help` for the forms")


def multi_node_lines(kind: str, argv: Sequence[str], resources: Resources | None):
    """The sbatch lines that start a training run across nodes or GPUs (one torchrun per node
    through srun), when its resources ask for more than one process; else None."""
    if kind != "train" or resources is None:
        return None
    procs = resources.gpus_per_node or 1
    if resources.nodes <= 1 and procs <= 1:
        return None
    from tunedeck.core.jobs.slurm_script import TASK_RUNNER_ARGS
    from tunedeck.core.runners.distributed import torchrun_lines

    # [python, -m, module]: each array task's own arguments come from the script's ARGV
    lines = torchrun_lines(list(argv[:3]), resources.nodes, procs, shell_args=TASK_RUNNER_ARGS)
    return tuple(lines)


def submission_preview(spec: JobSpec, host: str | None, backend: Backend | None = None) -> str:
    """What submitting `spec` on `host` would start: the sbatch script tunedeck would write on a
    Slurm host, else the command line. Nothing is submitted (the Launch screen and --dry-run)."""
    own_backend = backend is None and host not in (None, LOCAL_HOST)
    if host in (None, LOCAL_HOST) or not is_slurm_host(host, backend):
        return shlex.join(spec.argv)
    backend = backend or get_backend(host)
    try:
        return backend.preview([spec])
    finally:
        if own_backend:
            backend.close()


def launch_preview(
    kind: str,
    config: RunConfig,
    *,
    host: str | None,
    config_path: str | Path | None = None,
    overrides: Sequence[str] = (),
    name: str | None = None,
) -> str | None:
    """The sbatch script a run of `config` on a Slurm `host` would submit, its resources from
    the config's slurm_* keys (the Launch screen); None off Slurm. Nothing is written."""
    if not is_slurm_host(host):
        return None
    backend = get_backend(host)
    try:
        spec = prepare_run(
            kind,
            config,
            backend=backend,
            host=host,
            config_path=config_path,
            overrides=overrides,
            name=name,
            keep_snapshot=False,
        )
        return submission_preview(spec, host, backend)
    finally:
        backend.close()


def is_slurm_host(host: str | None, backend: Backend | None = None) -> bool:
    """True for a hosts.toml entry with `scheduler = "slurm"` (or a backend that says so)."""
    if backend is not None and getattr(backend, "scheduler", None) == "slurm":
        return True
    if host in (None, LOCAL_HOST):
        return False
    from tunedeck.core.jobs.hosts import load_hosts

    entry = load_hosts().get(host)
    return entry is not None and entry.is_slurm


def remote_settings(
    kind: str, config: RunConfig, host: str, backend: Backend, sync: SyncOptions | None
) -> dict:
    """The settings a host runs with: synced paths when `sync` is on, checked by the host."""
    settings = config.changed()
    if not hasattr(backend, "request"):
        return settings  # a backend without an agent (slurm) reads the cluster's own paths
    if sync is not None and sync.enabled:
        settings, _ = send_inputs(backend, host, kind, config, sync)
    check_on_host(backend, host, PURPOSES[kind], settings)
    return settings


def run_name(kind: str, config: RunConfig) -> str:
    """A job name for a run without one: the last part of its output folder."""
    folder = output_dir_of(kind, config)
    return Path(folder).name if folder else kind


def output_dir_of(kind: str, config: RunConfig) -> str | None:
    """Where the run writes: output_dir for training, export_dir for quantization."""
    return config.output_dir if kind == "train" else config.export_dir


def config_yaml(config: RunConfig) -> str:
    """The config as the YAML a run keeps (changed keys only; load_config reads it back)."""
    return yaml.safe_dump(config.changed(), sort_keys=False, allow_unicode=True)


def write_snapshot(text: str, job_id: str, name: str) -> Path:
    """Keep the config a job ran with in <state>/runs, named by time, job id and run name."""
    snapshot = snapshot_path(job_id, name)
    ensure(snapshot.parent)
    snapshot.write_text(text, encoding="utf-8")
    return snapshot


def snapshot_path(job_id: str, name: str) -> Path:
    """Where a job's config snapshot is kept: <state>/runs/<time>-<job id>-<name>.yaml."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return state_dir() / "runs" / f"{stamp}-{job_id}-{name}.yaml"


def host_python(backend: Backend) -> str:
    """The interpreter that runs tunedeck on the backend's host, as its agent reports it."""
    hello = backend.check() if hasattr(backend, "check") else {}
    return hello.get("python") or "python3"


def remote_runner_argv(python: str, module: str, settings: dict) -> list[str]:
    """The runner's argv on another host: no config file there, every setting as key=value.

    Values are JSON, which the runner reads back as YAML scalars (strings stay strings).
    """
    argv = [python, "-m", module, STDIN_CONFIG]
    return argv + [f"{key}={json.dumps(value)}" for key, value in settings.items()]


def rerun_command(
    kind: str, config_path: str | Path, overrides: Sequence[str], host: str | None
) -> str:
    """`tunedeck train CFG key=value ... [--host H]`, quoted for a shell."""
    argv = ["tunedeck", kind, str(config_path), *overrides]
    if host and host != LOCAL_HOST:
        argv += ["--host", host]
    return shlex.join(argv)


def _command_line(
    kind: str, config_path: str | Path | None, overrides: Sequence[str], snapshot: Path, host: str
) -> str:
    """The user's own file and overrides when there was a file, else the snapshot alone."""
    if config_path is None:
        return rerun_command(kind, snapshot, (), host)
    return rerun_command(kind, config_path, overrides, host)


def _new_job_id() -> str:
    """An id free in this box's registry, chosen first so that the snapshot can carry it."""
    registry = JobRegistry()
    try:
        return registry.new_id()
    finally:
        registry.close()


def resume_run(job: Job) -> Job:
    """Start a finished job again on its host; a training run resumes from its last checkpoint."""
    if not job.argv:
        raise JobError(
            f"{job.id} is a watched run: tunedeck does not know the command that started it",
            hint="start it again the way it was started, with resume_from_checkpoint: true",
        )
    if not job.state.is_final:
        raise JobError(f"{job.id} is still {job.state.value}")
    argv, command_line = list(job.argv), job.command_line
    if job.kind == "train" and not any(a.startswith("resume_from_checkpoint=") for a in argv):
        argv.append("resume_from_checkpoint=true")  # the runner picks the last checkpoint
        if command_line:
            command_line += " resume_from_checkpoint=true"
    return submit(
        argv,
        name=job.name,
        kind=job.kind,
        host=job.host,
        cwd=job.cwd,
        env=dict(job.env),
        output_dir=job.output_dir,
        config=job.config,
        command_line=command_line,
    )
