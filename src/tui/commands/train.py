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

DryRunOption = Annotated[
    bool,
    typer.Option(
        "--dry-run", help="Print what would be submitted (the sbatch script on a Slurm host)."
    ),
]
SweepOption = Annotated[
    list[str] | None,
    typer.Option(
        "--sweep",
        help="key=v1,v2: one run per value (repeatable: the grid); a Slurm job array on a cluster.",
    ),
]
EngineOption = Annotated[
    str | None,
    typer.Option(
        "--engine",
        help="builtin, llamafactory (llamafactory-cli on the host) or auto (default: the config's).",
    ),
]
_SLURM = "Slurm"
NodesOption = Annotated[
    int | None, typer.Option("--nodes", help="Nodes to run on (Slurm).", rich_help_panel=_SLURM)
]
GpusOption = Annotated[
    int | None,
    typer.Option("--gpus-per-node", help="GPUs per node (Slurm).", rich_help_panel=_SLURM),
]
TimeOption = Annotated[
    str | None,
    typer.Option("--time", help="Time limit, e.g. 30, 2:00:00 (Slurm).", rich_help_panel=_SLURM),
]
MemOption = Annotated[
    str | None,
    typer.Option("--mem", help="Memory per node, e.g. 64G (Slurm).", rich_help_panel=_SLURM),
]
CpusOption = Annotated[
    int | None,
    typer.Option("--cpus-per-task", help="CPUs per task (Slurm).", rich_help_panel=_SLURM),
]
PartitionOption = Annotated[
    str | None,
    typer.Option("--partition", help="Partition (default: the host's).", rich_help_panel=_SLURM),
]
AccountOption = Annotated[
    str | None,
    typer.Option("--account", help="Account (default: the host's).", rich_help_panel=_SLURM),
]
QosOption = Annotated[
    str | None,
    typer.Option("--qos", help="Quality of service (default: the host's).", rich_help_panel=_SLURM),
]
RequeueOption = Annotated[
    bool,
    typer.Option(
        "--requeue",
        help="After a time limit or preemption, resubmit and resume from the last checkpoint.",
        rich_help_panel=_SLURM,
    ),
]


def resources_from_flags(host: str | None, **flags):
    """The Resources the Slurm flags ask for (None when none was given); refused off Slurm."""
    from tunedeck.core.jobs.backend import Resources

    given = slurm_flags_given(host, **flags)
    return Resources(**given) if given else None


def slurm_flags_given(host: str | None, **flags) -> dict:
    """The Slurm flags that were given, by Resources field; refused on a host without Slurm."""
    from tunedeck.core.errors import Location, UsageError
    from tunedeck.core.runners.launch import is_slurm_host

    given = {key: value for key, value in flags.items() if value not in (None, False)}
    if not given:
        return {}
    if not is_slurm_host(host):
        flag = "--" + next(iter(given)).replace("_", "-")
        raise UsageError(
            f"{flag} asks a scheduler for resources, and {host or 'this machine'} has none",
            location=Location(column=flag),
            hint="use a Slurm host (`tunedeck hosts add NAME TARGET --slurm`) or drop the flag",
        )
    for key in ("nodes", "gpus_per_node", "cpus_per_task"):
        if key in given and given[key] < 1:
            flag = "--" + key.replace("_", "-")
            raise UsageError(f"{flag} must be at least 1", location=Location(column=flag))
    return given


def with_engine(overrides: list[str] | None, engine: str | None) -> list[str]:
    """The overrides, plus `engine=NAME` when --engine was given."""
    return [*(overrides or []), *([f"engine={engine}"] if engine else [])]


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
        dry_run: DryRunOption = False,
        sweep: SweepOption = None,
        nodes: NodesOption = None,
        gpus_per_node: GpusOption = None,
        time: TimeOption = None,
        mem: MemOption = None,
        cpus_per_task: CpusOption = None,
        partition: PartitionOption = None,
        account: AccountOption = None,
        qos: QosOption = None,
        requeue: RequeueOption = False,
        engine: EngineOption = None,
    ) -> None:
        """Train (LoRA, QLoRA, full; sft, pt, dpo, kto) as a job, and follow its log."""
        flags = slurm_flags_given(
            host, nodes=nodes, gpus_per_node=gpus_per_node, time=time, mem=mem,
            cpus_per_task=cpus_per_task, partition=partition, account=account, qos=qos,
            requeue=requeue,
        )  # fmt: skip
        raise typer.Exit(
            launch(
                "train",
                config,
                with_engine(overrides, engine),
                host,
                detach,
                yes,
                no_sync,
                flags=flags,
                dry_run=dry_run,
                sweeps=sweep or [],
            )  # fmt: skip
        )

    @app.command("quantize")
    @app.command("export", help="Merge an adapter / GPTQ-quantize (LLaMA-Factory's name).")
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
        dry_run: DryRunOption = False,
        nodes: NodesOption = None,
        gpus_per_node: GpusOption = None,
        time: TimeOption = None,
        mem: MemOption = None,
        cpus_per_task: CpusOption = None,
        partition: PartitionOption = None,
        account: AccountOption = None,
        qos: QosOption = None,
        requeue: RequeueOption = False,
        engine: EngineOption = None,
    ) -> None:
        """Merge an adapter and GPTQ-quantize a model as a job, and follow its log."""
        flags = slurm_flags_given(
            host, nodes=nodes, gpus_per_node=gpus_per_node, time=time, mem=mem,
            cpus_per_task=cpus_per_task, partition=partition, account=account, qos=qos,
            requeue=requeue,
        )  # fmt: skip
        raise typer.Exit(
            launch(
                "quantize",
                config,
                with_engine(overrides, engine),
                host,
                detach,
                yes,
                no_sync,
                flags=flags,
                dry_run=dry_run,
            )  # fmt: skip
        )


