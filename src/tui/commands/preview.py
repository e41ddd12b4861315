"""`tunedeck data preview|lengths|to-text`: what the model is trained on."""

from __future__ import annotations

import typer


def register(data_app: typer.Typer) -> None:
    """Add the preview commands to the `data` group."""
