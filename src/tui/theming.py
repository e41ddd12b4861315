"""Themes as YAML files: the ones shipped in tunedeck.themes and the user's own.

A theme file holds the fields of `textual.theme.Theme` (name, primary, secondary, accent,
foreground, background, surface, panel, boost, warning, error, success, dark, variables).
Users drop extra files into config_dir()/themes/; a broken file is skipped with a reason.
Under `variables:` a theme may colour a role of the palette (state-failed, role-user, ...; see
tunedeck.tui.palette); such a colour must parse, so a typo is reported, not shown as black.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import yaml
from textual.color import Color, ColorParseError
from textual.theme import Theme

from tunedeck.core.locations import config_dir
from tunedeck.themes import THEMES_DIR
from tunedeck.tui.palette import role_variables

_THEME_FIELDS = {f.name for f in fields(Theme)}


@dataclass(frozen=True)
class ThemeProblem:
    """A theme file that could not be loaded, and why."""

    path: Path
    reason: str


def user_themes_dir() -> Path:
    return config_dir() / "themes"


def load_themes() -> tuple[list[Theme], list[ThemeProblem]]:
    """Shipped themes first, then user themes (a user theme may replace a shipped one)."""
    themes: list[Theme] = []
    problems: list[ThemeProblem] = []
    for folder in (THEMES_DIR, user_themes_dir()):
        if not folder.is_dir():
            continue
        for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
            try:
                themes.append(load_theme_file(path))
            except (OSError, ValueError, TypeError, yaml.YAMLError) as error:
                problems.append(ThemeProblem(path, str(error)))
    return themes, problems


def load_theme_file(path: Path) -> Theme:
    """Read one YAML theme file into a Theme; unknown keys are an error (typos show up)."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise ValueError("a theme file must be a mapping of Theme fields")
    unknown = sorted(set(document) - _THEME_FIELDS)
    if unknown:
        raise ValueError(f"unknown theme keys: {', '.join(unknown)}")
    if "name" not in document or "primary" not in document:
        raise ValueError("a theme needs at least 'name' and 'primary'")
    variables = document.get("variables") or {}
    document["variables"] = {str(k): str(v) for k, v in variables.items()}
    _check_role_colours(document["variables"])
    theme = Theme(**document)
    theme.to_color_system()  # raises on colours Textual cannot parse
    return theme


def _check_role_colours(variables: dict[str, str]) -> None:
    for name in sorted(role_variables() & set(variables)):
        try:
            Color.parse(variables[name])
        except ColorParseError:
            raise ValueError(f"{name}: {variables[name]!r} is not a colour") from None
