"""`tunedeck config check|keys`: check a run config before anything heavy is imported."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tunedeck.core.config.loader import SHOWN_PROBLEMS

app = typer.Typer(
    help="Run configs (LLaMA-Factory key names): check them, list keys.", no_args_is_help=True
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
) -> None:
    """Print the resolved config, or every error with its key and line (exit 1)."""
    check = _checked(config, overrides or [], "export" if export else "train", as_json)
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
