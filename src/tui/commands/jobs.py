"""`tunedeck run -- CMD...`, `tunedeck runs ...` (list, show, logs, cancel, rm) and the hidden
`tunedeck agent` that remote hosts run."""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

from tunedeck.core.errors import UsageError

runs_app = typer.Typer(
    help="Jobs on this box and on remote hosts: list, show, logs, cancel, rm.",
    invoke_without_command=True,
)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command(
        "run",
        context_settings={"allow_interspersed_args": False},
        help="Run a command as a detached job: tunedeck run [--host H] [--name N] -- CMD ARGS...",
    )(run)
    app.add_typer(runs_app, name="runs")
    app.command("agent", hidden=True)(agent)


def run(
    command: Annotated[list[str], typer.Argument(help="The command and its arguments (after --).")],
    host: str = typer.Option(None, "--host", "-H", help="A host from `tunedeck hosts`."),
    name: str = typer.Option(None, "--name", "-n", help="A name to recognise the job by."),
    cwd: str = typer.Option(None, "--cwd", help="Working directory (remote: under its workdir)."),
    env: Annotated[
        list[str] | None, typer.Option("--env", "-e", help="KEY=VALUE for the job (repeatable).")
    ] = None,
    kind: str = typer.Option("command", "--kind", help="command, train or quantize."),
    output_dir: str = typer.Option(None, "--output-dir", help="Where the job writes metrics."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the job id."),
    as_json: bool = typer.Option(False, "--json", help="Print the job record as JSON."),
) -> None:
    from tunedeck.core.jobs import submit

    job = submit(
        list(command),
        name=name or command[0].rsplit("/", 1)[-1],
        kind=kind,
        host=host,
        cwd=cwd,
        env=_parse_env(env or []),
        output_dir=output_dir,
    )
    if as_json:
        _print_json(job.to_dict())
    elif quiet:
        typer.echo(job.id)
    else:
        typer.echo(job.id)
        _note(f"started '{job.name}' on {job.host}; follow it with: tunedeck runs logs {job.id} -f")


@runs_app.callback()
def runs_default(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print the job records as JSON."),
) -> None:
    """With no sub-command: the job list."""
    if ctx.invoked_subcommand is None:
        list_jobs(as_json=as_json, host=None)


@runs_app.command("list")
def list_jobs(
    as_json: bool = typer.Option(False, "--json", help="Print the job records as JSON."),
    host: str = typer.Option(None, "--host", "-H", help="Only this host's jobs."),
) -> None:
    """Jobs with host, state, progress, last loss and age."""
    jobs = _refreshed_jobs(host)
    if as_json:
        _print_json([j.to_dict() for j in jobs])
        return
    if not jobs:
        _note("no jobs yet: start one with `tunedeck run -- CMD` or `tunedeck train CFG`")
        return
    from rich.table import Table

    from tunedeck.tui.console import out

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("ID", "NAME", "HOST", "STATE", "PROGRESS", "LOSS", "AGE", "EXIT"):
        table.add_column(column, no_wrap=column != "NAME")
    now = time.time()
    for job in jobs:
        table.add_row(
            job.id,
            job.name,
            job.host,
            _state_text(job),
            "" if job.progress is None else f"{job.progress:.0%}",
            "" if job.last_loss is None else f"{job.last_loss:.4g}",
            _age(now - job.created_at),
            _exit_text(job),
        )
    out.print(table)


@runs_app.command("show")
def show(
    job_id: str = typer.Argument(..., help="Job id (a unique prefix is enough)."),
    as_json: bool = typer.Option(False, "--json", help="Print the job record as JSON."),
) -> None:
    """Everything known about one job."""
    job = _refreshed(_find(job_id))
    if as_json:
        _print_json(job.to_dict())
        return
    doc = job.to_dict()
    doc["argv"] = " ".join(_shell_quote(a) for a in job.argv)
    for key in ("created_at", "started_at", "ended_at", "cancel_requested_at"):
        if doc.get(key):
            doc[key] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(doc[key]))
    doc.pop("config", None)
    width = max(len(k) for k in doc)
    for key, value in doc.items():
        if value not in (None, {}, ""):
            typer.echo(f"{key:<{width}}  {value}")


