"""The app's semantic colours: each role (ok, failed, user, ...) names theme variables, and its
colour is read from the current theme when text is built, so every theme reaches every badge.

A theme may give a role its own colour with the variable `<role>` of `ROLES` (for example
`role-system: "#FF00FF"` under `variables:`); otherwise the role takes a base colour of the
theme (success, warning, error, primary, secondary, accent). Screens that hold built text
redraw it when the theme changes (`follow_theme`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from textual.color import Color, ColorParseError

# role -> theme variables, the first one the theme defines wins
ROLES: dict[str, tuple[str, ...]] = {
    # outcomes of a check
    "ok": ("ok", "success"),
    "warning": ("warning",),
    "error": ("error",),
    "info": ("info", "primary"),
    "remote": ("remote", "primary"),
    "marker": ("marker", "warning"),
    # job states
    "queued": ("state-queued", "secondary"),
    "running": ("state-running", "primary"),
    "stale": ("state-stale", "warning"),
    "succeeded": ("state-succeeded", "success"),
    "failed": ("state-failed", "error"),
    "cancelled": ("state-cancelled", "warning"),
    "lost": ("state-lost", "error"),
    # the loss chart's series
    "loss": ("chart-loss", "primary"),
    "eval_loss": ("chart-eval-loss", "accent"),
    # conversation roles
    "system": ("role-system", "secondary"),
    "user": ("role-user", "primary"),
    "assistant": ("role-assistant", "success"),
    "function": ("role-function", "warning"),
    "observation": ("role-observation", "accent"),
}

# The CLI prints to a plain terminal that has no Textual theme: its role colours are the
# terminal's own named colours (the app's screens use the theme's, through ROLES).
TERMINAL_ROLE_COLOURS = {
    "system": "magenta",
    "user": "cyan",
    "assistant": "green",
    "function": "yellow",
    "observation": "blue",
}


@dataclass(frozen=True)
class Palette:
    """The colours of one theme, by role, as Rich style strings."""

    variables: Mapping[str, str]

    @classmethod
    def of(cls, app: Any) -> Palette:
        """The palette of the app's current theme."""
        theme = app.current_theme
        cached = _PALETTES.get(theme.name)
        if cached is None or cached[0] is not theme:
            cached = _PALETTES[theme.name] = (theme, cls.of_theme(theme))
        return cached[1]

    @classmethod
    def of_theme(cls, theme: Any) -> Palette:
        """The palette of a Textual Theme: its colour system plus its own variables, as the
        app's CSS sees them."""
        return cls({**theme.to_color_system().generate(), **theme.variables})

    def colour(self, role: str) -> str:
        """`#RRGGBB` for `role` (a colour with alpha is blended onto the background)."""
        background = _parse(self.variables.get("background")) or Color(0, 0, 0)
        for name in ROLES.get(role, (role,)):
            colour = _parse(self.variables.get(name))
            if colour is not None:
                return (background + colour).hex6
        foreground = _parse(self.variables.get("foreground")) or Color(255, 255, 255)
        return (background + foreground).hex6

    def style(self, role: str, modifiers: str = "") -> str:
        """A Rich style: `modifiers` (e.g. "bold") and the role's colour."""
        return f"{modifiers} {self.colour(role)}".strip()


_PALETTES: dict[str, tuple[Any, Palette]] = {}  # theme name -> (theme, its palette)


def role_variables() -> set[str]:
    """The theme variables that give a role its own colour (state-running, role-system, ...)."""
    return {names[0] for names in ROLES.values() if len(names) > 1}


def follow_theme(node: Any, redraw: Callable[[], None]) -> None:
    """Call `redraw` after each theme change, while `node` is mounted."""
    node.app.theme_changed_signal.subscribe(node, lambda _theme: redraw())


def _parse(value: str | None) -> Color | None:
    if not value:
        return None
    try:
        return Color.parse(value)
    except ColorParseError:
        return None
