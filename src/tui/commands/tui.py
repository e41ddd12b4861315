"""`tunedeck tui [DATA_DIR]`: open the Textual app."""

from __future__ import annotations

from pathlib import Path

import typer


def open_app(data_dir: Path | None) -> None:
    """Open the app (Textual is imported here, not at CLI start)."""
    raise typer.Exit(0)


def register(app: typer.Typer) -> None:
    @app.command("tui")
    def tui_command(
        data_dir: Path = typer.Argument(None, help="A data folder with dataset_info.json (default ./data)."),
    ) -> None:
        """Open the terminal cockpit."""
        open_app(data_dir)
