"""Where tunedeck keeps its files: XDG dirs, or everything under $TUNEDECK_HOME when set."""

from __future__ import annotations

import os
from pathlib import Path


def _xdg(var: str, fallback: str, leaf: str) -> Path:
    home = os.environ.get("TUNEDECK_HOME")
    if home:
        return Path(home) / leaf
    base = os.environ.get(var) or str(Path.home() / fallback)
    return Path(base) / "tunedeck"


def config_dir() -> Path:
    """User settings: config.toml, hosts.toml, themes/."""
    return _xdg("XDG_CONFIG_HOME", ".config", "config")


def state_dir() -> Path:
    """Machine state: the job registry, job logs, ssh control sockets."""
    return _xdg("XDG_STATE_HOME", ".local/state", "state")


def cache_dir() -> Path:
    """Disposable data: dataset indexes, computed stats."""
    return _xdg("XDG_CACHE_HOME", ".cache", "cache")


def ensure(path: Path) -> Path:
    """Create a directory (private to the user) if needed and return it."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path
