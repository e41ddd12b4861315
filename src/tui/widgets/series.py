"""A growing (step, value) series kept as a min/max pyramid, so drawing it costs the same
for a hundred points or a million: each level halves the previous one, keeping the lowest
and highest value of each pair, and a chart reads the coarsest level that still gives a few
points per column.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable


class MinMaxSeries:
    """Points appended in step order; `buckets` gives min/max per column in O(columns)."""

    def __init__(self, points: Iterable[tuple[float, float]] = ()):
        # level 0 holds the raw points; level k entry i covers raw points [i*2^k, (i+1)*2^k)
        self._x_lo: list[array] = [array("d")]
        self._x_hi: list[array] = [array("d")]
        self._y_lo: list[array] = [array("d")]
        self._y_hi: list[array] = [array("d")]
        self.extend(points)

    def __len__(self) -> int:
        return len(self._x_lo[0])

    @property
    def last(self) -> tuple[float, float] | None:
        if not len(self):
            return None
        return self._x_lo[0][-1], self._y_lo[0][-1]

    def append(self, x: float, y: float) -> None:
        """Add one point (non-finite values are skipped)."""
        if not math.isfinite(y):
            return
        self._x_lo[0].append(x)
        self._x_hi[0].append(x)
        self._y_lo[0].append(y)
        self._y_hi[0].append(y)
        level = 0
        while len(self._x_lo[level]) % 2 == 0:
            self._push(level + 1, len(self._x_lo[level]) - 2)
            level += 1

    def extend(self, points: Iterable[tuple[float, float]]) -> None:
        """Add many points; builds each level in bulk (fast for a million)."""
        points = [(float(x), float(y)) for x, y in points if math.isfinite(y)]
        if not points:
            return
        if len(self):
            for x, y in points:
                self.append(x, y)
            return
        xs = array("d", (p[0] for p in points))
        ys = array("d", (p[1] for p in points))
        self._x_lo, self._x_hi, self._y_lo, self._y_hi = [xs], [xs], [ys], [ys]
        while len(self._x_lo[-1]) >= 2:
            x_lo, x_hi, y_lo, y_hi = self._x_lo[-1], self._x_hi[-1], self._y_lo[-1], self._y_hi[-1]
            n = len(x_lo) // 2 * 2
            self._x_lo.append(x_lo[0:n:2])
            self._x_hi.append(x_hi[1:n:2])
            self._y_lo.append(array("d", map(min, y_lo[0:n:2], y_lo[1:n:2])))
            self._y_hi.append(array("d", map(max, y_hi[0:n:2], y_hi[1:n:2])))

    def x_range(self) -> tuple[float, float] | None:
        if not len(self):
            return None
        return self._x_lo[0][0], self._x_hi[0][-1]

    def buckets(self, x_min: float, x_max: float, columns: int) -> list[tuple[float, float] | None]:
        """(min, max) of the values falling in each of `columns` equal step ranges."""
        out: list[tuple[float, float] | None] = [None] * columns
        if not len(self) or columns <= 0:
            return out
        span = (x_max - x_min) or 1.0
        scale = (columns - 1) / span
        level = 0
        while level + 1 < len(self._x_lo) and len(self._x_lo[level]) > 4 * columns:
            level += 1
        covered = 0
        for k in range(level, -1, -1):  # the coarse level, then the leftover tail below it
            size = 1 << k
            x_lo, x_hi, y_lo, y_hi = self._x_lo[k], self._x_hi[k], self._y_lo[k], self._y_hi[k]
            for i in range(covered // size, len(x_lo)):
                column = int(((x_lo[i] + x_hi[i]) * 0.5 - x_min) * scale + 0.5)
                if 0 <= column < columns:
                    low, high = y_lo[i], y_hi[i]
                    cell = out[column]
                    if cell is None:
                        out[column] = (low, high)
                    else:
                        out[column] = (min(cell[0], low), max(cell[1], high))
            covered = len(x_lo) * size
        return out

    def _push(self, level: int, index: int) -> None:
        if level == len(self._x_lo):
            for store in (self._x_lo, self._x_hi, self._y_lo, self._y_hi):
                store.append(array("d"))
        below = level - 1
        self._x_lo[level].append(self._x_lo[below][index])
        self._x_hi[level].append(self._x_hi[below][index + 1])
        self._y_lo[level].append(min(self._y_lo[below][index], self._y_lo[below][index + 1]))
        self._y_hi[level].append(max(self._y_hi[below][index], self._y_hi[below][index + 1]))
