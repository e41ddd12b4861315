"""Notices: a run that ends or stalls while the app is open but not looked at is announced with a
notification, the terminal bell and (where wanted) an OSC 9 desktop notification; the run being
looked at is not announced; each can be turned off in [tui.notices]."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from pilot_tools import EXAMPLE_DATA, Posted, settle, wait_until
from textual.notifications import Notify

from tunedeck.core.jobs.local import LocalBackend
from tunedeck.core.jobs.watched_folders import watch_file
from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.messages import RunNoticed
from tunedeck.tui.notices import BELL, desktop_supported, osc9
from tunedeck.tui.settings import config_path, load_settings


def running_run(root: Path, name: str):
    """A watched llamafactory-format run, halfway and still being written."""
    folder = root / name
    folder.mkdir(parents=True)
    line = {"current_steps": 5, "total_steps": 10, "loss": 1.0, "percentage": 50.0}
    (folder / "trainer_log.jsonl").write_text(json.dumps(line) + "\n")
    return LocalBackend().add_watched(str(folder), name=name), folder


def finish(folder: Path) -> None:
    (folder / "all_results.json").write_text('{"train_loss": 0.9}')


def notices_of(posted: Posted, job_id: str) -> list[RunNoticed]:
    return [m for m in posted.of(RunNoticed) if m.job_id == job_id]


def popups(posted: Posted) -> list[tuple[str, str]]:
    return [(str(m.notification.title), str(m.notification.message)) for m in posted.of(Notify)]


async def watcher_saw(pilot, app, *jobs) -> None:
    """Until the app's watcher has seen each run unfinished (its baseline for a change)."""
    await wait_until(
        pilot,
        lambda: all((app._job_states or {}).get(job.id) == "running" for job in jobs),
        "the watcher's first look",
    )


@pytest.mark.slow
async def test_a_run_ending_out_of_sight_rings_and_notifies_but_the_one_looked_at_does_not(
    tmp_path,
):
    looked_at, looked_folder = running_run(tmp_path, "looked-at")
    elsewhere, elsewhere_folder = running_run(tmp_path, "elsewhere")
    posted = Posted()
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(140, 40), message_hook=posted) as pilot:
        await pilot.press("3")
        await wait_until(pilot, lambda: app.current_mode == "runs", "runs screen")
        runs = app.screen
        await wait_until(pilot, lambda: looked_at.id in runs.jobs, "the runs listed")
        runs.select_job(looked_at.id)
        await wait_until(pilot, lambda: runs.selected == looked_at.id, "one run selected")
        await watcher_saw(pilot, app, looked_at, elsewhere)

        finish(looked_folder)
        finish(elsewhere_folder)
        await wait_until(pilot, lambda: notices_of(posted, elsewhere.id), "the notice")
        await settle(pilot)
        [notice] = notices_of(posted, elsewhere.id)
        assert (notice.state, notice.popup) == ("succeeded", True)
        assert notice.sent.startswith(BELL)
        assert ("Run finished", f"elsewhere ({elsewhere.id}) succeeded") in popups(posted)
        assert app._job_states[looked_at.id] == "succeeded"  # it ended too, in plain sight
        assert notices_of(posted, looked_at.id) == []
        assert not any(looked_at.id in message for _, message in popups(posted))


@pytest.mark.slow
async def test_a_run_going_stale_on_another_screen_is_announced_as_stalled(tmp_path):
    watch_file().parent.mkdir(parents=True, exist_ok=True)
    watch_file().write_text("stale_after = 60\n")
    job, folder = running_run(tmp_path, "quiet")
    posted = Posted()
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(140, 40), message_hook=posted) as pilot:
        await watcher_saw(pilot, app, job)
        assert app.current_mode == "datasets"
        then = time.time() - 61
        for path in (folder / "trainer_log.jsonl", folder):
            os.utime(path, (then, then))
        await wait_until(pilot, lambda: notices_of(posted, job.id), "the stall notice")
        [notice] = notices_of(posted, job.id)
        assert notice.state == "stale" and notice.sent == BELL
        assert ("Run stalled", f"quiet ({job.id}) stale") in popups(posted)


@pytest.mark.slow
async def test_notice_settings_turn_the_popup_and_bell_off_and_the_desktop_notice_on(tmp_path):
    config_path().parent.mkdir(parents=True, exist_ok=True)
    config_path().write_text('[tui.notices]\npopup = false\nbell = false\ndesktop = "on"\n')
    job, folder = running_run(tmp_path, "run\x1b]0;owned\x07")  # a hostile name
    posted = Posted()
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(140, 40), message_hook=posted) as pilot:
        await watcher_saw(pilot, app, job)
        finish(folder)
        await wait_until(pilot, lambda: notices_of(posted, job.id), "the notice")
        [notice] = notices_of(posted, job.id)
        assert notice.popup is False
        assert notice.sent == f"\x1b]9;tunedeck: run\\x1b]0,owned\\x07 ({job.id}) succeeded\a"
        assert not [title for title, _ in popups(posted) if title == "Run finished"]


def test_osc9_is_wrapped_for_tmux_and_known_terminals_get_it_on_auto():
    assert osc9("done", {"TMUX": "/tmp/tmux-0/default,1,0"}) == "\x1bPtmux;\x1b\x1b]9;done\a\x1b\\"
    assert desktop_supported({"TERM_PROGRAM": "WezTerm"})
    assert desktop_supported({"TERM": "xterm-kitty"})
    assert not desktop_supported({"TERM": "xterm-256color"})


def test_notice_settings_keep_their_defaults_for_values_of_the_wrong_kind():
    config_path().parent.mkdir(parents=True, exist_ok=True)
    config_path().write_text('[tui.notices]\npopup = "yes"\nbell = false\ndesktop = "loud"\n')
    notices = load_settings().notices
    assert (notices.popup, notices.bell, notices.desktop) == (True, False, "auto")
