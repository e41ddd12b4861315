"""The one-line bar on top of every screen: the five screens with their keys, and where we are."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from tunedeck.tui.palette import Palette


class NavBar(Widget):
    """Shows `1 Datasets  2 Preview ...` with the current screen highlighted, plus a context."""

    DEFAULT_CSS = """
    NavBar { height: 1; background: $panel; color: $foreground; }
    """

    current: reactive[str] = reactive("")
    context: reactive[str] = reactive("")

    def __init__(self, screens: tuple[tuple[str, str], ...], current: str, context: str = ""):
        super().__init__()
        self._screens = screens
        self.set_reactive(NavBar.current, current)
        self.set_reactive(NavBar.context, context)

    def render(self) -> Text:
        """Drawn on each refresh in the current theme's colours (a theme switch repaints)."""
        palette = Palette.of(self.app)
        background, primary, accent = (
            palette.colour(v) for v in ("background", "primary", "accent")
        )
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(" tunedeck ", style=f"bold {background} on {primary}")
        for i, (mode, title) in enumerate(self._screens, start=1):
            if mode == self.current:
                text.append(f" {i} {title} ", style=f"bold {background} on {accent}")
            else:
                text.append(f" {i}", style=f"bold {accent}")
                text.append(f" {title} ")
        if self.context:
            text.append("  ")
            text.append(self.context, style="dim")
        return text