@runs_app.command("logs")
def logs(
    job_id: str = typer.Argument(..., help="Job id (a unique prefix is enough)."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing until it ends."),
    tail: int = typer.Option(None, "--tail", "-n", help="Start with the last N lines."),
) -> None:
    """Print a job's output; with -f follow it (Ctrl-C detaches, the job keeps running)."""
    from tunedeck.core.jobs import get_backend

    job = _find(job_id)
    backend = get_backend(job.host)
    sink = sys.stdout.buffer
    try:
        offset = backend.tail_offset(job, tail) if tail is not None else 0
        if follow:
            for chunk in backend.follow_log(job, offset):
                sink.write(chunk.data)
                sink.flush()
            return
        while True:
            chunk = backend.read_log(job, offset)
            sink.write(chunk.data)
            offset = chunk.next_offset
            if not chunk.data or offset >= chunk.size:
                break
        sink.flush()
    except KeyboardInterrupt:
        _note(f"detached; job {job.id} keeps running")
    finally:
        backend.close()


@runs_app.command("cancel")
def cancel(
    job_id: str = typer.Argument(..., help="Job id (a unique prefix is enough)."),
    grace: float = typer.Option(60.0, "--grace", help="Seconds between SIGTERM and SIGKILL."),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
) -> None:
    """SIGTERM the job's whole process tree; SIGKILL what is left after the grace period."""
    from tunedeck.core.jobs import cancel as cancel_job

    if grace < 0:
        raise UsageError("--grace must be zero or more seconds")
    result = cancel_job(_find(job_id), grace)
    if as_json:
        _print_json(result.to_dict())
    elif result.signal is None:
        typer.echo(f"{result.job.id} had already ended: {_state_text(result.job)}")
    elif result.signal == "SIGTERM":
        typer.echo(f"{result.job.id} cancelled: it stopped on SIGTERM")
    else:
        typer.echo(f"{result.job.id} cancelled: SIGKILL was needed after {grace:g} s")
    if result.survivors:
        _note(f"still alive after SIGKILL: {', '.join(map(str, result.survivors))}")
        raise typer.Exit(1)


@runs_app.command("rm")
def rm(job_id: str = typer.Argument(..., help="Job id (a unique prefix is enough).")) -> None:
    """Forget a finished job and delete its log."""
    from tunedeck.core.jobs import get_backend

    job = _find(job_id)
    backend = get_backend(job.host)
    try:
        backend.remove(job)
    finally:
        backend.close()
    typer.echo(f"removed {job.id}")


def agent(
    workdir: str = typer.Option(None, "--workdir", help="Directory jobs run in by default."),
) -> None:
    """Serve the jobs protocol on stdin/stdout (run by the SSH backend on remote hosts)."""
    from tunedeck.core.jobs.agent import serve_stdio

    raise typer.Exit(serve_stdio(workdir))


def _find(job_id: str):
    from tunedeck.core.jobs import find_job

    return find_job(job_id)


def _refreshed(job):
    return _refresh_all([job])[0]


def _refreshed_jobs(host: str | None):
    from tunedeck.core.jobs import JobRegistry

    return _refresh_all(JobRegistry().list(host))


def _refresh_all(jobs):
    """Fresh states through the core pool; a host that did not answer keeps its last state."""
    from tunedeck.core.jobs.pool import BackendPool

    with BackendPool() as pool:
        refreshed = pool.refresh(jobs)
    for host, why in refreshed.unreachable.items():
        _note(f"{host}: showing the last known state ({why})")
    return list(refreshed.jobs)


def _parse_env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--env takes KEY=VALUE, got '{pair}'")
        env[key] = value
    return env


def _state_text(job) -> str:
    text = job.state.value
    if job.cancel_signal:
        text += f" ({job.cancel_signal})"
    return text


def _exit_text(job) -> str:
    if job.exit_code is not None:
        return str(job.exit_code)
    if job.signal:
        import signal

        try:
            return signal.Signals(job.signal).name
        except ValueError:
            return f"signal {job.signal}"
    return ""


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _shell_quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def _print_json(doc) -> None:
    from tunedeck.tui.console import print_json

    print_json(doc)


def _note(text: str) -> None:
    from tunedeck.tui.console import err

    err.print(text, markup=False, highlight=False, soft_wrap=True)
