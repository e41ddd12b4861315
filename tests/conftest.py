"""Fixtures shared by every test: an isolated TUNEDECK_HOME and the real-world data folder."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "llamafactory-data"
EXAMPLE_WORKSPACE = REPO / "examples" / "workspace"


@pytest.fixture(autouse=True)
def tunedeck_home(tmp_path_factory, monkeypatch) -> Path:
    """Every test gets its own state/config dirs: nothing touches the user's."""
    home = tmp_path_factory.mktemp("tunedeck-home")
    monkeypatch.setenv("TUNEDECK_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The LLaMA-Factory data folder beside the repository (../shared/llamafactory-data)."""
    assert SHARED_DATA.is_dir(), f"expected the shared data folder at {SHARED_DATA}"
    return SHARED_DATA


@pytest.fixture(scope="session")
def example_workspace() -> Path:
    return EXAMPLE_WORKSPACE
