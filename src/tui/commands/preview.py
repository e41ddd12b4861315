"""`tunedeck data preview|lengths|to-text`: what the model is trained on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from tunedeck.core.errors import DatasetError, Location, UsageError
from tunedeck.core.text import inert
from tunedeck.tui.commands.data import DataDir, DatasetName, local_dataset

# template text vs data text, each either trained on or masked
STYLES = {
    ("template", False): "dim cyan",
    ("template", True): "cyan underline",
    ("data", False): "white",
    ("data", True): "bold green",
}
LEGEND = [
    ("template text, masked", ("template", False)),
    ("template text, trained", ("template", True)),
    ("data, masked", ("data", False)),
    ("data, trained", ("data", True)),
]


TemplateName = Annotated[
    str | None, typer.Option("--template", "-t", help="Template name (or 'hf').")
]
OptionalTokenizer = Annotated[
    Path | None, typer.Option("--tokenizer", help="A local tokenizer folder.")
]


def register(data_app: typer.Typer) -> None:
    """Add the preview commands to the `data` group."""
    data_app.command("preview")(preview_command)
    data_app.command("lengths")(lengths_command)
    data_app.command("to-text")(to_text_command)


def preview_command(
    name: DatasetName,
    data_dir: DataDir = Path("data"),
    template: TemplateName = None,
    tokenizer: OptionalTokenizer = None,
    index: Annotated[int, typer.Option("--index", "-i", help="0-based row index.")] = 0,
    cutoff_len: Annotated[int, typer.Option("--cutoff-len", min=1)] = 2048,
    train_on_prompt: Annotated[bool, typer.Option("--train-on-prompt")] = False,
    mask_history: Annotated[bool, typer.Option("--mask-history")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    batch: Annotated[
        int | None,
        typer.Option("--batch", min=1, help="NAME is a run config: its first N training batches."),
    ] = None,
) -> None:
    """Show one row exactly as training sees it: template vs data text, trained vs masked."""
    from tunedeck.core.datasets import get_row
    from tunedeck.core.templates import load_tokenizer, render

    if batch is not None:
        _print_batches(Path(name), batch, as_json)
        return
    if template is None and tokenizer is None:
        raise UsageError("give --template T, or --tokenizer DIR to use its chat_template")
    spec, directory = local_dataset(name, data_dir)
    view = get_row(spec, directory, index)
    if view.conversation is None:
        why = "; ".join(i.message for i in view.issues) or "the row is invalid"
        where = Location(file=view.file, row=view.row, line=view.line)
        raise DatasetError(f"row #{index} cannot be rendered: {why}", location=where)
    tok = load_tokenizer(tokenizer) if tokenizer is not None else None
    rendered = render(
        view.conversation,
        template,
        tokenizer=tok,
        cutoff_len=cutoff_len,
        train_on_prompt=train_on_prompt,
        mask_history=mask_history,
    )
    template_name = template or "hf"
    warnings = _template_warnings(tokenizer, template_name)
    warnings += _media_warnings(view.conversation, template_name)
    if as_json:
        from tunedeck.tui.console import print_json

        doc = rendered.to_json()
        print_json(
            {
                "dataset": name,
                "index": index,
                "template": template_name,
                **doc,
                "warnings": warnings,
            }
        )
        return
    _print_warnings(warnings)
    _print_rendered(rendered, name, index, template_name, cutoff_len)


def _print_batches(config_path: Path, count: int, as_json: bool) -> None:
    """A run config's first training batches as the engine feeds them: rows, tokens, trained."""
    from tunedeck.core.config import load_config
    from tunedeck.core.runners.batches import preview_batches
    from tunedeck.tui.console import out, print_json

    with _RowsProgress() as progress:
        batches = preview_batches(load_config(config_path), count, progress.update)
    if as_json:
        print_json({"config": str(config_path), "batches": [b.to_json() for b in batches]})
        return
    for b in batches:
        out.print(f"[bold]batch {b.step}[/]  {len(b.rows)} rows x {b.rows[0].padded} tokens")
        for r in b.rows:
            out.print(f"  example {r.example:>6}  tokens {r.tokens:>6}  trained {r.trained:>6}")


