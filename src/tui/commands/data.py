"""`tunedeck data validate|show|stats|prepared`: check a dataset_info.json, look at its rows, and
the data runs prepared from them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tunedeck.core.errors import DatasetError, Location, UsageError

app = typer.Typer(
    help="Validate, inspect and summarise LLaMA-Factory datasets.", no_args_is_help=True
)

# Arguments every command that reads one entry takes (the preview commands too).
DatasetName = Annotated[str, typer.Argument(help="The dataset entry's name in dataset_info.json.")]
DataDir = Annotated[Path, typer.Option("--dir", help="The data directory.")]

# Progress bars appear only for files at least this big, and only on a terminal.
PROGRESS_MIN_BYTES = 32 << 20
STATUS_STYLE = {"ok": "green", "warning": "yellow", "error": "bold red", "remote": "cyan"}


@app.command("validate")
def validate_command(
    path: Annotated[Path, typer.Argument(help="A data directory or its dataset_info.json.")] = Path(
        "data"
    ),
    dataset: Annotated[
        list[str] | None,
        typer.Option("--dataset", "-d", help="Only this entry (repeatable).", show_default=False),
    ] = None,
    max_issues: Annotated[
        int, typer.Option("--max-issues", min=0, help="Issues kept per dataset.")
    ] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Check every entry and every row; exit 0 when clean, 1 on errors, 2 on usage problems."""
    from tunedeck.core.datasets import validate

    _require_path(path)
    with _ProgressReporter(enabled=not as_json) as reporter:
        try:
            report = validate(path, dataset or None, max_issues, reporter.update)
        except DatasetError as error:
            raise UsageError(error.message, location=error.location, hint=error.hint) from None
    if as_json:
        from tunedeck.tui.console import print_json

        print_json(report.to_dict())
    else:
        _print_report(report, show_remote=bool(dataset))
    raise typer.Exit(1 if report.has_errors else 0)


