"""`tunedeck hosts ...`: the remote boxes jobs can run on (hosts.toml)."""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Annotated

import typer

from tunedeck.core.errors import UsageError
from tunedeck.core.text import inert

ShowEnv = Annotated[
    bool, typer.Option("--show-env", help="Show --env values (masked as *** otherwise).")
]

app = typer.Typer(
    help="Remote hosts for jobs: add, list, check, setup, rm.", invoke_without_command=True
)


@app.callback()
def hosts_default(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print the hosts as JSON."),
    show_env: ShowEnv = False,
) -> None:
    """With no sub-command: the host list."""
    if ctx.invoked_subcommand is None:
        list_hosts(as_json=as_json, show_env=show_env)


@app.command("add")
def add(
    name: str = typer.Argument(..., help="A short name to use with --host."),
    target: str = typer.Argument(..., help="The ssh destination: user@host or an ssh config Host."),
    workdir: str = typer.Option(None, "--workdir", help="Remote directory jobs run in."),
    command: str = typer.Option(
        "tunedeck", "--command", help="How to start tunedeck there, e.g. '/opt/venv/bin/tunedeck'."
    ),
    env: Annotated[
        list[str] | None, typer.Option("--env", "-e", help="KEY=VALUE for the remote agent.")
    ] = None,
    ssh_option: Annotated[
        list[str] | None,
        typer.Option("--ssh-option", help="Extra ssh arguments, e.g. '-p 2222' (repeatable)."),
    ] = None,
    slurm: bool = typer.Option(
        False, "--slurm", help="A Slurm cluster's login node: jobs are submitted with sbatch."
    ),
    partition: str = typer.Option(None, "--partition", help="Slurm partition jobs ask for."),
    account: str = typer.Option(None, "--account", help="Slurm account jobs are charged to."),
    qos: str = typer.Option(None, "--qos", help="Slurm quality of service jobs ask for."),
) -> None:
    """Add or replace a host in hosts.toml (target `local` with --slurm: this login node)."""
    from tunedeck.core.jobs.hosts import Host, add_host, hosts_file

    pairs = {}
    for pair in env or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--env takes KEY=VALUE, got '{pair}'")
        pairs[key] = value
    options = tuple(part for option in ssh_option or [] for part in shlex.split(option))
    if not slurm and (partition or account or qos):
        flag = "--partition" if partition else "--account" if account else "--qos"
        raise UsageError(f"{flag} is a Slurm default: add --slurm", hint="or drop the flag")
    scheduler = "slurm" if slurm else None
    add_host(
        Host(name, target, workdir, command, pairs, options, scheduler, partition, account, qos)
    )
    kind = " (Slurm)" if slurm else ""
    _echo(f"added {name} -> {target}{kind} in {hosts_file()}")


@app.command("list")
def list_hosts(
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
    show_env: ShowEnv = False,
) -> None:
    """Hosts from hosts.toml (--env values masked unless --show-env)."""
    from tunedeck.core.jobs.hosts import hosts_file, load_hosts
    from tunedeck.core.jobs.model import mask_env

    hosts = load_hosts()
    if as_json:
        from tunedeck.tui.console import print_json

        docs = [h.to_dict() for h in hosts.values()]
        print_json([{**doc, "env": mask_env(doc["env"], reveal=show_env)} for doc in docs])
        return
    if not hosts:
        _echo(f"no hosts in {hosts_file()}: add one with `tunedeck hosts add NAME TARGET`")
        return
    for host in hosts.values():
        slurm = f"  slurm{_defaults(host)}" if host.is_slurm else ""
        _echo(f"{host.name:<16} {host.target:<28} {host.workdir or '~'}  ({host.command}){slurm}")


def _defaults(host) -> str:
    pairs = [f"{key}={getattr(host, key)}" for key in ("partition", "account", "qos")]
    shown = [pair for pair in pairs if not pair.endswith("=None")]
    return f" ({', '.join(shown)})" if shown else ""


