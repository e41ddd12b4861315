"""User settings for the app, kept in config_dir()/config.toml under a `[tui]` table.

Only the keys this module knows are read or written; other tables in the file are left as
they are, so the CLI and the app can share one config file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from tunedeck.core.locations import config_dir, ensure

DEFAULT_THEME = "tunedeck-dark"


DESKTOP_CHOICES = ("auto", "on", "off")


@dataclass(frozen=True)
class NoticeSettings:
    """How a run that ends or stalls out of sight is announced (`[tui.notices]`): a notification
    in the app, the terminal bell, a desktop notification (OSC 9; "auto": where the terminal is
    known to show one)."""

    popup: bool = True
    bell: bool = True
    desktop: str = "auto"


@dataclass(frozen=True)
class TuiSettings:
    """What the app remembers between runs."""

    theme: str = DEFAULT_THEME
    keymap: dict[str, str] | None = None
    notices: NoticeSettings = NoticeSettings()


def config_path() -> Path:
    """The config file (it may not exist yet)."""
    return config_dir() / "config.toml"


def load_settings(path: Path | None = None) -> TuiSettings:
    """Read the `[tui]` table; a missing or unreadable file gives the defaults."""
    path = path or config_path()
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: fall back to defaults
        return TuiSettings()
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return TuiSettings()
    table = document.get("tui", {})
    if not isinstance(table, dict):
        return TuiSettings()
    settings = TuiSettings()
    if isinstance(table.get("theme"), str):
        settings = replace(settings, theme=table["theme"])
    keys = table.get("keys")
    if isinstance(keys, dict):
        settings = replace(
            settings, keymap={str(k): str(v) for k, v in keys.items() if isinstance(v, str)}
        )
    notices = table.get("notices")
    if isinstance(notices, dict):
        settings = replace(settings, notices=_notice_settings(notices))
    return settings


def _notice_settings(table: dict) -> NoticeSettings:
    """`[tui.notices]`: popup/bell true or false, desktop "auto"/"on"/"off" (or a boolean);
    a value of the wrong kind keeps its default."""
    found = NoticeSettings()
    for key in ("popup", "bell"):
        if isinstance(table.get(key), bool):
            found = replace(found, **{key: table[key]})
    desktop = table.get("desktop")
    if isinstance(desktop, bool):
        found = replace(found, desktop="on" if desktop else "off")
    elif desktop in DESKTOP_CHOICES:
        found = replace(found, desktop=desktop)
    return found


def save_theme(theme: str, path: Path | None = None) -> Path:
    """Persist the chosen theme, keeping every other line of the file."""
    path = path or config_path()
    ensure(path.parent)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    path.write_text(_set_key(text, "tui", "theme", theme), encoding="utf-8")
    return path


_TABLE = re.compile(r"^\s*\[([^\]]+)\]\s*(#.*)?$")


def _set_key(text: str, table: str, key: str, value: str) -> str:
    """Set `key = "value"` inside `[table]` of a TOML text, adding the table if absent."""
    line = f"{key} = {_toml_string(value)}"
    lines = text.splitlines()
    start = next((i for i, s in enumerate(lines) if _table_name(s) == table), None)
    if start is None:
        prefix = "\n" if lines and lines[-1].strip() else ""
        return text.rstrip("\n") + ("\n" if text else "") + f"{prefix}[{table}]\n{line}\n"
    end = next((i for i in range(start + 1, len(lines)) if _table_name(lines[i])), len(lines))
    for i in range(start + 1, end):
        if re.match(rf"^\s*{re.escape(key)}\s*=", lines[i]):
            lines[i] = line
            break
    else:
        lines.insert(start + 1, line)
    return "\n".join(lines) + "\n"


def _table_name(line: str) -> str | None:
    match = _TABLE.match(line)
    return match.group(1).strip() if match else None


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
