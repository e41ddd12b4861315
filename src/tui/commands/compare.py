"""`tunedeck runs compare A B ... [--by step|tokens] [--json]`: runs side by side."""

from __future__ import annotations

from typing import Annotated

import typer

from tunedeck.core.errors import UsageError

SPARK = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 24
FINAL_COLUMNS = ("RUN", "ID", "HOST", "STATE", "STEPS", "TOKENS", "LOSS", "BEST EVAL", "LAST EVAL")


def register(runs_app: typer.Typer) -> None:
    """Add `compare` to the `tunedeck runs` group."""
    runs_app.command("compare")(compare)


def compare(
    refs: Annotated[
        list[str],
        typer.Argument(help="Job ids (unique prefixes are enough), or a sweep's group id."),
    ],
    by: str = typer.Option("step", "--by", help="Align the curves by step or by tokens seen."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Two or more runs side by side: the config keys that differ, final metrics and the loss
    curves; a sweep's group id compares its members, a resumed run counts as one."""
    from tunedeck.core.jobs.compare import AXES, compare_runs
    from tunedeck.core.jobs.pool import BackendPool

    if by not in AXES:
        raise UsageError(f"--by takes {' or '.join(AXES)}, got '{by}'")
    with BackendPool() as pool:
        comparison = compare_runs(refs, pool)
    doc = comparison.to_dict(by)
    if as_json:
        from tunedeck.tui.console import print_json

        print_json(doc)
        return
    print_comparison(doc)


def print_comparison(doc: dict) -> None:
    """The comparison document as three short tables and a line per curve."""
    from tunedeck.core.text import inert
    from tunedeck.tui.console import note, print_table

    runs = doc["runs"]
    what = f"sweep {doc['group']}: " if doc["group"] else ""
    _echo(f"{what}{len(runs)} runs compared by {doc['by']}")
    _echo("")
    print_table(FINAL_COLUMNS + ("RUNTIME",), [_final_row(run) for run in runs], squeeze=0)
    _echo("")
    diff = doc["config_diff"]
    if diff["keys"]:
        headers = ("KEY", *(inert(run["label"]) for run in runs))
        rows = [(row["key"], *map(value_text, row["values"])) for row in diff["keys"]]
        print_table(headers, rows, squeeze=0)
    elif not any(run["config_kept"] for run in runs):
        _echo("no run kept its config: which keys differ is not known")
    else:
        _echo("the configs do not differ")
    if diff["same"]:
        note(f"{diff['same']} more key(s) the same in every run that kept its config")
    for metric in ("loss", "eval_loss"):
        curves = [run["series"][metric] for run in runs]
        if any(curves):
            _echo("")
            _echo(f"{metric} by {doc['by']}:")
            print_table(("RUN", "CURVE", "FIRST", "LAST", "MIN @"), _curve_rows(runs, curves), 0)
    for line in doc["notes"]:
        note(line)


def _final_row(run: dict) -> tuple[str, ...]:
    final = run["final"]
    return (
        run["label"],
        "+".join(run["ids"]),
        run["host"],
        final["state"],
        count_text(final["steps"]),
        count_text(final["tokens"]),
        loss_text(final["last_loss"]),
        loss_text(final["best_eval_loss"]),
        loss_text(final["last_eval_loss"]),
        duration_text(final["runtime"]),
    )


def _curve_rows(runs: list[dict], curves: list[list]) -> list[tuple[str, ...]]:
    """A sparkline per run over the x range and value range they all share."""
    points = [p for curve in curves for p in curve]
    x_lo, x_hi = min(p[0] for p in points), max(p[0] for p in points)
    y_lo, y_hi = min(p[1] for p in points), max(p[1] for p in points)
    rows = []
    for run, curve in zip(runs, curves, strict=True):
        if not curve:
            rows.append((run["label"], "(none)", "", "", ""))
            continue
        best = min(curve, key=lambda p: p[1])
        rows.append(
            (
                run["label"],
                sparkline(curve, x_lo, x_hi, y_lo, y_hi),
                loss_text(curve[0][1]),
                loss_text(curve[-1][1]),
                f"{loss_text(best[1])} @ {count_text(best[0])}",
            )
        )
    return rows


def sparkline(curve, x_lo: float, x_hi: float, y_lo: float, y_hi: float) -> str:
    """The curve's mean per column as one block character (high: tall), blank where it has
    no point."""
    sums = [0.0] * SPARK_WIDTH
    counts = [0] * SPARK_WIDTH
    span = (x_hi - x_lo) or 1.0
    for x, y in curve:
        column = min(SPARK_WIDTH - 1, int((x - x_lo) / span * SPARK_WIDTH))
        sums[column] += y
        counts[column] += 1
    height = (y_hi - y_lo) or 1.0
    out = []
    for total, count in zip(sums, counts, strict=True):
        if not count:
            out.append(" ")
            continue
        level = int((total / count - y_lo) / height * (len(SPARK) - 1) + 0.5)
        out.append(SPARK[level])
    return "".join(out)


def value_text(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def loss_text(value) -> str:
    return "" if value is None else f"{value:.4f}"


def count_text(value) -> str:
    return "" if value is None else f"{value:,.0f}"


def duration_text(seconds) -> str:
    if seconds is None:
        return ""
    total = int(seconds)
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


def _echo(text: str) -> None:
    from tunedeck.core.text import inert

    typer.echo(inert(text))