@app.command("check")
def check(
    name: str = typer.Argument(..., help="A host name (or an ssh config Host)."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Connect, and report the remote tunedeck version and GPUs (a Slurm host: Slurm's version
    and its partitions, nodes and GPUs)."""
    from tunedeck.core.jobs import get_backend

    backend = get_backend(name)
    try:
        hello = backend.check()
        gpus = backend.gpus()
        slurm = backend.info() if getattr(backend, "scheduler", None) == "slurm" else None
    finally:
        backend.close()
    if as_json:
        from tunedeck.tui.console import print_json

        doc = {"host": name, "agent": hello, "gpus": [g.to_dict() for g in gpus]}
        if slurm is not None:
            doc["slurm"] = slurm.to_dict()
        print_json(doc)
        return
    protocol = f" (protocol {hello['protocol']})" if "protocol" in hello else ""
    _echo(f"{name}: reachable, tunedeck {hello['version']}{protocol}")
    _echo(f"  host {hello['hostname']}, workdir {hello['workdir']}")
    if "llamafactory" in hello:
        lf = hello["llamafactory"]
        _echo(f"  LLaMA-Factory {lf['version']} ({lf['cli']})" if lf else "  no LLaMA-Factory")
    if slurm is not None:
        _echo(f"  Slurm {slurm.version.split()[-1]}: {len(slurm.partitions)} partition(s)")
        for partition in slurm.partitions:
            _echo(f"    {partition.line()}")
    if not gpus:
        _echo("  no GPU (nvidia-smi not found or no device)")
    for gpu in gpus:
        _echo(
            f"  GPU {gpu.index}: {gpu.name}, {gpu.memory_used_mib}/{gpu.memory_total_mib} MiB,"
            f" {gpu.utilization_pct}% busy, {len(gpu.processes)} process(es)"
        )


@app.command("setup")
def setup(
    name: str = typer.Argument(..., help="The host to set up (from hosts.toml)."),
    extras: str = typer.Option(
        "train", "--extras", help="tunedeck extras to install, comma-separated ('' for none)."
    ),
    torch: str = typer.Option(
        None, "--torch", help="torch build tag (cu128, cpu) or requirement; default: the driver's."
    ),
    offline: bool = typer.Option(
        False, "--offline", help="Push wheels built here instead of using the host's index."
    ),
    wheel: Annotated[
        Path | None,
        typer.Option("--wheel", help="Install this tunedeck wheel instead of one built here."),
    ] = None,
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Install this tunedeck on a host in a venv of its own and record its command."""
    from tunedeck.core.jobs.hosts import get_host
    from tunedeck.core.jobs.setup import SetupOptions, setup_host

    wanted = tuple(e.strip() for e in extras.split(",") if e.strip())
    options = SetupOptions(extras=wanted, torch=torch, offline=offline, wheel=wheel)
    result = setup_host(get_host(name), options, progress=_ProgressLines())
    if as_json:
        from tunedeck.tui.console import print_json

        print_json(result.to_dict())
        return
    if not result.changed:
        _echo(f"{name}: already set up: tunedeck {result.version} in {result.venv}")
        return
    how = f" from {result.source}" if result.source else ""
    _echo(f"{name}: set up: tunedeck {result.version} in {result.venv}{how}")
    _echo(f"  command = {result.command} (hosts.toml); log: {result.log}")


class _ProgressLines:
    """Progress on stderr: a line for each new step or package, else at most one a second."""

    def __init__(self) -> None:
        self.last_key: tuple[str, str] | None = None
        self.last_time = 0.0

    def __call__(self, progress) -> None:
        now = time.monotonic()
        key = (progress.step, progress.package)
        finished = progress.total_bytes and progress.done_bytes >= progress.total_bytes
        if key == self.last_key and now - self.last_time < 1.0 and not finished:
            return
        self.last_key, self.last_time = key, now
        typer.echo(inert(f"setup: {progress.line()}"), err=True)  # host text: shown, not obeyed


@app.command("rm")
def rm(name: str = typer.Argument(..., help="The host to forget.")) -> None:
    """Remove a host from hosts.toml."""
    from tunedeck.core.jobs.hosts import remove_host

    remove_host(name)
    _echo(f"removed {name}")


def _echo(text: str) -> None:
    """A line on stdout; names, targets and what a host answered are shown, never obeyed."""
    typer.echo(inert(text))
