"""The job of a run whose engine is LLaMA-Factory: `llamafactory-cli train|export CFG` on the host.

The config goes to LLaMA-Factory as the user wrote it (tunedeck's own keys taken out); tunedeck
keeps the job control: detached, followed, trainer_log.jsonl on the chart, cancelled as a tree.
More than one process per node goes through FORCE_TORCHRUN / NPROC_PER_NODE.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from tunedeck.core.config import RunConfig
from tunedeck.core.engines.llamafactory_host import (
    engine_argv,
    engine_document,
    engine_env,
    find_install,
    path_with,
)
from tunedeck.core.errors import HostError
from tunedeck.core.jobs import LOCAL_HOST, Backend, JobSpec

REMOTE_RUNNER = "tunedeck.core.engines.run"


def llamafactory_spec(
    kind: str,
    config: RunConfig,
    *,
    backend: Backend,
    host: str,
    job_id: str,
    name: str,
    config_path: str | Path | None,
    overrides: Sequence[str],
    cwd: str | None,
    resources=None,
    sync=None,
    keep_snapshot: bool = True,
) -> JobSpec:
    """The JobSpec of `llamafactory-cli train|export` for a config checked with that engine."""
    from tunedeck.core.config.engine_check import read_settings
    from tunedeck.core.runners import launch

    settings = read_settings(config_path, overrides) if config_path else config.changed()
    document = engine_document(settings)
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    if keep_snapshot:
        snapshot = launch.write_snapshot(text, job_id, name)
    else:  # a preview: named, not written
        snapshot = launch.snapshot_path(job_id, name)
    local = host == LOCAL_HOST
    env = engine_env(config.nproc_per_node)
    if local:
        cli = _local_cli()
        argv = engine_argv(cli, kind, str(snapshot))
        if env:
            env["PATH"] = path_with(cli)
    else:
        python = launch.host_python(backend)
        if hasattr(backend, "request"):  # an agent: sync, then the host's own check
            document = synced_document(backend, host, kind, config, document, sync)
            checked = {**document, "engine": "llamafactory"}
            launch.check_on_host(backend, host, launch.PURPOSES[kind], checked)
        argv = remote_argv(python, kind, document)
    return JobSpec(
        launch_lines=slurm_lines(resources),
        argv=tuple(argv),
        name=name,
        kind=kind,
        cwd=(cwd or os.getcwd()) if local else cwd,
        env=env,
        output_dir=launch.output_dir_of(kind, config),
        config=text,
        id=job_id,
        command_line=launch._command_line(kind, config_path, overrides, snapshot, host),
        resources=resources,
    )


def synced_document(backend, host: str, kind: str, config: RunConfig, document: dict, sync):
    """The YAML mapping with its local model, adapter, dataset_dir and calibration paths sent to
    the host's store and named there, as for the built-in engine; unchanged without sync."""
    if sync is None or not sync.enabled:
        return document
    from tunedeck.core.runners.inputs import send_inputs

    synced, _ = send_inputs(backend, host, kind, config, sync, settings=document)
    return synced


def slurm_lines(resources) -> tuple[str, ...] | None:
    """The sbatch body for more than one process: one llamafactory-cli per node through srun,
    each told NNODES, NODE_RANK ($SLURM_NODEID), NPROC_PER_NODE and the first node's address;
    LLaMA-Factory's launcher starts torchrun on each. None for a single process."""
    if resources is None:
        return None
    nodes, procs = resources.nodes or 1, resources.gpus_per_node or 1
    if nodes <= 1 and procs <= 1:
        return None
    from tunedeck.core.runners.distributed import DEFAULT_PORT, PORT_SPREAD

    node_rank = 'NODE_RANK="$SLURM_NODEID" exec "$@"'
    return (
        'MASTER_NODE="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)"',
        'MASTER_ADDR="$(scontrol show node "$MASTER_NODE" | sed -n \'s/.*NodeAddr=\\([^ ]*\\).*/\\1/p\')"',
        'export MASTER_ADDR="${MASTER_ADDR:-$MASTER_NODE}"',
        f"export MASTER_PORT=$(({DEFAULT_PORT} + SLURM_JOB_ID % {PORT_SPREAD}))",
        f"export FORCE_TORCHRUN=1 NNODES={nodes} NPROC_PER_NODE={procs}",
        "trap 'scancel --signal=TERM \"$SLURM_JOB_ID\"' TERM",
        f"setsid -w srun --nodes {nodes} --ntasks-per-node 1 --kill-on-bad-exit=1"
        f' bash -c {shlex.quote(node_rank)} llamafactory "${{ARGV[@]}}" &',
        "SRUN_PID=$!",
        'while kill -0 "$SRUN_PID" 2>/dev/null; do wait "$SRUN_PID"; done',
        'wait "$SRUN_PID"',
    )


def remote_argv(python: str, kind: str, document: dict) -> list[str]:
    """On another host: tunedeck's exec wrapper writes the YAML there and becomes the CLI."""
    return [python, "-m", REMOTE_RUNNER, kind] + [
        f"{key}={json.dumps(value)}" for key, value in document.items()
    ]


def _local_cli() -> str:
    install = find_install()
    if install is None:
        raise HostError(
            f"engine llamafactory: LLaMA-Factory is not installed on this host ({sys.executable})",
            hint="`tunedeck hosts setup HOST --extras llamafactory`, or point "
            "TUNEDECK_LLAMAFACTORY at its venv",
        )
    return install.cli
