"""Fixtures shared by every test: an isolated TUNEDECK_HOME and the real-world data folder."""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
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


def pytest_sessionfinish(session, exitstatus) -> None:
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


def pytest_unconfigure(config) -> None:
    """A thread a test left blocked would hold the interpreter's exit (the executor's threads
    are joined at exit) until CI's limit: name it with its stack and exit now, failed."""
    deadline = time.monotonic() + 20
    for thread in _busy_threads():
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = _busy_threads()
    if not stuck:
        return
    frames = sys._current_frames()
    for thread in stuck:
        stack = "".join(traceback.format_stack(frames.get(thread.ident)))
        sys.stderr.write(f"\nthread {thread.name} still running after the tests:\n{stack}")
    sys.stderr.flush()
    os._exit(config.stash.get(_EXIT_STATUS, 0) or 1)


_EXIT_STATUS = pytest.StashKey[int]()


def _busy_threads() -> list[threading.Thread]:
    """Threads that hold the interpreter's exit: non-daemon ones and executor workers, less
    idle workers (their innermost Python frame is the worker loop, waiting on its queue)."""
    frames = sys._current_frames()
    busy = []
    for thread in threading.enumerate():
        frame = frames.get(thread.ident)
        if thread is threading.main_thread() or frame is None or _worker_loop(frame):
            continue
        if not thread.daemon or _in_executor(frame):
            busy.append(thread)
    return busy


def _in_executor(frame) -> bool:
    while frame is not None:
        if _worker_loop(frame):
            return True
        frame = frame.f_back
    return False


def _worker_loop(frame) -> bool:
    """A concurrent.futures worker's own loop (not the work it runs)."""
    return frame.f_code.co_name == "_worker" and "concurrent" in frame.f_code.co_filename
