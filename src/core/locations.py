"""Where tunedeck keeps its files: XDG dirs, or everything under $TUNEDECK_HOME when set.

What tunedeck writes there is private: folders 0700, files 0600, whatever the umask; a folder
or file found looser is tightened, with one warning on stderr.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
_warned: set[str] = set()


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
    """Create a directory private to the user (0700, whatever the umask) and return it;
    an existing one of ours that others can read or enter is tightened."""
    missing = []
    parent = path
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    for created in missing:
        os.chmod(created, PRIVATE_DIR)  # mkdir's parents get the umask's mode, not ours
    tighten(path, PRIVATE_DIR)
    return path


def tighten(path: Path, mode: int) -> None:
    """Take group and other bits away from `path` if it is ours and has any (warn once)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    loose = stat.S_IMODE(info.st_mode)
    if info.st_uid != os.getuid() or not loose & 0o077:
        return
    os.chmod(path, mode)
    if str(path) not in _warned:
        _warned.add(str(path))
        sys.stderr.write(f"tunedeck: {path} was {loose:04o}; made it {mode:04o} (private)\n")


def create_private(path: Path) -> None:
    """Create an empty file 0600 if it does not exist (the umask cannot widen it)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    os.fchmod(fd, PRIVATE_FILE)
    os.close(fd)


def write_private(path: Path, text: str) -> None:
    """Replace `path` whole with `text`, 0600 from its first byte (never a half-written file)."""
    ensure(path.parent)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    create_private(tmp)
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def toml_string(text: str) -> str:
    """`text` as a TOML basic string (a JSON string is one: the same escapes)."""
    return json.dumps(text, ensure_ascii=False)
