"""The host's side of a run's config check: check_config on this box, plus room for outputs.

The agent answers `check_config` with it before a job is created (runners ask, jobs answer).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tunedeck.core.errors import Location


def check_here(purpose: str, settings: Mapping[str, Any], min_free: int | None) -> dict:
    """The agent's side of check_on_host: check_config on this box, plus free space for outputs."""
    from tunedeck.core.config import ConfigCheck, ConfigProblem, check_config
    from tunedeck.core.jobs.space import free_bytes, mount_of
    from tunedeck.core.jobs.store import human_bytes

    overrides = [f"{key}={json.dumps(value)}" for key, value in settings.items()]
    key = "output_dir" if purpose == "train" else "export_dir"
    folder = settings.get(key)
    try:
        check = check_config(None, overrides, purpose=purpose, check_files=True)
    except OSError as error:  # a path this account may not read
        return ConfigCheck(None, (_unreadable(error, key, folder),)).to_dict()
    if folder and min_free:
        probe = Path(os.path.expanduser(str(folder))).absolute()
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        free = free_bytes(probe)
        if free is not None and free < min_free:
            problem = ConfigProblem(
                key,
                f"{mount_of(probe)} has {human_bytes(free)} free; a run needs "
                f"{human_bytes(min_free)} for its outputs",
                Location(file=str(probe), column=key),
                hint="free space on the host or write the outputs elsewhere",
            )
            check = ConfigCheck(None, (*check.problems, problem), check.path)
    return check.to_dict()


def _unreadable(error: OSError, key: str, folder: Any):
    """The problem of a path this account may not read: at the outputs' key when it is on the
    way to (or inside) the output folder, else at the file."""
    from tunedeck.core.config import ConfigProblem

    path = Path(str(error.filename))
    if folder:
        out = Path(os.path.expanduser(str(folder))).absolute()
        if path == out or path in out.parents or out in path.parents:
            return ConfigProblem(
                key,
                f"cannot write {folder}: {error.strerror} ({path})",
                Location(file=str(path), column=key),
                hint=f"give {key} a folder this host's account can write "
                "(a relative one is under the host's workdir)",
            )
    return ConfigProblem(
        None,
        f"cannot read {path}: {error.strerror}",
        Location(file=str(path)),
        hint="sync the run's files (they are unless --no-sync) or give the host's account access",
    )


def llamafactory_report() -> dict | None:
    """This host's LLaMA-Factory for `hosts check` (its version and CLI), None when absent;
    read from its metadata, without importing it."""
    from tunedeck.core.engines.llamafactory_host import find_install

    install = find_install()
    return None if install is None else {"version": install.version, "cli": install.cli}
