"""`tunedeck run -- CMD...`, `tunedeck runs ...` (list, show, logs, cancel, pull, rm; add, watch,
unwatch, wait for runs tunedeck did not start) and the hidden `tunedeck agent` that remote hosts
run."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from tunedeck.core.errors import JobError, UsageError
from tunedeck.tui.commands import train as slurm_flags  # the Slurm resource flags of `run`

RECENT = 50
COLUMNS = ("ID", "NAME", "HOST", "STATE", "PROGRESS", "LOSS", "AGE", "EXIT")
ShowEnv = Annotated[
    bool, typer.Option("--show-env", help="Show -e values (masked as *** otherwise).")
]
ShowAll = Annotated[
    bool, typer.Option("--all", "-a", help=f"Every run, not only the newest {RECENT}.")
]
Limit = Annotated[
    int | None,
    typer.Option(
        "--limit",
        help=f"The newest N runs (the table shows {RECENT} unless --all; --json lists every run"
        " unless --limit is given).",
    ),
]

runs_app = typer.Typer(
    help="Jobs on this box and on remote hosts: list, show, logs, cancel, pull, rm; watched runs"
    " (add, watch, unwatch) and wait.",
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
    show_env: ShowEnv = False,
    dry_run: slurm_flags.DryRunOption = False,
    nodes: slurm_flags.NodesOption = None,
    gpus_per_node: slurm_flags.GpusOption = None,
    time_limit: slurm_flags.TimeOption = None,
    mem: slurm_flags.MemOption = None,
    cpus_per_task: slurm_flags.CpusOption = None,
    partition: slurm_flags.PartitionOption = None,
    account: slurm_flags.AccountOption = None,
    qos: slurm_flags.QosOption = None,
    requeue: slurm_flags.RequeueOption = False,
) -> None:
    from tunedeck.core.jobs import job_spec, submit

    resources = slurm_flags.resources_from_flags(
        host, nodes=nodes, gpus_per_node=gpus_per_node, time=time_limit, mem=mem,
        cpus_per_task=cpus_per_task, partition=partition, account=account, qos=qos,
        requeue=requeue,
    )  # fmt: skip
    what = dict(name=name or command[0].rsplit("/", 1)[-1], kind=kind, cwd=cwd,
                env=_parse_env(env or []), output_dir=output_dir, resources=resources)  # fmt: skip
    if dry_run:
        from tunedeck.core.runners.launch import submission_preview

        typer.echo(submission_preview(job_spec(list(command), **what), host).rstrip("\n"))
        return
    job = submit(list(command), host=host, **what)
    if as_json:
        _print_json(job.to_public_dict(reveal_env=show_env))
    elif quiet:
        _echo(job.id)
    else:
        _echo(job.id)
        _note(f"started '{job.name}' on {job.host}; follow it with: tunedeck runs logs {job.id} -f")


@runs_app.callback()
def runs_default(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print the job records as JSON."),
    show_all: ShowAll = False,
    limit: Limit = None,
    show_env: ShowEnv = False,
) -> None:
    """With no sub-command: the newest runs (--all for every one)."""
    if ctx.invoked_subcommand is None:
        list_jobs(as_json=as_json, host=None, show_all=show_all, limit=limit, show_env=show_env)


@runs_app.command("list")
def list_jobs(
    as_json: bool = typer.Option(False, "--json", help="Print the job records as JSON."),
    host: str = typer.Option(None, "--host", "-H", help="Only this host's jobs."),
    show_all: ShowAll = False,
    limit: Limit = None,
    show_env: ShowEnv = False,
) -> None:
    """Jobs with host, state, progress, last loss and age, oldest first; the newest 50 by default.
    New run folders under watched folders are added first."""
    _discover()
    jobs, total = _refreshed_jobs(host, _how_many(as_json, show_all, limit))
    if as_json:
        _print_json([j.to_public_dict(reveal_env=show_env) for j in jobs])
        return
    if not jobs:
        _note("no jobs yet: start one with `tunedeck run -- CMD` or `tunedeck train CFG`")
        return
    from tunedeck.tui.console import print_table

    now = time.time()
    print_table(COLUMNS, [_row(job, now) for job in jobs], squeeze=COLUMNS.index("NAME"))
    if total > len(jobs):
        _note(f"{total - len(jobs)} older runs: --all to list them")


@runs_app.command("show")
def show(
    job_id: str = typer.Argument(..., help="Job id (a unique prefix is enough)."),
    as_json: bool = typer.Option(False, "--json", help="Print the job record as JSON."),
    show_env: ShowEnv = False,
) -> None:
    """Everything known about one job (-e values masked unless --show-env)."""
    from tunedeck.tui.console import print_field

    job = _refreshed(_find(job_id))
    doc = job.to_public_dict(reveal_env=show_env)
    if as_json:
        _print_json(doc)
        return
    doc["argv"] = " ".join(_shell_quote(a) for a in job.argv)
    quote = _shell_quote if show_env else str
    doc["env"] = " ".join(f"{key}={quote(value)}" for key, value in doc["env"].items())
    for key in ("created_at", "started_at", "ended_at", "cancel_requested_at"):
        if doc.get(key):
            doc[key] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(doc[key]))
    doc.pop("config", None)
    width = max(len(k) for k in doc)
    for key, value in doc.items():
        if value not in (None, {}, ""):
            print_field(key, str(value), width)


@runs_app.command("logs")
def logs(
    job_id: str = typer.Argument(..., help="Job id (a unique prefix is enough)."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing until it ends."),
    tail: int = typer.Option(None, "--tail", "-n", help="Start with the last N lines."),
    raw: bool = typer.Option(
        None,
        "--raw/--escape",
        help="--raw: the log's bytes as written; --escape: control characters (ESC, CR, ...)"
        " shown as \\x1b etc. Default: escaped on a terminal, raw into a pipe or a file.",
    ),
) -> None:
    """Print a job's output; with -f follow it (Ctrl-C detaches, the job keeps running)."""
    from tunedeck.core.jobs import get_backend
    from tunedeck.tui.console import LogWriter

    job = _find(job_id)
    if not job.log_path:
        raise JobError(
            f"{job.id} is a watched run with no log file known",
            hint=f"give it one: tunedeck runs add {job.output_dir} --log FILE",
        )
    backend = get_backend(job.host)
    sink = LogWriter(raw)
    try:
        offset = backend.tail_offset(job, tail) if tail is not None else 0
        if follow:
            for chunk in backend.follow_log(job, offset):
                sink.write(chunk.data)
            sink.finish()
            return
        while True:
            chunk = backend.read_log(job, offset)
            sink.write(chunk.data)
            offset = chunk.next_offset
            if not chunk.data or offset >= chunk.size:
                break
        sink.finish()
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
        _print_json(result.to_public_dict())
    elif result.leftovers:
        pids = ", ".join(map(str, result.leftovers))
        _echo(f"{result.job.id} had already ended; ended what its tree left running: {pids}")
    elif result.signal is None:
        _echo(f"{result.job.id} had already ended: {_state_text(result.job)}")
    elif result.signal == "SIGTERM":
        _echo(f"{result.job.id} cancelled: it stopped on SIGTERM")
    else:
        _echo(f"{result.job.id} cancelled: SIGKILL was needed after {grace:g} s")
    if result.survivors:
        _note(f"still alive after SIGKILL: {', '.join(map(str, result.survivors))}")
        raise typer.Exit(1)


