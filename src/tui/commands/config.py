"""`tunedeck config check|keys|fit`: check a run config before anything heavy is imported."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from tunedeck.core.config.loader import SHOWN_PROBLEMS

app = typer.Typer(
    help="Run configs (LLaMA-Factory key names): check them, list keys, estimate GPU memory.",
    no_args_is_help=True,
)


@app.command("check")
def check_command(
    config: Annotated[Path, typer.Argument(help="A run config (.yaml or .json).")],
    overrides: Annotated[
        list[str], typer.Argument(help="key=value overrides, e.g. learning_rate=1e-4.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON document.")] = False,
    export: Annotated[
        bool, typer.Option("--export", help="Check as an export/quantize config.")
    ] = False,
    max_problems: Annotated[
        int, typer.Option("--max-problems", min=0, help="Problems listed (0: all of them).")
    ] = SHOWN_PROBLEMS,
    engine: Annotated[
        str | None,
        typer.Option("--engine", help="builtin, llamafactory or auto (default: the config's)."),
    ] = None,
) -> None:
    """Print the resolved config, or every error with its key and line (exit 1); warn when the
    template renders otherwise than the model's own chat_template. An export config (export_dir,
    no output_dir) is checked as one without --export."""
    from tunedeck.core.config.checks import with_template_check

    overrides = [*(overrides or []), *([f"engine={engine}"] if engine else [])]
    check = _checked(config, overrides, "export" if export else None, as_json)
    check = with_template_check(check)
    limit = max_problems or None
    if as_json:
        from tunedeck.tui.console import print_json

        print_json(check.to_dict(limit))
    else:
        print_check(check, limit)
        if check.config is not None:
            print_resolved(check.config)
    if not check.ok:
        raise typer.Exit(1)


def _checked(config: Path, overrides: list[str], purpose: str, as_json: bool):
    """check_config; with --json, a file that cannot be read at all is a check with one error
    (so stdout is always one JSON document), otherwise the error itself."""
    from tunedeck.core.config import ConfigCheck, ConfigProblem, check_config
    from tunedeck.core.errors import ConfigError, Location

    try:
        return check_config(config, overrides, purpose=purpose)
    except ConfigError as error:
        if not as_json:
            raise
        location = error.location or Location(file=str(config))
        problem = ConfigProblem(location.column, error.message, location, error.hint)
        return ConfigCheck(None, (problem,), config)


@app.command("fit")
def fit_command(
    config: Annotated[Path, typer.Argument(help="A run config (.yaml or .json).")],
    overrides: Annotated[
        list[str], typer.Argument(help="key=value overrides, e.g. cutoff_len=1024.")
    ] = None,
    host: Annotated[
        str, typer.Option("--host", help="Judge against this host's GPUs (hosts.toml).")
    ] = None,
    gpu_mem: Annotated[
        str, typer.Option("--gpu-mem", help="Judge against one GPU of this size, e.g. 80GiB.")
    ] = None,
    model_config: Annotated[
        Path, typer.Option("--model-config", help="The model's config.json (or its folder).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON document.")] = False,
) -> None:
    """Estimate peak GPU memory per device from the model's config.json, and judge each GPU."""
    from tunedeck.core.config.fit import fit_config, gpus_to_judge
    from tunedeck.core.errors import UsageError

    if host and gpu_mem:
        raise UsageError("give --host or --gpu-mem, not both")
    gpus, source = gpus_to_judge(host, gpu_mem)
    report = fit_config(
        config, overrides or [], model_config=model_config, gpus=gpus, gpu_source=source
    )
    if as_json:
        from tunedeck.tui.console import print_json

        print_json(report.to_dict())
    else:
        print_fit(report)


def print_fit(report) -> None:
    """The parts, the peak, a verdict per GPU and the changes that would fit, as a table."""
    from tunedeck.tui.console import out

    colours = {"fits": "green", "tight": "yellow", "does not fit": "red"}
    for line in fit_lines(report, "no GPU here: give --gpu-mem 80GiB or --host"):
        if line.verdict:
            out.print(f"[{colours[line.verdict]}]{line.verdict:<13}[/] ", end="", markup=True)
        out.print(line.text, style=line.style, markup=False, highlight=False)


@dataclass(frozen=True)
class FitLine:
    """One line of a fit report: its text, a style word ("", "bold", "dim") and, on a GPU's
    line, the verdict shown before it (in the verdict's colour)."""

    text: str
    style: str = ""
    verdict: str = ""
    change: bool = False  # a suggested change


