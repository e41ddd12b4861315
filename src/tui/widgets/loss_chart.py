"""A loss chart in braille dots: loss and eval_loss against steps, redrawn as points arrive.

Each series is a `MinMaxSeries`, so a redraw reads about four points per dot column however
long the run is (a million points redraw in a few milliseconds).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widget import Widget

from tunedeck.core.text import inert
from tunedeck.tui.palette import Palette
from tunedeck.tui.widgets.series import MinMaxSeries

BRAILLE_BASE = 0x2800
# dot bit for (x in 0..1, y in 0..3) inside one braille cell
DOT_BITS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))
LABEL_WIDTH = 8


class LossChart(Widget):
    """Draws `loss` and `eval_loss` vs step; set the series (or `replace`) as metrics come in."""

    DEFAULT_CSS = """
    LossChart { height: 1fr; min-height: 6; background: $surface; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.loss = MinMaxSeries()
        self.eval_loss = MinMaxSeries()

    def replace(self, points: list[tuple[float, float | None, float | None]]) -> None:
        """Start over from (step, loss, eval_loss) triples (None where a value is absent)."""
        self.loss = MinMaxSeries((s, v) for s, v, _ in points if v is not None)
        self.eval_loss = MinMaxSeries((s, e) for s, _, e in points if e is not None)
        self.refresh()

    def render(self) -> Text:
        """Drawn on each refresh in the current theme's colours (a theme switch repaints)."""
        palette = Palette.of(self.app)
        colours = tuple(palette.colour(role) for role in ("loss", "eval_loss", "foreground"))
        rows = draw_chart(self.loss, self.eval_loss, self.size.width, self.size.height, colours)
        return Text("\n").join(rows)


# the colours of overlaid runs, in order (palette roles: each theme gives its own colours)
RUN_ROLES = ("loss", "eval_loss", "ok", "warning", "system", "error")


class CompareChart(Widget):
    """Several runs' curves of one metric overlaid, one colour per run, a legend naming each."""

    DEFAULT_CSS = """
    CompareChart { height: 1fr; min-height: 6; background: $surface; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.lines: list[tuple[str, MinMaxSeries]] = []
        self.metric = "loss"
        self.x_unit = "steps"

    def show(self, lines: list[tuple[str, MinMaxSeries]], metric: str, x_unit: str) -> None:
        """Draw these (label, series) curves of `metric` against `x_unit`."""
        self.lines, self.metric, self.x_unit = lines, metric, x_unit
        self.refresh()

    def render(self) -> Text:
        colours = run_colours(Palette.of(self.app), len(self.lines))
        legend = Text(no_wrap=True, overflow="ellipsis", end="")
        legend.append(f"{self.metric:>{LABEL_WIDTH - 1}} ", style="dim")
        for (label, series), colour in zip(self.lines, colours, strict=True):
            legend.append("━ " + inert(label), style=f"bold {colour}".strip())
            legend.append(" (none)  " if not len(series) else "  ", style="dim")
        legend.truncate(self.size.width, overflow="ellipsis")
        series = [(s, colour) for (_, s), colour in zip(self.lines, colours, strict=True)]
        empty = f"no {self.metric} values" + (" by tokens seen" if self.x_unit == "tokens" else "")
        size = self.size
        rows = draw_lines(series, size.width, size.height, legend, self.x_unit, empty=empty)
        return Text("\n").join(rows)


def run_colours(palette: Palette, count: int) -> list[str]:
    """The colour of each of `count` overlaid runs in this theme (they repeat after six)."""
    return [palette.colour(RUN_ROLES[index % len(RUN_ROLES)]) for index in range(count)]


def draw_chart(
    loss: MinMaxSeries,
    eval_loss: MinMaxSeries,
    width: int,
    height: int,
    colours: tuple[str, str, str] = ("", "", ""),
) -> list[Text]:
    """Render both series into `height` lines of `width` cells (legend, plot, step axis);
    `colours` are the loss, eval_loss and text colours (none: the terminal's own)."""
    legend = _legend(loss, eval_loss, colours)
    return draw_lines([(loss, colours[0]), (eval_loss, colours[1])], width, height, legend)


def draw_lines(
    lines: Sequence[tuple[MinMaxSeries, str]],
    width: int,
    height: int,
    legend: Text,
    x_unit: str = "steps",
    empty: str = "no loss values yet",
) -> list[Text]:
    """Render series (each with its colour; a later one is drawn over an earlier one) into
    `height` lines of `width` cells: the legend, the plot and the x axis in `x_unit`."""
    width, height = max(width, LABEL_WIDTH + 4), max(height, 4)
    plot_w, plot_h = width - LABEL_WIDTH, height - 2
    ranges = [r for r in (series.x_range() for series, _ in lines) if r]
    if not ranges:
        blank = [Text("")] * (height - 2)
        return [legend, *blank, Text(empty, style="dim")]
    x_min = min(r[0] for r in ranges)
    x_max = max(r[1] for r in ranges)
    columns = plot_w * 2
    buckets = [series.buckets(x_min, x_max, columns) for series, _ in lines]
    values = [v for series in buckets for b in series if b for v in b]
    y_min, y_max = min(values), max(values)
    if y_max - y_min < 1e-9:
        y_min, y_max = y_min - 0.5, y_max + 0.5
    cells = [_plot(series, y_min, y_max, plot_w, plot_h) for series in buckets]
    styles = [colour for _, colour in lines]
    rows = [legend]
    label_rows = {0: y_max, plot_h - 1: y_min, (plot_h - 1) // 2: (y_max + y_min) / 2}
    for row in range(plot_h):
        line = Text(no_wrap=True, overflow="crop", end="")
        label = label_rows.get(row)
        line.append(f"{label:>7.3f}┤" if label is not None else " " * 7 + "│", style="dim")
        _append_cells(line, [series[row] for series in cells], styles)
        rows.append(line)
    left, right = _axis_number(x_min, x_unit), f"{_axis_number(x_max, x_unit)} {x_unit}"
    gap = max(1, plot_w - len(left) - len(right))
    rows.append(Text(" " * LABEL_WIDTH + left + " " * gap + right, style="dim", no_wrap=True))
    return rows


def _axis_number(value: float, unit: str) -> str:
    """Steps written out (1,200); token counts shortened (1.2M), they run to billions."""
    if unit != "tokens" or abs(value) < 10_000:
        return f"{value:,.0f}"
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.1f}{suffix}"
    return f"{value:,.0f}"


def _plot(
    buckets: list[tuple[float, float] | None], y_min: float, y_max: float, cols: int, rows: int
) -> list[list[int]]:
    """Braille dot bits per cell for one series: each column's min..max span, joined to the
    previous column holding a value by a straight, gap-free segment."""
    cells = [[0] * cols for _ in range(rows)]
    scale = (rows * 4 - 1) / (y_max - y_min)
    previous: tuple[int, float] | None = None  # column, pixel y of its middle
    for column, bucket in enumerate(buckets):
        if bucket is None:
            continue
        top = int((y_max - bucket[1]) * scale + 0.5)
        bottom = int((y_max - bucket[0]) * scale + 0.5)
        middle = (top + bottom) / 2
        if previous is not None:
            p_column, p_middle = previous
            span = column - p_column
            last_y = p_middle
            for step in range(1, span + 1):  # one vertical run per column along the segment
                y = p_middle + (middle - p_middle) * step / span
                low, high = sorted((int(last_y + 0.5), int(y + 0.5)))
                for pixel_y in range(low, high + 1):
                    _dot(cells, p_column + step, pixel_y)
                last_y = y
        for pixel_y in range(top, bottom + 1):
            _dot(cells, column, pixel_y)
        previous = (column, middle)
    return cells


def _dot(cells: list[list[int]], pixel_x: int, pixel_y: int) -> None:
    row, sub_y = divmod(pixel_y, 4)
    cell, sub_x = divmod(pixel_x, 2)
    if 0 <= row < len(cells) and 0 <= cell < len(cells[row]):
        cells[row][cell] |= DOT_BITS[sub_x][sub_y]


def _append_cells(line: Text, rows: list[list[int]], styles: list[str]) -> None:
    """One plot row: the dots of every series, each cell in the colour of the last series
    that has a dot there."""
    run, run_style = [], None
    for column in range(len(rows[0])):
        bits, style = 0, None
        for series_row, colour in zip(rows, styles, strict=True):
            if series_row[column]:
                bits |= series_row[column]
                style = colour or None
        if style != run_style and run:
            line.append("".join(run), style=run_style)
            run = []
        run_style = style
        run.append(chr(BRAILLE_BASE + bits) if bits else " ")
    if run:
        line.append("".join(run), style=run_style)


def _legend(loss: MinMaxSeries, eval_loss: MinMaxSeries, colours) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis", end="")
    text.append(" " * LABEL_WIDTH)
    text.append("━ loss", style=f"bold {colours[0]}".strip())
    if loss.last:
        text.append(f" {loss.last[1]:.4f} @ {loss.last[0]:,.0f}")
    text.append("   ")
    text.append("━ eval_loss", style=f"bold {colours[1]}".strip())
    if eval_loss.last:
        text.append(f" {eval_loss.last[1]:.4f} @ {eval_loss.last[0]:,.0f}")
    return text