@runs_app.command("pull")
def pull(
    job_id: str = typer.Argument(..., help="Job id (a unique prefix is enough)."),
    dest: str = typer.Argument(None, help="Where to put it (default: ./<run name>)."),
    checkpoints: bool = typer.Option(
        False, "--checkpoints", help="Bring the checkpoint-* folders too (left out by default)."
    ),
    yes: bool = typer.Option(
        False, "--yes", "-y", help="Replace local files that are newer than the host's copy."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
) -> None:
    """Bring a run's output dir (adapter, tokenizer, trainer_log.jsonl ...) back from its host;
    a second pull fetches only what is missing or changed."""
    from tunedeck.core.jobs.pull import conflict_error, plan_pull
    from tunedeck.core.jobs.pull import pull as pull_run

    job = _refreshed(_find(job_id))
    plan = plan_pull(job, dest, checkpoints=checkpoints)
    if plan.conflicts and not yes and not _confirm_overwrite(plan):
        raise conflict_error(plan)
    if not job.state.is_final:
        _note(f"{job.id} is still {job.state.value}: its output may still change")
    meter = _PullMeter()
    try:
        result = pull_run(plan, overwrite_newer=bool(plan.conflicts), on_progress=meter.show)
    finally:
        meter.finish()
    if as_json:
        _print_json(result.to_dict())
        return
    _echo(result.summary())
    if result.checkpoints_left_out:
        _note(
            f"{result.checkpoints_left_out} checkpoint folder(s) left out: --checkpoints adds them"
        )


@runs_app.command("resume")
def resume(
    job_id: str = typer.Argument(..., help="Job id (a unique prefix is enough)."),
    as_json: bool = typer.Option(False, "--json", help="Print the new job as JSON."),
) -> None:
    """Start a finished job again on its host; a training run resumes from its last checkpoint."""
    from tunedeck.core.runners.launch import resume_run

    job = resume_run(_find(job_id))
    if as_json:
        _print_json(job.to_public_dict())
    else:
        _echo(f"job {job.id} started: {job.kind} {job.name} on {job.host}")


@runs_app.command("rm")
def rm(job_id: str = typer.Argument(..., help="Job id (a unique prefix is enough).")) -> None:
    """Forget a finished job and delete its log; a watched run is forgotten in any state, its
    folder left as it is."""
    from tunedeck.core.jobs import get_backend
    from tunedeck.core.jobs.watch import is_watched

    job = _find(job_id)
    backend = get_backend(job.host)
    try:
        backend.remove(job)
    finally:
        backend.close()
    if is_watched(job):
        _echo(f"forgot watched run {job.id}; {job.output_dir} is left as it is")
    else:
        _echo(f"removed {job.id}")


@runs_app.command("add")
def add(
    output_dir: str = typer.Argument(..., help="The run's output_dir (on --host when given)."),
    host: str = typer.Option(None, "--host", "-H", help="The host that has the folder."),
    name: str = typer.Option(None, "--name", "-n", help="A name (default: the folder's name)."),
    log: str = typer.Option(None, "--log", help="The file the run's output goes to."),
    pid: int = typer.Option(None, "--pid", help="The training process: lets cancel stop it."),
    as_json: bool = typer.Option(False, "--json", help="Print the job record as JSON."),
) -> None:
    """Watch a run tunedeck did not start (llamafactory-cli, a Trainer script, a notebook): its
    progress, loss and state are read from its folder, live."""
    from tunedeck.core.jobs.pool import BackendPool

    with BackendPool() as pool:
        job = pool.backend(host).add_watched(output_dir, name=name, log=log, pid=pid)
    if as_json:
        _print_json(job.to_public_dict())
        return
    _echo(job.id)
    _note(f"watching '{job.name}' ({job.origin}) on {job.host}: {job.state.value}")


@runs_app.command("watch")
def watch(
    folder: str = typer.Argument(
        None, help="A folder whose new run folders are added by themselves."
    ),
    host: str = typer.Option(None, "--host", "-H", help="The host that has the folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the watched folders as JSON."),
) -> None:
    """Watch a folder (e.g. LLaMA-Factory's saves/): every run folder that appears under it is
    listed; with no FOLDER, list the watched folders."""
    from tunedeck.core.jobs.watched_folders import watch_folder, watched_folders

    if folder is not None:
        added = watch_folder(folder, host)
        _note(f"watching {added.path} on {added.host}: {len(added.runs)} run(s) found")
    folders = watched_folders()
    if as_json:
        _print_json([f.to_dict() for f in folders])
    elif folder is None:
        for item in folders:
            _echo(f"{item.host}:{item.path}")
        if not folders:
            _note("no watched folders: add one with `tunedeck runs watch DIR [--host H]`")


@runs_app.command("unwatch")
def unwatch(
    folder: str = typer.Argument(..., help="A watched folder, as `tunedeck runs watch` lists it."),
    host: str = typer.Option(None, "--host", "-H", help="The host that has the folder."),
) -> None:
    """Stop watching a folder; the runs found under it stay listed (rm forgets one)."""
    from tunedeck.core.jobs.watched_folders import unwatch_folder

    removed = unwatch_folder(folder, host)
    _echo(f"no longer watching {removed.host}:{removed.path}")


@runs_app.command("wait")
def wait(
    job_id: str = typer.Argument(..., help="Job id (a unique prefix is enough)."),
    timeout: float = typer.Option(None, "--timeout", help="Give up after S seconds (exit 124)."),
    as_json: bool = typer.Option(False, "--json", help="Print the final job record as JSON."),
) -> None:
    """Return when the run ends: exit 0 if it succeeded, 1 if it failed, was cancelled or lost,
    124 when --timeout ran out first. A stale run is waited for (it may come back)."""
    from tunedeck.core.jobs.wait import wait_for_end

    if timeout is not None and timeout < 0:
        raise UsageError("--timeout must be zero or more seconds")
    result = wait_for_end(_find(job_id), timeout=timeout)
    if as_json:
        _print_json({**result.job.to_public_dict(), "ended": result.ended})
    elif result.ended:
        _echo(f"{result.job.id} {_state_text(result.job)}")
    else:
        _echo(f"{result.job.id} still {result.job.state.value} after {timeout:g} s")
    raise typer.Exit(result.exit_code)


def agent(
    workdir: str = typer.Option(None, "--workdir", help="Directory jobs run in by default."),
) -> None:
    """Serve the jobs protocol on stdin/stdout (run by the SSH backend on remote hosts)."""
    from tunedeck.core.jobs.agent import serve_stdio

    raise typer.Exit(serve_stdio(workdir))


def _find(job_id: str):
    from tunedeck.core.jobs import find_job

    return find_job(job_id)


def _confirm_overwrite(plan) -> bool:
    """On a terminal, ask before replacing newer local files; elsewhere never."""
    import sys

    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return False
    for conflict in plan.conflicts:
        _note(f"newer here and different: {plan.dest / conflict.path}")
    return typer.confirm(
        f"replace {len(plan.conflicts)} newer local file(s) with the host's copy?", err=True
    )


class _PullMeter:
    """Pull progress on stderr: one redrawn line on a terminal, a line every 2 s elsewhere."""

    def __init__(self):
        import sys

        self.tty = sys.stderr.isatty()
        self.last = 0.0
        self.drawn = False

    def show(self, progress) -> None:
        from tunedeck.core.jobs.pull import size_text

        now = time.monotonic()
        final = progress.bytes_done >= progress.bytes_total
        if not self.tty and now - self.last < 2 and not final:
            return
        self.last = now
        eta = progress.eta
        line = (
            f"pull: {progress.files_done}/{progress.files_total} files,"
            f" {size_text(progress.bytes_done)}/{size_text(progress.bytes_total)},"
            f" {size_text(int(progress.rate))}/s" + (f", {eta:.0f} s left" if eta else "")
        )
        if self.tty:
            import sys

            sys.stderr.write("\r\x1b[K" + line)
            sys.stderr.flush()
            self.drawn = True
        else:
            _note(line)

    def finish(self) -> None:
        if self.drawn:
            import sys

            sys.stderr.write("\n")
            sys.stderr.flush()


def _discover() -> None:
    """Add the new run folders under every watched folder (each host asked once)."""
    from tunedeck.core.jobs.pool import BackendPool
    from tunedeck.core.jobs.watched_folders import Discovery, watched_folders

    if not watched_folders():
        return
    with BackendPool() as pool:
        _, unreachable = Discovery(pool).run()
    for host, why in unreachable.items():
        _note(f"{host}: its watched folders were not scanned ({why})")


def _refreshed(job):
    return _refresh_all([job])[0]


def _how_many(as_json: bool, show_all: bool, limit: int | None) -> int | None:
    """How many of the newest runs to list (None: every one)."""
    if limit is not None and limit < 1:
        raise UsageError("--limit must be 1 or more")
    if show_all and limit is not None:
        raise UsageError("--all and --limit do not go together")
    if show_all or (as_json and limit is None):
        return None
    return RECENT if limit is None else limit


def _refreshed_jobs(host: str | None, count: int | None):
    """The newest `count` jobs (all when None), refreshed, and how many there are in all."""
    from tunedeck.core.jobs import JobRegistry

    registry = JobRegistry()
    try:
        if count is None:
            jobs = registry.list(host)
            total = len(jobs)
        else:
            jobs, total = registry.recent(count, host)
    finally:
        registry.close()
    return _refresh_all(jobs), total


def _row(job, now: float) -> tuple[str, ...]:
    return (
        job.id,
        job.name,
        job.host,
        _state_text(job),
        "" if job.progress is None else f"{job.progress:.0%}",
        "" if job.last_loss is None else f"{job.last_loss:.4g}",
        _age(now - job.created_at),
        _exit_text(job),
    )


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
    from tunedeck.tui.console import note

    note(text)


def _echo(text: str) -> None:
    """A line on stdout with whatever it quotes (names, states) made inert."""
    from tunedeck.core.text import inert

    typer.echo(inert(text))
