"""The LLaMA-Factory reference venv (the version of the template goldens), never a dependency.

`reference_python` is the venv's interpreter: TUNEDECK_LF_VENV when set, else
~/.cache/tunedeck/lf-0.9.5, built there once when missing (`python3 -m venv` and
`pip install llamafactory==0.9.5`, some minutes; the folder is kept between runs).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REFERENCE_VERSION = "0.9.5"
DEFAULT_VENV = Path.home() / ".cache" / "tunedeck" / f"lf-{REFERENCE_VERSION}"
BUILD_TIMEOUT = 1800


def reference_venv() -> Path:
    """Where the reference venv is (or will be built)."""
    return Path(os.environ.get("TUNEDECK_LF_VENV") or DEFAULT_VENV)


def ensure_reference_venv(venv: Path) -> Path:
    """The venv's python, building the venv first when it has no llamafactory."""
    python = venv / "bin" / "python"
    if python.exists() and _has_llamafactory(python):
        return python
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True, timeout=BUILD_TIMEOUT)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"llamafactory=={REFERENCE_VERSION}"],
        check=True,
        timeout=BUILD_TIMEOUT,
    )
    assert _has_llamafactory(python), f"llamafactory did not install into {venv}"
    return python


def _has_llamafactory(python: Path) -> bool:
    probe = "import importlib.metadata as m; print(m.version('llamafactory'))"
    done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
    return done.returncode == 0 and done.stdout.strip() == REFERENCE_VERSION


@pytest.fixture(scope="session")
def reference_python() -> Path:
    """The reference venv's python (built when missing)."""
    return ensure_reference_venv(reference_venv())