def launch(
    kind: str,
    config_path: Path,
    overrides: list[str],
    host: str | None,
    detach: bool,
    yes: bool = False,
    no_sync: bool = False,
    *,
    flags: dict | None = None,
    dry_run: bool = False,
    sweeps: list[str] = (),
) -> int:
    """Check the config (no torch), submit the runner as a job, follow it unless detached.

    On a host, what the run reads is sent first (unless --no-sync) and the host checks it.
    --dry-run prints what would be submitted; --sweep submits one job per grid point.
    On a Slurm host the resources are the config's slurm_* keys, each replaced by its flag."""
    from tunedeck.core.config import check_config
    from tunedeck.core.jobs import get_backend
    from tunedeck.core.runners.launch import PURPOSES, is_slurm_host, launch_run, run_resources
    from tunedeck.tui.commands.config import print_check
    from tunedeck.tui.console import note

    if sweeps and dry_run:
        from tunedeck.core.errors import UsageError

        raise UsageError("--dry-run previews one run: drop --sweep to see its script")
    parsed_sweeps = _parse_sweeps(sweeps) if sweeps else None
    local = host in (None, "local")
    # paths name files on the host that runs the job: only a local run can check them here
    # a Slurm host whose target is `local` reads this machine's files: they are checked here
    here = local or _is_this_machine(host)
    check = check_config(config_path, overrides, purpose=PURPOSES[kind], check_files=here)
    print_check(check)
    if not check.ok or check.config is None:
        return 1
    name = config_path.stem
    resources = None
    if is_slurm_host(host):
        resources = run_resources(check.config, flags, config_path=config_path)
    backend = get_backend(host)
    try:
        if dry_run:
            return preview(
                kind, check.config, host, config_path, overrides, name, backend, resources
            )
        if parsed_sweeps is not None:
            return launch_grid(
                kind, check.config, parsed_sweeps, host, config_path, overrides, name, backend,
                None if local else sync_options(yes, no_sync), resources,
            )  # fmt: skip
        job = launch_run(
            kind,
            check.config,
            host=host,
            config_path=config_path,
            overrides=overrides,
            name=name,
            backend=backend,
            sync=None if local else sync_options(yes, no_sync),
            resources=resources,
        )
        note(f"job {job.id} started: {kind} {name} on {job.host}{_scheduler_note(job)}")
        if detach:
            note(f"follow it with `tunedeck runs logs {job.id} -f`")
            return 0
        return follow(job, backend)
    finally:
        backend.close()


def preview(kind, config, host, config_path, overrides, name, backend, resources) -> int:
    """Print the sbatch script (Slurm) or the command line a run would submit; submit nothing."""
    from tunedeck.core.runners.launch import prepare_run, submission_preview

    spec = prepare_run(
        kind,
        config,
        backend=backend,
        host=host,
        config_path=config_path,
        overrides=overrides,
        name=name,
        resources=resources,
        keep_snapshot=False,
    )
    typer.echo(submission_preview(spec, host, backend).rstrip("\n"))
    return 0


def launch_grid(
    kind, config, sweeps, host, config_path, overrides, name, backend, sync, resources
) -> int:
    """Submit one job per grid point (a job array on Slurm) and say which; never follows."""
    from tunedeck.core.runners.sweep import launch_sweep
    from tunedeck.tui.console import note

    jobs = launch_sweep(
        kind,
        config,
        sweeps,
        host=host,
        config_path=config_path,
        overrides=overrides,
        name=name,
        backend=backend,
        sync=sync,
        resources=resources,
    )
    for job in jobs:
        typer.echo(f"{job.id}\t{job.name}{_scheduler_note(job)}")
    group = jobs[0].group if jobs else None
    note(f"{len(jobs)} jobs started on {jobs[0].host if jobs else host} (group {group})")
    return 0


def _parse_sweeps(values: list[str]):
    from tunedeck.core.runners.sweep import parse_sweeps

    return parse_sweeps(values)


def _is_this_machine(host: str | None) -> bool:
    from tunedeck.core.jobs.hosts import load_hosts

    entry = load_hosts().get(host or "")
    return entry is not None and entry.is_this_machine


def _scheduler_note(job) -> str:
    return f" (Slurm job {job.scheduler_id})" if job.scheduler_id else ""


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
