"""The log view widget on real files: end shown at once, appends followed, search, wrap."""

from __future__ import annotations

import os
import sys
from contextlib import asynccontextmanager
from pathlib import Path

from pilot_tools import EXAMPLE_DATA, screen_text, wait_until
from textual.app import App, ComposeResult

from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.widgets.log_view import LogView


class LogApp(App):
    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    def compose(self) -> ComposeResult:
        yield LogView(self.path)


def _texts(view: LogView) -> list[str]:
    return [line.text for line in view.window]


def _write(path: Path, lines: list[str]) -> None:
    with path.open("a") as handle:
        handle.write("".join(f"{line}\n" for line in lines))


async def test_opening_a_big_log_shows_its_end_at_once(tmp_path):
    path = tmp_path / "big.log"
    _write(path, [f"step {n} loss {n / 7:.3f}" for n in range(200_000)])
    app = LogApp(path)
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(LogView)
        await wait_until(pilot, lambda: "step 199999" in " ".join(_texts(view)), "end shown")
        assert len(view.window) <= 30  # only what fits on screen is held


async def test_an_appended_line_appears_while_following(tmp_path):
    path = tmp_path / "run.log"
    _write(path, ["first"])
    app = LogApp(path)
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(LogView)
        await wait_until(pilot, lambda: _texts(view) == ["first"], "first line")
        _write(path, ["second", "third"])
        await wait_until(pilot, lambda: _texts(view)[-1] == "third", "appended lines")
        assert _texts(view) == ["first", "second", "third"]


async def test_truncated_and_rotated_logs_are_shown_from_their_new_content(tmp_path):
    path = tmp_path / "run.log"
    _write(path, ["old 1", "old 2"])
    app = LogApp(path)
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(LogView)
        await wait_until(pilot, lambda: _texts(view) == ["old 1", "old 2"], "old content")
        path.write_text("after truncate\n")
        await wait_until(pilot, lambda: _texts(view) == ["after truncate"], "truncation")
        os.rename(path, tmp_path / "run.log.1")
        _write(path, ["rotated in"])
        await wait_until(pilot, lambda: _texts(view) == ["rotated in"], "rotation")


async def test_scrolling_pauses_follow_and_end_resumes_it(tmp_path):
    path = tmp_path / "run.log"
    _write(path, [f"line {n}" for n in range(1000)])
    app = LogApp(path)
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(LogView)
        await wait_until(pilot, lambda: "line 999" in _texts(view), "end shown")
        view.lines_widget.focus()
        await pilot.press("g")
        await wait_until(pilot, lambda: _texts(view)[:1] == ["line 0"], "start shown")
        assert not view.follow
        await pilot.press("down", "down")
        await wait_until(pilot, lambda: _texts(view)[:1] == ["line 2"], "scrolled 2 lines")
        _write(path, ["appended while paused"])
        await pilot.pause(0.3)
        assert _texts(view)[0] == "line 2"
        await pilot.press("G")
        await wait_until(
            pilot, lambda: _texts(view)[-1] == "appended while paused", "end again, following"
        )
        assert view.follow


async def test_search_jumps_to_the_matching_line_and_wrap_toggles(tmp_path):
    path = tmp_path / "run.log"
    _write(path, [f"line {n}" for n in range(20000)] + ["x" * 300])
    app = LogApp(path)
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(LogView)
        await wait_until(pilot, lambda: bool(view.window), "content")
        view.lines_widget.focus()
        await pilot.press("g")
        await wait_until(pilot, lambda: _texts(view)[:1] == ["line 0"], "start")
        await pilot.press("slash", *"line 1234", "enter")
        await wait_until(pilot, lambda: _texts(view)[:1] == ["line 1234"], "search hit")
        await pilot.press("n")
        await wait_until(pilot, lambda: _texts(view)[:1] == ["line 12340"], "next hit")
        await pilot.press("N")
        await wait_until(pilot, lambda: _texts(view)[:1] == ["line 1234"], "previous hit")
        await pilot.press("w")
        assert view.wrap
        await pilot.press("w")
        assert not view.wrap


# A failed run's log: long lines (a traceback's), then the error at the very end.
FAILING_RUN = (
    "import sys\n"
    "for n in range(400):\n"
    "    print(f'step {n:03d} ' + 'x' * 150, flush=True)\n"
    "print('RuntimeError: the very last line', flush=True)\n"
    "sys.exit(1)\n"
)


async def _failed_run_in_runs_screen(pilot, app):
    from tunedeck.core.jobs import find_job, submit
    from tunedeck.tui.messages import SelectJob

    job = submit([sys.executable, "-c", FAILING_RUN], name="fails")
    await wait_until(pilot, lambda: find_job(job.id).state.is_final, "the run to fail", timeout=60)
    await pilot.press("3")
    await wait_until(pilot, lambda: app.current_mode == "runs", "runs screen")
    app.screen.post_message(SelectJob(job.id))
    view = app.screen.query_one(LogView)
    await wait_until(pilot, lambda: app.screen.selected == job.id, "the failed run selected")
    await wait_until(
        pilot, lambda: "RuntimeError: the very last line" in _texts(view), "its end read"
    )
    await pilot.pause()
    return view


@asynccontextmanager
async def _failed_run_shown():
    """The app on the Runs screen, following the log of a run that failed."""
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(120, 40)) as pilot:
        yield app, pilot, await _failed_run_in_runs_screen(pilot, app)


async def test_the_last_line_of_a_long_failed_run_is_visible_while_following():
    async with _failed_run_shown() as (app, pilot, view):
        assert not view.wrap and view.follow
        assert "RuntimeError: the very last line" in screen_text(app)
        assert "FOLLOW end" in screen_text(app)


async def test_page_down_moves_down_and_g_goes_back_to_the_end():
    async with _failed_run_shown() as (app, pilot, view):
        view.lines_widget.focus()
        await pilot.press("g")
        await wait_until(pilot, lambda: _texts(view)[:1] == ["step 000 " + "x" * 150], "start")
        assert "RuntimeError" not in screen_text(app)
        await pilot.press("pagedown")
        await wait_until(pilot, lambda: not _texts(view)[0].startswith("step 000"), "moved")
        top = int(_texts(view)[0].split()[1])
        assert top == view.lines_widget.size.height - 1  # one page, the last row kept
        assert "PAUSED" in screen_text(app) and "PAUSED 0%" not in screen_text(app)
        await pilot.press("G")
        await wait_until(pilot, lambda: view.follow, "following again")
        await pilot.pause()
        assert "RuntimeError: the very last line" in screen_text(app)
        assert "FOLLOW end" in screen_text(app)


async def test_g_while_following_shows_the_end_again():
    async with _failed_run_shown() as (app, pilot, view):
        view.lines_widget.focus()
        view.window = view.window[:3]  # as if the view had drifted from the end
        await pilot.press("G")
        await wait_until(pilot, lambda: "RuntimeError" in " ".join(_texts(view)), "end again")
        assert "RuntimeError: the very last line" in screen_text(app)
