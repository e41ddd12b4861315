"""`tunedeck demo model DIR`: a tiny offline model for trying tunedeck without a GPU or a hub."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Demo material built offline (a tiny model).", no_args_is_help=True)


@app.command("model")
def model_command(
    directory: Annotated[Path, typer.Argument(help="Where to write the model and tokenizer.")],
    seed: Annotated[int, typer.Option(help="Weight initialisation seed.")] = 0,
) -> None:
    """Build a tiny Llama-architecture model and a byte-level BPE tokenizer into DIRECTORY."""
    import subprocess
    import sys

    # Built in a child process: the CLI process never imports torch/transformers.
    code = (
        "import sys; from tunedeck.core.runners.demo_model import build_model; "
        "build_model(sys.argv[1], seed=int(sys.argv[2]))"
    )
    result = subprocess.run([sys.executable, "-c", code, str(directory), str(seed)])
    if result.returncode != 0:
        from tunedeck.core.errors import TunedeckError

        raise TunedeckError(
            f"building the demo model failed (exit {result.returncode})",
            hint="pip install 'tunedeck[train]'",
        )
    typer.echo(f"tiny model written to {directory}")
