"""`python -m tunedeck.core.engines.run KIND key=value...`: LLaMA-Factory's CLI on this host.

Writes the settings as a YAML in the state folder and execs `llamafactory-cli train|export` on
it, so the job's process is LLaMA-Factory's own (its group is cancelled as a tree).
"""

from __future__ import annotations

import os
import sys
import time

import yaml

from tunedeck.core.engines.llamafactory_host import engine_argv, find_install, path_with
from tunedeck.core.locations import ensure, state_dir


def main(argv: list[str]) -> int:
    from tunedeck.core.config.loader import parse_overrides

    if not argv or argv[0] not in ("train", "quantize"):
        print(
            "usage: python -m tunedeck.core.engines.run train|quantize key=value...",
            file=sys.stderr,
        )
        return 2
    install = find_install()
    if install is None:
        print("LLaMA-Factory is not installed on this host", file=sys.stderr)
        return 1
    document = dict(parse_overrides(argv[1:]))
    folder = ensure(state_dir() / "runs")
    path = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-llamafactory.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    command = engine_argv(install.cli, argv[0], str(path))
    os.environ["PATH"] = path_with(install.cli)
    sys.stdout.flush()
    os.execv(command[0], command)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
