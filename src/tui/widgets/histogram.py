"""A length histogram in block characters, with a marker where cutoff_len falls."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from tunedeck.tui.palette import Palette

BLOCKS = " ▁▂▃▄▅▆▇█"


class Histogram(Widget):
    """Counts of values in equal-width bins; `set_values` redraws."""

    DEFAULT_CSS = """
    Histogram { height: 6; background: $surface; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.values: list[int] = []
        self.unit = "tokens"
        self.cutoff: int | None = None
        self.note = "no lengths yet"

    def set_values(self, values: list[int], unit: str, cutoff: int | None) -> None:
        self.values, self.unit, self.cutoff = values, unit, cutoff
        self.refresh()

    def render(self) -> Text:
        """Drawn on each refresh in the current theme's colours (a theme switch repaints)."""
        lines = draw_histogram(
            self.values,
            self.size.width,
            self.size.height,
            self.unit,
            self.cutoff,
            Palette.of(self.app),
            self.note,
        )
        return Text("\n").join(lines)


def draw_histogram(
    values: list[int],
    width: int,
    height: int,
    unit: str,
    cutoff: int | None,
    palette: Palette,
    note: str = "",
) -> list[Text]:
    """`height` lines: bars (height-2 rows), an axis line, and a summary line."""
    if not values or width < 10 or height < 3:
        return [Text(note or "no values", style="dim")]
    low, high = min(values), max(values)
    bins = max(1, width)
    span = max(1, high - low + 1)
    counts = [0] * bins
    for value in values:
        counts[min(bins - 1, (value - low) * bins // span)] += 1
    rows = height - 2
    peak = max(counts)
    cutoff_bin = None
    if cutoff is not None and low <= cutoff <= high:
        cutoff_bin = min(bins - 1, (cutoff - low) * bins // span)
    bar, over_cutoff, marker = (palette.colour(r) for r in ("info", "error", "marker"))
    lines: list[Text] = []
    for row in range(rows, 0, -1):
        line = Text(no_wrap=True, end="")
        for index, count in enumerate(counts):
            level = count * rows * 8 // peak if peak else 0
            part = min(8, max(0, level - (row - 1) * 8))
            past = cutoff is not None and low + index * span / bins > cutoff
            style = over_cutoff if past else bar
            char = BLOCKS[part]
            if index == cutoff_bin and char == " ":
                char, style = "┆", marker
            line.append(char, style=style)
        lines.append(line)
    axis = f"{low:,}"
    right = f"{high:,} {unit}"
    lines.append(Text(axis + " " * max(1, width - len(axis) - len(right)) + right, style="dim"))
    over = sum(v > cutoff for v in values) if cutoff is not None else 0
    summary = Text(
        f"{len(values):,} rows · median {sorted(values)[len(values) // 2]:,}", no_wrap=True
    )
    if cutoff is not None:
        summary.append(
            f" · {over:,} over cutoff {cutoff:,}", style=palette.style("error" if over else "ok")
        )
    lines.append(summary)
    return lines[-height:]
