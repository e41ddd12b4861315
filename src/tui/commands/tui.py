"""`tunedeck tui [DATA_DIR]`: open the Textual app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DEFAULT_DATA_DIR = Path("data")


def open_app(data_dir: Path | None) -> None:
    """Open the app on a data folder (default ./data); Textual is imported here, not at start."""
    from tunedeck.tui.app import TunedeckApp

    TunedeckApp(data_dir if data_dir is not None else DEFAULT_DATA_DIR).run()


def register(app: typer.Typer) -> None:
    @app.command("tui")
    def tui_command(
        data_dir: Annotated[
            Path | None,
            typer.Argument(help="A data folder with dataset_info.json (default ./data)."),
        ] = None,
    ) -> None:
        """Open the terminal cockpit (keys: 1-5 screens, ctrl+p commands, ? keys, q quit)."""
        open_app(data_dir)
