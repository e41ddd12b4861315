"""Fixtures for the app tests: async tests on a fresh loop, workspaces on disk."""

from __future__ import annotations

import asyncio
import inspect
import json
import shutil
from pathlib import Path

import pytest
from pilot_tools import EXAMPLE_DATA


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """Run this folder's `async def` tests on a fresh asyncio loop (App.run_test is async)."""
    function = pyfuncitem.obj
    here = Path(__file__).parent
    if inspect.iscoroutinefunction(function) and here in Path(str(pyfuncitem.fspath)).parents:
        names = pyfuncitem._fixtureinfo.argnames
        asyncio.run(function(**{name: pyfuncitem.funcargs[name] for name in names}))
        return True
    return None


@pytest.fixture
def workspace(tmp_path) -> Path:
    """A copy of the example data folder that a test may change."""
    target = tmp_path / "data"
    shutil.copytree(EXAMPLE_DATA, target)
    return target


@pytest.fixture
def broken_workspace(workspace) -> Path:
    """The example data plus `broken_rows`, whose third row has no output."""
    rows = [
        {"instruction": "Say one.", "input": "", "output": "One."},
        {"instruction": "Say two.", "input": "", "output": "Two."},
        {"instruction": "Say three.", "input": ""},
        {"instruction": "Say four.", "input": "", "output": "Four."},
    ]
    (workspace / "broken_rows.json").write_text(json.dumps(rows, indent=2))
    info = json.loads((workspace / "dataset_info.json").read_text())
    info["broken_rows"] = {"file_name": "broken_rows.json"}
    (workspace / "dataset_info.json").write_text(json.dumps(info, indent=2))
    return workspace


@pytest.fixture
def flawed_workspace(workspace) -> Path:
    """The example data plus `typo_entry` (a misspelt `colums` key) and `bad_lines`, whose
    third JSON line is broken."""
    (workspace / "typo.json").write_text(json.dumps([{"instruction": "a", "output": "b"}]))
    (workspace / "bad.jsonl").write_text(
        '{"instruction": "one", "output": "1"}\n'
        '{"instruction": "two", "output": "2"}\n'
        '{"instruction": "three", "output": unquoted words here}\n'
        '{"instruction": "four", "output": "4"}\n'
    )
    info = json.loads((workspace / "dataset_info.json").read_text())
    info["typo_entry"] = {"file_name": "typo.json", "colums": {"prompt": "instruction"}}
    info["bad_lines"] = {"file_name": "bad.jsonl"}
    (workspace / "dataset_info.json").write_text(json.dumps(info, indent=2))
    return workspace
