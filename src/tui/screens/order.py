"""The five screens in the order of their keys (1-5): read by the app and the navigation bar."""

from __future__ import annotations

SCREENS_IN_ORDER: tuple[tuple[str, str], ...] = (
    ("datasets", "Datasets"),
    ("preview", "Preview"),
    ("runs", "Runs"),
    ("launch", "Launch"),
    ("hosts", "Hosts"),
)
