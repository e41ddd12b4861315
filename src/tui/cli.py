"""The `tunedeck` command line: one typer app; each command group lives in tunedeck.tui.commands.

Start-up must stay light (`tunedeck --help` well under 0.3 s): command modules import
their heavy dependencies inside the command functions, never at module level.
"""

from __future__ import annotations

import sys

import typer

from tunedeck.core import __version__
from tunedeck.core.errors import TunedeckError
from tunedeck.tui.commands import compare as compare_runs
from tunedeck.tui.commands import config, data, demo, doctor, hosts, jobs, preview, train, tui
from tunedeck.tui.console import print_error

try:  # typer vendors its own click; its exceptions are the ones raised
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - older typer uses the click package
    from click import ClickException

app = typer.Typer(
    name="tunedeck",
    help="A terminal cockpit for fine-tuning LLMs on LLaMA-Factory-format data.\n\n"
    "Run with no command to open the app on ./data.",
    add_completion=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        typer.echo(f"tunedeck {__version__}")
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        tui.open_app(None)


preview.register(data.app)
app.add_typer(data.app, name="data")
app.add_typer(config.app, name="config")
app.add_typer(demo.app, name="demo")
app.add_typer(hosts.app, name="hosts")
train.register(app)
jobs.register(app)
compare_runs.register(jobs.runs_app)
doctor.register(app)
tui.register(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and turn typed errors into a message and an exit code."""
    try:
        result = app(args=argv, standalone_mode=False)
    except TunedeckError as err:
        print_error(err)
        return err.exit_code
    except typer.Abort:
        print_error(TunedeckError("aborted"))
        return 130
    except ClickException as err:
        err.show()
        return 2
    except KeyboardInterrupt:
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
