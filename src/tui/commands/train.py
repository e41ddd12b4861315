"""`tunedeck train CFG` and `tunedeck quantize CFG`: check a run config, then start its runner as a job.

The runner (`python -m tunedeck.core.runners.train|quantize`) is a separate process; this module
never imports torch. Following the log is a view: Ctrl-C detaches and the job keeps running.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

RUNNERS = {
    "train": ("tunedeck.core.runners.train", "train"),
    "quantize": ("tunedeck.core.runners.quantize", "export"),
}


Overrides = Annotated[
    list[str], typer.Argument(help="key=value overrides, e.g. learning_rate=1e-4.")
]
HostOption = Annotated[
    str, typer.Option("--host", "-H", help="Run on this host (hosts.toml or ssh config name).")
]
DetachOption = Annotated[
    bool, typer.Option("--detach", "-d", help="Start the job and return at once.")
]


def register(app: typer.Typer) -> None:
    """Add `train` and `quantize` to the root app."""

    @app.command("train")
    def train_command(
        config: Annotated[
            Path, typer.Argument(help="A run config (.yaml or .json, LLaMA-Factory keys).")
        ],
        overrides: Overrides = None,
        host: HostOption = None,
        detach: DetachOption = False,
    ) -> None:
        """Train (LoRA, QLoRA, full; sft, pt, dpo, kto) as a job, and follow its log."""
        raise typer.Exit(launch("train", config, overrides or [], host, detach))

    @app.command("quantize")
    def quantize_command(
        config: Annotated[
            Path,
            typer.Argument(help="An export config (export_dir, export_quantization_bit, ...)."),
        ],
        overrides: Overrides = None,
        host: HostOption = None,
        detach: DetachOption = False,
    ) -> None:
        """Merge an adapter and GPTQ-quantize a model as a job, and follow its log."""
        raise typer.Exit(launch("quantize", config, overrides or [], host, detach))


def launch(
    kind: str, config_path: Path, overrides: list[str], host: str | None, detach: bool
) -> int:
    """Check the config (no torch), submit the runner as a job, follow it unless detached."""
    import os
    import sys
    import time

    import yaml

    from tunedeck.core.config import check_config, dump_config
    from tunedeck.core.jobs import get_backend
    from tunedeck.core.jobs.backend import JobSpec
    from tunedeck.core.locations import ensure, state_dir
    from tunedeck.tui.commands.config import print_check
    from tunedeck.tui.console import err

    module, purpose = RUNNERS[kind]
    local = host in (None, "local")
    # paths name files on the host that runs the job: only a local run can check them here
    check = check_config(config_path, overrides, purpose=purpose, check_files=local)
    print_check(check)
    if not check.ok or check.config is None:
        return 1
    config = check.config
    name = config_path.stem
    backend = get_backend(host)
    try:
        if local:
            runs = ensure(state_dir() / "runs")
            snapshot = runs / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{name}.yaml"
            dump_config(config, snapshot)
            argv = [sys.executable, "-m", module, str(snapshot)]
        else:
            argv = remote_runner_argv(backend.check().get("python"), module, config.changed())
        job = backend.submit(
            JobSpec(
                argv=tuple(argv),
                name=name,
                kind=kind,
                cwd=os.getcwd() if local else None,
                output_dir=config.output_dir if kind == "train" else config.export_dir,
                config=yaml.safe_dump(config.changed(), sort_keys=False, allow_unicode=True),
            )
        )
        err.print(f"job {job.id} started: {kind} {name} on {job.host}", markup=False)
        if detach:
            err.print(f"follow it with `tunedeck runs logs {job.id} -f`", markup=False, style="dim")
            return 0
        return follow(job, backend)
    finally:
        backend.close()


def remote_runner_argv(python: str | None, module: str, settings: dict) -> list[str]:
    """The runner's argv on another host: no config file there, every setting as key=value.

    Values are JSON, which the runner reads back as YAML scalars (strings stay strings).
    """
    import json

    argv = [python or "python3", "-m", module, "-"]
    return argv + [f"{key}={json.dumps(value)}" for key, value in settings.items()]


def follow(job, backend) -> int:
    """Print the job's log as it grows until it ends, then its state; exit with the job's code.

    Ctrl-C stops following, never the job: it runs in its own session (remotely, under the agent).
    """
    import sys

    from tunedeck.tui.console import err

    try:
        for chunk in backend.follow_log(job, 0):
            sys.stdout.buffer.write(chunk.data)
            sys.stdout.flush()
        final = backend.status([job.id])
    except KeyboardInterrupt:
        err.print(
            f"\ndetached: job {job.id} keeps running "
            f"(`tunedeck runs logs {job.id} -f`, `tunedeck runs cancel {job.id}`)",
            markup=False,
        )
        return 0
    if not final:
        return 1
    ended = final[0]
    err.print(f"job {ended.id} {ended.state.value} (exit {ended.exit_code})", markup=False)
    return ended.exit_code if ended.exit_code is not None else 1
