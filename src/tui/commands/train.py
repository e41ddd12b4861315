"""`tunedeck train CFG` and `tunedeck quantize CFG`: check a run config, then start its runner as a job.

The job is built and submitted by `tunedeck.core.runners.launch` (shared with the Launch screen);
the runner is a separate process and this module never imports torch. Following the log is a view: Ctrl-C detaches and the job keeps running.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Overrides = Annotated[
    list[str], typer.Argument(help="key=value overrides, e.g. learning_rate=1e-4.")
]
HostOption = Annotated[
    str, typer.Option("--host", "-H", help="Run on this host (hosts.toml or ssh config name).")
]
DetachOption = Annotated[
    bool, typer.Option("--detach", "-d", help="Start the job and return at once.")
]
YesOption = Annotated[
    bool, typer.Option("--yes", "-y", help="Send a big local model to the host without asking.")
]
NoSyncOption = Annotated[
    bool,
    typer.Option(
        "--no-sync", help="Send nothing: the config's paths are the host's own (shared disk)."
    ),
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
        yes: YesOption = False,
        no_sync: NoSyncOption = False,
    ) -> None:
        """Train (LoRA, QLoRA, full; sft, pt, dpo, kto) as a job, and follow its log."""
        raise typer.Exit(launch("train", config, overrides or [], host, detach, yes, no_sync))

    @app.command("quantize")
    def quantize_command(
        config: Annotated[
            Path,
            typer.Argument(help="An export config (export_dir, export_quantization_bit, ...)."),
        ],
        overrides: Overrides = None,
        host: HostOption = None,
        detach: DetachOption = False,
        yes: YesOption = False,
        no_sync: NoSyncOption = False,
    ) -> None:
        """Merge an adapter and GPTQ-quantize a model as a job, and follow its log."""
        raise typer.Exit(launch("quantize", config, overrides or [], host, detach, yes, no_sync))


def launch(
    kind: str,
    config_path: Path,
    overrides: list[str],
    host: str | None,
    detach: bool,
    yes: bool = False,
    no_sync: bool = False,
) -> int:
    """Check the config (no torch), submit the runner as a job, follow it unless detached.

    On a host, what the run reads is sent first (unless --no-sync) and the host checks it."""
    from tunedeck.core.config import check_config
    from tunedeck.core.jobs import get_backend
    from tunedeck.core.runners.launch import PURPOSES, launch_run
    from tunedeck.tui.commands.config import print_check
    from tunedeck.tui.console import note

    local = host in (None, "local")
    # paths name files on the host that runs the job: only a local run can check them here
    check = check_config(config_path, overrides, purpose=PURPOSES[kind], check_files=local)
    print_check(check)
    if not check.ok or check.config is None:
        return 1
    name = config_path.stem
    backend = get_backend(host)
    try:
        job = launch_run(
            kind,
            check.config,
            host=host,
            config_path=config_path,
            overrides=overrides,
            name=name,
            backend=backend,
            sync=None if local else sync_options(yes, no_sync),
        )
        note(f"job {job.id} started: {kind} {name} on {job.host}")
        if detach:
            note(f"follow it with `tunedeck runs logs {job.id} -f`")
            return 0
        return follow(job, backend)
    finally:
        backend.close()


def sync_options(yes: bool, no_sync: bool):
    """Sync on a host: a terminal is asked about a big model, progress shown on a terminal."""
    import sys

    from tunedeck.core.runners.inputs import SyncOptions, ask_on_terminal
    from tunedeck.tui.console import note

    terminal = sys.stdin.isatty() and sys.stderr.isatty()
    return SyncOptions(
        enabled=not no_sync,
        assume_yes=yes,
        confirm=ask_on_terminal if terminal else None,
        on_progress=show_progress if sys.stderr.isatty() else None,
        report=note,
    )


def show_progress(progress) -> None:
    """One self-overwriting line on the terminal: files, bytes, rate."""
    import sys

    from tunedeck.core.jobs.store import human_bytes

    line = (
        f"sending {progress.files_done}/{progress.files_total} files, "
        f"{human_bytes(progress.bytes_done)}/{human_bytes(progress.bytes_total)} "
        f"at {human_bytes(int(progress.rate))}/s"
    )
    end = "\n" if progress.bytes_done >= progress.bytes_total else ""
    sys.stderr.write(f"\r{line}\x1b[K{end}")
    sys.stderr.flush()


def follow(job, backend) -> int:
    """Print the job's log as it grows until it ends, then its state; exit with the job's code.

    Ctrl-C stops following, never the job: it runs in its own session (remotely, under the agent).
    """
    from tunedeck.tui.console import LogWriter, note

    sink = LogWriter()  # inert on a terminal, the exact bytes into a pipe or a file
    try:
        for chunk in backend.follow_log(job, 0):
            sink.write(chunk.data)
        sink.finish()
        final = backend.status([job.id])
    except KeyboardInterrupt:
        note(
            f"\ndetached: job {job.id} keeps running "
            f"(`tunedeck runs logs {job.id} -f`, `tunedeck runs cancel {job.id}`)"
        )
        return 0
    if not final:
        return 1
    ended = final[0]
    note(f"job {ended.id} {ended.state.value} (exit {ended.exit_code})")
    return ended.exit_code if ended.exit_code is not None else 1
