"""Names, keys, messages and log lines reach the screen as plain, inert text.

A job name or a dataset_info.json key holding `[/x]` must not be read as markup (it crashed the
app), `[red]` must not style it, and escape sequences (window title, clear screen, OSC 52 to the
clipboard) must be shown, never written to the terminal.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pilot_tools import screen_text, settle, wait_until
from textual.widgets import DataTable

from tunedeck.core.jobs import JobRegistry
from tunedeck.core.jobs.model import Job, JobState
from tunedeck.core.text import has_controls
from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.widgets.log_view import LogView

TITLE = "\x1b]0;pwned\x07"
CLEAR = "\x1b[2J"
CLIPBOARD = "\x1b]52;c;SGVsbG8=\x07"
HOSTILE_NAMES = ("data[/path]", "[red]styled", f"{TITLE}{CLEAR}wipe")


def _add_job(registry: JobRegistry, name: str, log: Path, **fields) -> Job:
    job = Job(
        id=registry.new_id(),
        name=name,
        argv=("true",),
        state=JobState.FAILED,
        exit_code=1,
        log_path=str(log),
        created_at=time.time(),
        **fields,
    )
    return registry.add(job)


def _write_runs(tmp_path: Path, names, log_bytes: bytes, hosts=(), message="") -> Job:
    """Ended runs named `names` (hosts in turn), the newest local, logging `log_bytes`."""
    log = tmp_path / "hostile.log"
    log.write_bytes(log_bytes)
    registry = JobRegistry()
    newest = None
    for number, name in enumerate(names):
        host = hosts[number % len(hosts)] if hosts and number < len(names) - 1 else "local"
        newest = _add_job(registry, name, log, host=host, message=message)
    registry.close()
    return newest


def _with_keys(workspace: Path, keys) -> None:
    """dataset_info.json gains an entry per key, each on a real file of the example data."""
    info_path = workspace / "dataset_info.json"
    info = json.loads(info_path.read_text())
    first = next(iter(info.values()))
    for key in keys:
        info[key] = dict(first)
    info_path.write_text(json.dumps(info))


def _controls(app) -> list[str]:
    """The control characters in what the screen renders (each strip's segments)."""
    return [ch for ch in screen_text(app) if ch != "\n" and has_controls(ch)]


async def _runs_screen(app, pilot, newest: Job):
    """Show the Runs screen with the newest run's log (its follow worker never ends: the
    waits here name what they wait for instead of settling every worker)."""
    await pilot.press("3")
    await wait_until(
        pilot, lambda: app.current_mode == "runs" and newest.id in app.screen.jobs, "runs listed"
    )
    log = app.screen.query_one(LogView)
    await wait_until(pilot, lambda: app.screen.selected == newest.id, "the newest selected")
    await wait_until(pilot, lambda: bool(log.window), "the log shown")
    await settle(pilot, "runs-list")
    await pilot.pause()
    return app.screen


async def test_markup_in_a_job_name_is_shown_as_typed(tmp_path):
    newest = _write_runs(tmp_path, ["data[/path]", "[red]styled"], b"[/x] closing tag\n")
    app = TunedeckApp(tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await _runs_screen(app, pilot, newest)
        shown = screen_text(app)
        assert "data[/path]" in shown and "[red]styled" in shown
        assert "[/x] closing tag" in shown
        table = screen.query_one("#jobs-table", DataTable)
        styled = next(
            table.get_row_at(i)[1]
            for i in range(table.row_count)
            if "styled" in str(table.get_row_at(i)[1])
        )
        assert str(styled) == "[red]styled" and not styled.spans and not styled.style


async def test_escape_sequences_in_names_messages_and_logs_are_shown_not_obeyed(tmp_path):
    log = f"step 1\n{CLIPBOARD}copied\n{TITLE}{CLEAR}cleared\n\x9bc1 byte\r\n".encode()
    newest = _write_runs(tmp_path, [f"{TITLE}{CLEAR}wipe"], log, message=f"bell\x07{CLIPBOARD}")
    app = TunedeckApp(tmp_path)
    async with app.run_test(size=(160, 40)) as pilot:
        await _runs_screen(app, pilot, newest)
        shown = screen_text(app)
        assert _controls(app) == []
        assert "\\x1b]0;pwned\\x07\\x1b[2Jwipe" in shown  # the name, written out
        assert "\\x1b]52;c;SGVsbG8=\\x07copied" in shown  # the log line
        assert "\\x9bc1 byte" in shown
        assert "bell\\x07" in shown  # the message, in the detail line


async def test_markup_and_escapes_in_dataset_keys_are_shown_as_typed(workspace):
    _with_keys(workspace, ["ident[/x]", "[red]styled", f"{TITLE}ctl"])
    app = TunedeckApp(workspace)
    async with app.run_test(size=(140, 50)) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#datasets-table", DataTable)
        names = [str(table.get_row_at(i)[1]) for i in range(table.row_count)]
        assert {"ident[/x]", "[red]styled", "\\x1b]0;pwned\\x07ctl"} <= set(names)
        assert "ident[/x]" in screen_text(app)
        assert _controls(app) == []


# Fuzz: random text with markup and control characters -------------------------------------

MARKUP = st.sampled_from(["[", "]", "[/x]", "[red]", "[/]", "[bold]", "[link=x]", "\\["])
CONTROLS = st.sampled_from(
    [TITLE, CLEAR, CLIPBOARD, "\x07", "\r", "\x08", "\x00", "\x7f", "\x9b", "\x1b", "\t", "\n"]
)
PIECES = st.one_of(MARKUP, CONTROLS, st.text(max_size=6))
HOSTILE = st.lists(PIECES, min_size=1, max_size=6).map("".join).filter(lambda s: s.strip())
LOG_BYTES = st.lists(st.one_of(PIECES.map(str.encode), st.binary(max_size=8)), max_size=12).map(
    b"".join
)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    names=st.lists(HOSTILE, min_size=1, max_size=3),
    keys=st.lists(HOSTILE, min_size=1, max_size=3, unique=True),
    log=LOG_BYTES,
    message=HOSTILE,
)
def test_fuzz_hostile_text_never_crashes_or_reaches_the_terminal(
    tmp_path_factory, names, keys, log, message
):
    folder = tmp_path_factory.mktemp("fuzz")
    workspace = folder / "data"
    workspace.mkdir()
    example = Path(__file__).resolve().parents[2] / "examples" / "workspace" / "data"
    for file in example.iterdir():
        if file.is_file():
            (workspace / file.name).write_bytes(file.read_bytes())
    _with_keys(workspace, keys)
    newest = _write_runs(folder, names, log + b"\nlast line\n", hosts=names, message=message)
    asyncio.run(_check_screens(workspace, newest))


async def _check_screens(workspace: Path, newest: Job) -> None:
    app = TunedeckApp(workspace)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        assert app.current_mode == "datasets"
        assert _controls(app) == []
        await _runs_screen(app, pilot, newest)
        assert _controls(app) == []
        app.screen.query_one(LogView).wrap = True  # wrapped lines too
        await pilot.pause()
        assert _controls(app) == []


def _hostile_rows_workspace(folder: Path) -> Path:
    """A data folder of one alpaca entry whose row text holds markup and escape sequences."""
    folder.mkdir(parents=True, exist_ok=True)
    row = {
        "instruction": f"[/x] ask {TITLE}{CLEAR}",
        "input": "[red]styled\x9bc1",
        "output": f"answer {CLIPBOARD}done",
    }
    (folder / "hostile.json").write_text(json.dumps([row, row]))
    (folder / "dataset_info.json").write_text(
        json.dumps({"hostile": {"file_name": "hostile.json"}})
    )
    return folder


async def test_row_text_in_the_row_browser_and_the_preview_is_shown_not_obeyed(tmp_path):
    app = TunedeckApp(_hostile_rows_workspace(tmp_path / "data"))
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        await pilot.press("right_square_bracket")  # the Rows tab, row 2 (a copy of row 1)
        await settle(pilot)
        assert "[/x] ask \\x1b]0;pwned\\x07\\x1b[2J" in screen_text(app)  # normalised row
        assert _controls(app) == []
        await pilot.press("r")  # the raw row
        await settle(pilot)
        assert "\\x9bc1" in screen_text(app) and _controls(app) == []
        await pilot.press("2")  # the prompt rendered through a template
        await settle(pilot)
        shown = screen_text(app)
        assert "answer \\x1b]52;c;SGVsbG8=\\x07done" in shown and "[red]styled" in shown
        assert _controls(app) == []


async def test_a_notification_naming_a_hostile_path_is_shown_as_typed(tmp_path):
    (tmp_path / "run[").mkdir()
    path = tmp_path / "run[" / f"x]{TITLE}.yaml"  # the path reads ".../run[/x]..."
    path.write_text("- not a mapping\n")
    app = TunedeckApp(tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("4")
        await settle(pilot)
        screen = app.screen
        screen.load_base(str(path))  # as if typed into the base YAML field and submitted
        await settle(pilot)
        said = [str(n.message) for n in app._notifications]
        assert any("run[/x]\\x1b]0;pwned\\x07.yaml: not a mapping" in m for m in said), said
        assert _controls(app) == []
