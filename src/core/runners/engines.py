"""The job of a run whose engine is LLaMA-Factory: `llamafactory-cli train|export CFG` on the host.

The config goes to LLaMA-Factory as the user wrote it (tunedeck's own keys taken out); tunedeck
keeps the job control: detached, followed, trainer_log.jsonl on the chart, cancelled as a tree.
More than one process per node goes through FORCE_TORCHRUN / NPROC_PER_NODE.
"""

from __future__ import annotations

import json
import os
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
) -> JobSpec:
    """The JobSpec of `llamafactory-cli train|export` for a config checked with that engine."""
    from tunedeck.core.config.engine_check import read_settings
    from tunedeck.core.runners import launch

    settings = read_settings(config_path, overrides) if config_path else config.changed()
    document = engine_document(settings)
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    snapshot = launch.write_snapshot(text, job_id, name)
    local = host == LOCAL_HOST
    env = engine_env(config.nproc_per_node)
    if local:
        cli = _local_cli()
        argv = engine_argv(cli, kind, str(snapshot))
        if env:
            env["PATH"] = path_with(cli)
    else:
        python = launch.host_python(backend)
        checked = {**document, "engine": "llamafactory"}
        if hasattr(backend, "request"):
            launch.check_on_host(backend, host, launch.PURPOSES[kind], checked)
        argv = remote_argv(python, kind, document)
    return JobSpec(
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