class _RowsProgress:
    """A transient bar on stderr while a run's data is prepared, only when stderr is a terminal
    (the status callback of prepare_dataset: its meter speaks every few seconds)."""

    def __init__(self) -> None:
        self.progress: Any = None
        self.task: Any = None

    def __enter__(self) -> _RowsProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def update(self, _stage: str, _message: str, rows_done: int = 0, rows_total: int = 0, **_):
        from tunedeck.tui.console import err

        if not rows_total or not err.is_terminal:
            return
        if self.progress is None:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn("preparing the data"), BarColumn(), MofNCompleteColumn(),
                TimeRemainingColumn(), console=err, transient=True,
            )  # fmt: skip
            self.progress.start()
            self.task = self.progress.add_task("rows", total=rows_total)
        self.progress.update(self.task, completed=rows_done, total=rows_total)


def _media_warnings(conversation: Any, template: str) -> list[dict]:
    """What becomes of the row's images, videos and audios under the template."""
    from tunedeck.core.templates import media_note

    note = media_note(conversation, template)
    return [{"key": "media", "message": note, "hint": None}] if note else []


def _template_warnings(tokenizer: Path | None, template: str) -> list[dict]:
    """The template check against the tokenizer's chat_template, as warning documents."""
    from tunedeck.core.templates.probe import has_chat_template, probe_template_dir

    if tokenizer is None or not has_chat_template(tokenizer):
        return []
    probe = probe_template_dir(tokenizer, template)
    if probe.matches is not False:
        return []
    return [
        {
            "key": "template",
            "message": probe.summary(),
            "hint": probe.advice() or None,
            "suggestion": probe.suggestion,
            "difference": probe.difference.to_dict() if probe.difference else None,
        }
    ]


def _print_warnings(warnings: list[dict]) -> None:
    from tunedeck.tui.console import err

    for warning in warnings:
        err.print("[yellow]warning:[/] ", end="", markup=True)
        err.print(warning["message"], markup=False, soft_wrap=True)
        if warning["hint"]:
            err.print("[dim]hint:[/] ", end="", markup=True)
            err.print(warning["hint"], markup=False, soft_wrap=True)