def fit_lines(report, no_gpu: str, *, parts: bool = True) -> list[FitLine]:
    """A FitReport in the words and numbers `config fit` prints (the Launch screen's fit
    panel shows the same lines); `no_gpu` is said when there is no GPU to judge against."""
    from tunedeck.core.config.fit import PART_NAMES

    estimate, plan = report.estimate, report.plan
    lines = [FitLine(f"model   {report.model}")] if parts else []
    lines.append(
        FitLine(
            f"{'        ' if parts else ''}{_count(estimate.total_params)} parameters, "
            f"{estimate.trainable_params:,} trainable ({plan.finetuning_type}"
            f"{f', {plan.quantization_bit}-bit' if plan.quantization_bit else ''}), "
            f"{plan.cutoff_len} tokens x {plan.batch_size}"
            f"{', gradient checkpointing' if plan.gradient_checkpointing else ''}"
            f"{f', ZeRO-{plan.zero_stage} over {plan.world_size}' if plan.zero_stage else ''}"
        )
    )
    for name in PART_NAMES if parts else ():
        value = estimate.parts[name]
        if value:
            lines.append(FitLine(f"  {name:<16}{gib(value):>12}"))
    lines.append(FitLine(f"  {'peak per device':<16}{gib(estimate.peak_bytes):>12}", "bold"))
    lines += [FitLine(f"note: {note}", "dim") for note in report.notes]
    if not report.gpus:
        return [*lines, FitLine(no_gpu)]
    for gpu in report.gpus:
        in_use = f", {gib(gpu.used_bytes)} in use now" if gpu.used_bytes else ""
        lines.append(FitLine(f"{gpu.name} ({gib(gpu.total_bytes)}{in_use})", "", gpu.verdict))
    if report.suggestions:
        lines.append(FitLine("to fit, change one of:"))
    for suggestion in report.suggestions:
        mark = "fits" if suggestion.fits else "still too big"
        peak = gib(suggestion.estimate.peak_bytes)
        if parts:
            lines.append(FitLine(f"  {suggestion.change:<56}{peak:>12}  {mark}", change=True))
        else:  # a narrow panel: no columns
            lines.append(FitLine(f"  {suggestion.change}: {peak}, {mark}", change=True))
    return lines


def _count(params: int) -> str:
    """8.03B, or 0.10M for a model too small to show in billions."""
    return f"{params / 1e9:.2f}B" if params >= 10_000_000 else f"{params / 1e6:.2f}M"


def gib(value: int) -> str:
    return f"{value / 1024**3:.2f} GiB"


@app.command("keys")
def keys_command() -> None:
    """List every config key with its default."""
    from tunedeck.core.config import IGNORED_KEYS, RunConfig
    from tunedeck.tui.console import out

    for key, value in RunConfig().to_dict().items():
        out.print(f"{key}: {value!r}", markup=False)
    out.print("\naccepted but without effect:", style="dim")
    for key, why in IGNORED_KEYS.items():
        out.print(f"{key}: {why}", style="dim", markup=False)


def print_check(check, limit: int | None = SHOWN_PROBLEMS) -> None:
    """Problems, errors first, as `error: file, line N, 'key': message` plus its hint; at most
    `limit` of them (None: all), then how many more there are."""
    from tunedeck.tui.console import err

    shown = check.shown(limit)
    for problem in shown:
        colour = "bold red" if problem.severity == "error" else "yellow"
        err.print(f"[{colour}]{problem.severity}:[/] ", end="", markup=True)
        err.print(str(problem), markup=False, soft_wrap=True)
        if problem.hint:
            err.print("[dim]hint:[/] ", end="", markup=True)
            err.print(problem.hint, markup=False, soft_wrap=True)
    hidden = len(check.problems) - len(shown)
    if hidden > 0:
        err.print(
            f"... and {hidden:,} more problem{'s' * (hidden > 1)} "
            f"({len(check.problems):,} in all; --max-problems 0 lists them all)",
            style="dim",
            markup=False,
        )


def print_resolved(config) -> None:
    """The keys that differ from the defaults, as YAML."""
    import yaml

    from tunedeck.tui.console import out

    out.print("# resolved config (keys that differ from the defaults)", style="dim")
    out.print(
        yaml.safe_dump(config.changed(), sort_keys=False).rstrip(), markup=False, highlight=False
    )