@app.command("show")
def show_command(
    name: DatasetName,
    data_dir: DataDir = Path("data"),
    index: Annotated[int, typer.Option("--index", "-i", help="0-based row index.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Print one row as the model will see it: system, tools, turns, answer, media."""
    from tunedeck.core.datasets import get_row

    spec, directory = local_dataset(name, data_dir)
    view = get_row(spec, directory, index)
    if as_json:
        from tunedeck.tui.console import print_json

        print_json(
            {
                "name": name,
                "index": view.index,
                "file": view.file,
                "row": view.row,
                "line": view.line,
                "raw": view.raw,
                "conversation": _conversation_dict(view.conversation),
                "issues": [issue.to_dict() for issue in view.issues],
            }
        )
        raise typer.Exit(0 if view.conversation is not None else 1)
    _print_row(name, view)
    raise typer.Exit(0 if view.conversation is not None else 1)


@app.command("stats")
def stats_command(
    name: DatasetName,
    data_dir: DataDir = Path("data"),
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Rows, rows with issues, roles, prompt/response lengths and media counts."""
    from tunedeck.core.datasets import dataset_stats

    spec, directory = local_dataset(name, data_dir)
    stats = dataset_stats(spec, directory)
    if as_json:
        from tunedeck.tui.console import print_json

        print_json(stats.to_dict())
    else:
        _print_stats(stats)
        _print_first_issue(stats)
    if not stats.usable_rows:
        raise typer.Exit(1)


@app.command("prepared")
def prepared_command(
    remove: Annotated[
        list[str] | None,
        typer.Option("--rm", help="Remove this one (its key or the key's start; repeatable)."),
    ] = None,
    older_than: Annotated[
        float | None,
        typer.Option("--older-than", min=0, help="Remove those no run read for DAYS days."),
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove them all.")] = False,
    host: Annotated[
        str | None, typer.Option("--host", help="A host's cache (hosts.toml or ssh name).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """The data runs prepared (tokenized, cached): list it, or remove some to free the disk."""
    from tunedeck.core.jobs.prepared_cache import prepared_on
    from tunedeck.tui.console import print_json

    days = None if older_than is None else older_than * 86400
    folder, entries, removed = prepared_on(host, remove or None, days, clear)
    where = f"{host}:{folder}" if host else folder
    if as_json:
        key = "removed" if removed else "prepared"
        print_json({"host": host or "local", "folder": folder, key: [e.to_dict() for e in entries]})
    elif removed:
        from tunedeck.core.jobs.store import human_bytes
        from tunedeck.tui.console import out

        freed = human_bytes(sum(e.size for e in entries))
        out.print(
            f"removed {len(entries)} prepared data folder(s) from {where}, {freed} freed",
            soft_wrap=True,
        )
    else:
        _print_prepared(entries, where)


def _print_prepared(entries: list, where: str) -> None:
    import time

    from tunedeck.core.jobs.prepared_cache import CELLS
    from tunedeck.core.jobs.store import human_bytes
    from tunedeck.tui.console import note, print_table

    if not entries:
        note(f"no prepared data in {where}")
        return
    now = time.time()
    print_table(CELLS, [e.cells(now) for e in entries], squeeze=3)
    total = human_bytes(sum(e.size for e in entries))
    note(f"{len(entries)} in {where}, {total}; --rm KEY, --older-than DAYS or --clear")


# ---------------------------------------------------------------------------- helpers


def _require_path(path: Path) -> None:
    if not path.exists():
        raise UsageError(
            f"{path} does not exist",
            hint="pass a data directory holding dataset_info.json (default: ./data)",
        )
    if path.is_dir() and not (path / "dataset_info.json").is_file():
        raise UsageError(
            f"{path} holds no dataset_info.json",
            hint="pass a data directory holding dataset_info.json, or the file itself",
        )


def local_dataset(name: str, data_dir: Path) -> tuple[Any, Path]:
    """The spec of a local entry in data_dir and the folder its files are relative to."""
    from tunedeck.core.datasets import load_dataset_info

    _require_path(data_dir)
    info = load_dataset_info(data_dir)
    return info.get_local(name), info.data_dir


def _print_report(report: Any, show_remote: bool) -> None:
    from rich.table import Table
    from rich.text import Text

    from tunedeck.tui.console import out

    table = Table(title=_plain(f"datasets in {report.path}"), title_justify="left", expand=False)
    for column, justify in (
        ("dataset", "left"),
        ("status", "left"),
        ("kind", "left"),
        ("format", "left"),
        ("rows", "right"),
        ("issues", "right"),
    ):
        table.add_column(column, justify=justify)
    remote = []
    for entry in report.datasets:
        if entry.status == "remote" and not show_remote:
            remote.append(entry.name)
            continue
        table.add_row(
            _plain(entry.name),
            Text(entry.status, style=STATUS_STYLE[entry.status]),
            _plain(entry.kind),
            _plain(entry.formatting),
            "-" if entry.rows is None else f"{entry.rows:,}",
            str(entry.issue_count) if entry.issue_count else "",
        )
    for issue in report.issues:
        out.print(Text.assemble(("error ", "bold red"), f"{issue.where}: {issue.message}"))
    if table.row_count:
        out.print(table)
    for entry in report.datasets:
        if not entry.issues:
            continue
        out.print(_plain(f"{entry.name}:", style="bold"))
        for issue in entry.issues:
            style = "bold red" if issue.severity == "error" else "yellow"
            out.print(
                Text.assemble(
                    ("  " + issue.severity.ljust(8), style),
                    (issue.code.ljust(22), "dim"),
                    f"{issue.where}: " if issue.where else "",
                    issue.message,
                ),
                soft_wrap=True,
            )
        hidden = entry.issue_count - len(entry.issues)
        if hidden > 0:
            out.print(Text(f"  ... and {hidden:,} more (raise --max-issues)", style="dim"))
    if remote:
        shown = ", ".join(remote[:6]) + (", ..." if len(remote) > 6 else "")
        out.print(
            Text(
                f"{len(remote)} remote entries (hub/script/cloud) not checked offline: {shown}",
                style="cyan",
            ),
            soft_wrap=True,
        )
    summary = report.summary
    verdict = ("errors found", "bold red") if report.has_errors else ("no errors", "bold green")
    out.print(
        Text.assemble(
            verdict,
            f" - {summary['ok']} ok, {summary['warning']} with warnings, "
            f"{summary['error']} with errors, {summary['remote']} remote; "
            f"{summary['rows']:,} rows read",
        )
    )


def _plain(text: str, style: str = "") -> Any:
    """Untrusted text (a dataset name, a path) as inert Rich Text: never markup, no controls."""
    from rich.text import Text

    from tunedeck.core.text import inert

    return Text(inert(text), style=style)


def _conversation_dict(conversation: Any) -> dict[str, Any] | None:
    if conversation is None:
        return None
    return {
        "system": conversation.system,
        "tools": conversation.tools,
        "prompt": [{"role": m.role.value, "content": m.content} for m in conversation.prompt],
        "response": [{"role": m.role.value, "content": m.content} for m in conversation.response],
        "images": list(conversation.images),
        "videos": list(conversation.videos),
        "audios": list(conversation.audios),
        "kto_tag": conversation.kto_tag,
    }


def _print_row(name: str, view: Any) -> None:
    from rich.panel import Panel
    from rich.text import Text

    from tunedeck.tui.console import out
    from tunedeck.tui.palette import TERMINAL_ROLE_COLOURS as ROLE_STYLES

    where = str(Location(file=view.file, row=view.row, line=view.line))
    out.print(
        Text.assemble((f"{name} #{view.index}", "bold"), ("  " + where, "dim")), soft_wrap=True
    )
    conversation = view.conversation
    if conversation is not None:
        if conversation.system:
            out.print(
                Panel(
                    Text(conversation.system),
                    title="system",
                    title_align="left",
                    border_style=ROLE_STYLES["system"],
                )
            )
        if conversation.tools:
            out.print(
                Panel(
                    Text(conversation.tools), title="tools", title_align="left", border_style="cyan"
                )
            )
        for message in conversation.prompt:
            role = message.role.value
            out.print(
                Panel(
                    Text(message.content),
                    title=role,
                    title_align="left",
                    border_style=ROLE_STYLES.get(role, "white"),
                )
            )
        labels = _response_labels(conversation)
        for label, message in zip(labels, conversation.response, strict=False):
            if label == "-":
                continue
            out.print(
                Panel(
                    Text(message.content or "(empty)"),
                    title=label,
                    title_align="left",
                    border_style=ROLE_STYLES.get(message.role.value, "green"),
                )
            )
        for kind in ("images", "videos", "audios"):
            for path in getattr(conversation, kind):
                out.print(Text(f"{kind[:-1]}: {path}", style="dim"))
    for issue in view.issues:
        style = "bold red" if issue.severity == "error" else "yellow"
        out.print(
            Text.assemble((f"{issue.severity} ", style), (f"{issue.code}: ", "dim"), issue.message),
            soft_wrap=True,
        )


def _response_labels(conversation: Any) -> list[str]:
    count = len(conversation.response)
    if conversation.kto_tag is not None:
        return (
            ["answer (desirable)", "-"] if conversation.kto_tag else ["-", "answer (undesirable)"]
        )
    if count == 2:
        return ["chosen", "rejected"]
    return ["answer"] * count


def _print_stats(stats: Any) -> None:
    from rich.table import Table

    from tunedeck.tui.console import out

    table = Table(
        title=_plain(f"{stats.name} ({stats.kind}, {stats.formatting})"),
        title_justify="left",
        show_header=False,
    )
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("rows", f"{stats.rows:,}")
    table.add_row("rows with issues", f"{stats.rows_with_issues:,}")
    table.add_row(
        "roles", _plain(", ".join(f"{role} {count:,}" for role, count in stats.roles.items()))
    )
    for label, summary in (
        ("prompt chars", stats.prompt_chars),
        ("response chars", stats.response_chars),
        ("turns", stats.turns),
    ):
        table.add_row(
            label,
            f"min {summary.min:,}  median {summary.median:,}  p95 {summary.p95:,}  "
            f"max {summary.max:,}",
        )
    table.add_row("with system / tools", f"{stats.with_system:,} / {stats.with_tools:,}")
    if stats.images or stats.videos or stats.audios:
        table.add_row(
            "media",
            f"{stats.images} images, {stats.videos} videos, {stats.audios} audios "
            f"in {stats.rows_with_media} rows",
        )
    out.print(table)


def _print_first_issue(stats: Any) -> None:
    """Where the first row with an issue is; an error line when no row is usable at all."""
    from rich.text import Text

    from tunedeck.tui.console import err

    issue = stats.first_issue
    if not stats.usable_rows:
        err.print(
            Text.assemble(
                ("error: ", "bold red"),
                f"none of the {stats.rows:,} rows of '{stats.name}' is usable",
            )
        )
    if issue is None:
        return
    style = "bold red" if issue.severity == "error" else "yellow"
    others = stats.rows_with_issues - 1
    more = f" (and {others:,} more rows; `tunedeck data validate` lists them)" if others else ""
    err.print(
        Text.assemble(
            (f"first issue {issue.severity}: ", style), f"{issue.where}: {issue.message}{more}"
        ),
        soft_wrap=True,
    )


class _ProgressReporter:
    """A transient progress bar on stderr for big files, only when stderr is a terminal."""

    def __init__(self, enabled: bool):
        from tunedeck.tui.console import err

        self.enabled = enabled and err.is_terminal
        self.progress: Any = None
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> _ProgressReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def update(self, dataset: str, file: str, done: int, total: int) -> None:
        if not self.enabled or total < PROGRESS_MIN_BYTES:
            return
        if self.progress is None:
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

            from tunedeck.tui.console import err

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                console=err,
                transient=True,
            )
            self.progress.start()
        task = self.tasks.get(file)
        if task is None:
            task = self.tasks[file] = self.progress.add_task(
                f"{dataset}: {Path(file).name}", total=total
            )
        self.progress.update(task, completed=min(done, total))