def lengths_command(
    name: DatasetName,
    tokenizer: Annotated[Path, typer.Option("--tokenizer", help="A local tokenizer folder.")],
    template: TemplateName = None,
    data_dir: DataDir = Path("data"),
    cutoff_len: Annotated[int, typer.Option("--cutoff-len", min=1)] = 2048,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Token length distribution of a dataset and how many rows cutoff_len truncates."""
    from tunedeck.core.datasets import iter_conversations
    from tunedeck.core.templates import load_tokenizer, token_lengths

    spec, directory = local_dataset(name, data_dir)
    tok = load_tokenizer(tokenizer)
    conversations = iter_conversations(spec, directory)
    with _row_progress(spec, directory) as advance:
        counts = _count_lengths(token_lengths(conversations, template, tok), advance)
    if not counts:
        raise DatasetError(f"'{name}' has no valid rows")
    rows = sum(counts.values())
    over = sum(n for length, n in counts.items() if length > cutoff_len)
    summary = {
        "dataset": name,
        "template": template or "hf",
        "rows": rows,
        "min": min(counts),
        "median": _nth_length(counts, rows // 2),
        "p95": _nth_length(counts, min(rows - 1, int(rows * 0.95))),
        "max": max(counts),
        "cutoff_len": cutoff_len,
        "truncated_rows": over,
        "histogram": _histogram(counts),
    }
    if as_json:
        from tunedeck.tui.console import print_json

        print_json(summary)
        return
    from rich.text import Text

    from tunedeck.tui.console import out

    out.print(
        Text.assemble(
            (inert(name), "bold"),
            " with template ",
            (inert(str(summary["template"])), "bold"),
            f": {rows} rows, tokens min {summary['min']}, median {summary['median']},"
            f" p95 {summary['p95']}, max {summary['max']}",
        )
    )
    share = 100.0 * over / rows
    style = "yellow" if over else "green"
    out.print(f"[{style}]cutoff_len {cutoff_len} truncates {over} rows ({share:.1f}%)[/]")
    widest = max(b["rows"] for b in summary["histogram"]) or 1
    for bucket in summary["histogram"]:
        bar = "█" * max(1 if bucket["rows"] else 0, round(40 * bucket["rows"] / widest))
        mark = " ◀ cutoff" if bucket["low"] <= cutoff_len < bucket["high"] else ""
        out.print(
            f"{bucket['low']:>7}-{bucket['high'] - 1:<7} {bucket['rows']:>7} {bar}{mark}",
            markup=False,
        )


def _count_lengths(lengths: Iterator[int], advance) -> dict[int, int]:
    """Rows per token length: memory follows the distinct lengths, not the rows."""
    counts: dict[int, int] = {}
    step = 0
    for length in lengths:
        counts[length] = counts.get(length, 0) + 1
        step += 1
        if step == 1024:
            advance(step)
            step = 0
    advance(step)
    return counts


def _nth_length(counts: dict[int, int], index: int) -> int:
    """The length at `index` (0-based) of the sorted lengths."""
    seen = 0
    for length in sorted(counts):
        seen += counts[length]
        if index < seen:
            return length
    return max(counts)


@contextmanager
def _row_progress(spec: Any, directory: Path):
    """A progress bar on stderr when it is a terminal; yields `advance(rows)`."""
    from tunedeck.tui.console import err

    if not err.is_terminal:
        yield lambda rows: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from tunedeck.core.datasets import count_rows

    total = count_rows(spec, directory)
    columns = ("counting tokens", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("rows", total=total)
        yield lambda rows: progress.advance(task, rows)


def to_text_command(
    name: DatasetName,
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the JSONL rows.")],
    data_dir: DataDir = Path("data"),
    template: Annotated[
        str | None, typer.Option("--template", "-t", help="Render through a template.")
    ] = None,
    tokenizer: OptionalTokenizer = None,
    pack_to: Annotated[
        int | None, typer.Option("--pack-to", min=1, help="Pack rows to at least N tokens.")
    ] = None,
    samples: Annotated[
        int | None, typer.Option("--samples", min=1, help="Keep K rows (drawn with --seed).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Write any dataset as {"text": ...} rows (GPTQ calibration), optionally packed."""
    from tunedeck.core.templates.text_export import check_output, export_text, write_rows
    from tunedeck.tui.console import out

    check_output(output)
    spec, directory = local_dataset(name, data_dir)
    rows = export_text(
        spec,
        directory,
        template=template,
        tokenizer=tokenizer,
        pack_to=pack_to,
        samples=samples,
        seed=seed,
    )
    if not rows:
        raise DatasetError(f"'{name}' produced no text rows")
    write_rows(rows, output)
    out.print(f"wrote {len(rows)} rows to {output}", markup=False)


def _print_rendered(rendered: Any, name: str, index: int, template: str, cutoff_len: int):
    from rich.text import Text

    from tunedeck.tui.console import out

    def body(r: Any) -> Text:
        text = Text()
        for seg in r.segments:
            text.append(seg.text, style=STYLES[(seg.source, seg.trainable)])
        return text

    out.print(
        Text.assemble(
            (inert(name), "bold"),
            f" row {index} · template ",
            (inert(str(template)), "bold"),
            f" · {rendered.kind}",
        )
    )
    legend = Text("legend: ")
    for label, key in LEGEND:
        legend.append(label, style=STYLES[key])
        legend.append("  ")
    out.print(legend)
    out.rule()
    out.print(body(rendered))
    out.rule()
    if rendered.rejected is not None:
        out.print("[bold]rejected[/]")
        out.print(body(rendered.rejected))
        out.rule()
    if rendered.input_ids is None:
        out.print("[dim]no tokenizer: pass --tokenizer DIR for token counts and labels[/]")
        return
    from tunedeck.core.templates import IGNORE_INDEX

    trained = sum(1 for label in rendered.labels if label != IGNORE_INDEX)
    total = len(rendered.input_ids)
    out.print(
        f"tokens {total} / cutoff_len {cutoff_len} · trained {trained} · masked {total - trained}"
    )
    cut = rendered.truncated
    if cut is None:
        out.print("[green]not truncated[/]")
        return
    out.print(
        f"[yellow]truncated: {cut.original_tokens} -> {cut.kept_tokens} tokens[/] "
        f"({cut.original_tokens - cut.kept_tokens} removed)"
    )
    for part in cut.parts:
        removed = Text(f"  turn {part['turn']} {part['part']}: {part['removed_tokens']} tokens: ")
        snippet = part["removed_text"]
        snippet = snippet if len(snippet) <= 160 else snippet[:157] + "..."
        removed.append(repr(snippet), style="strike red")
        out.print(removed)


def _histogram(counts: dict[int, int], buckets: int = 12) -> list[dict]:
    low, high = min(counts), max(counts) + 1
    width = max(1, -(-(high - low) // buckets))
    rows = []
    for b in range(buckets):
        start = low + b * width
        if start >= high:
            break
        end = start + width
        rows.append({"low": start, "high": end, "rows": 0})
    for length, n in counts.items():
        rows[(length - low) // width]["rows"] += n
    return rows
