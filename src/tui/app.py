"""The tunedeck Textual app: five screens over the core, switched with 1-5 or the palette."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

from textual import on, work
from textual.app import App, ScreenStackError, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.theme import Theme

from tunedeck.core.text import inert
from tunedeck.themes import THEMES_DIR
from tunedeck.tui.messages import (
    JobStateChanged,
    JobSubmitted,
    PreviewDataset,
    RunNoticed,
    SelectJob,
)
from tunedeck.tui.notices import BELL, osc9, wants_desktop
from tunedeck.tui.screens.order import SCREENS_IN_ORDER
from tunedeck.tui.settings import DEFAULT_THEME, load_settings, save_theme
from tunedeck.tui.theming import load_themes

JOB_WATCH_SECONDS = 2.0
WATCHED_RECENT = 100  # the newest runs the watcher reads, plus every one it last saw unfinished
REMOTE_WATCH_SECONDS = 5.0  # a remote host is asked for its runs' states at most this often
UNFINISHED = ("queued", "running", "stale")
NOTICE_TITLES = {"stale": "Run stalled"}


def _screen_factory(mode: str) -> Callable[[], Screen]:
    """Import a screen module only when its screen is first shown (fast start)."""

    def build() -> Screen:
        from importlib import import_module

        module = import_module(f"tunedeck.tui.screens.{mode}")
        return module.SCREEN()

    return build


class TunedeckApp(App[None]):
    """A keyboard-first cockpit: datasets, prompt preview, runs, launch and hosts."""

    CSS_PATH = THEMES_DIR / "app.tcss"
    TITLE = "tunedeck"
    MODES = {mode: _screen_factory(mode) for mode, _ in SCREENS_IN_ORDER}
    BINDINGS = [
        *(
            Binding(str(i), f"show_screen('{mode}')", title, show=False, id=f"screen.{mode}")
            for i, (mode, title) in enumerate(SCREENS_IN_ORDER, start=1)
        ),
        Binding("question_mark", "toggle_keys", "Keys", key_display="?", id="app.keys"),
        Binding("ctrl+t", "change_theme", "Theme", show=False, id="app.theme"),
        Binding("q", "quit", "Quit", id="app.quit"),
    ]

    def __init__(self, data_dir: Path | None = None, *, watch_css: bool = False):
        super().__init__(watch_css=watch_css)
        self.data_dir = Path(data_dir) if data_dir is not None else Path("data")
        self.settings = load_settings()
        self.theme_problems: list[str] = []
        self._job_states: dict[str, str] | None = None
        self._job_pool = None  # made by the watcher on its first round (core, no textual)
        self._discovery = None
        themes, problems = load_themes()
        for theme in themes:
            self.register_theme(theme)
        self.theme_problems = [f"{p.path.name}: {p.reason}" for p in problems]
        self.theme = self._initial_theme(themes)
        if self.settings.keymap:
            self.set_keymap(self.settings.keymap)

    def _initial_theme(self, themes: list[Theme]) -> str:
        for name in (self.settings.theme, DEFAULT_THEME):
            if name in self.available_themes:
                return name
        return themes[0].name if themes else "textual-dark"

    def on_mount(self) -> None:
        self.switch_mode("datasets")
        self.set_interval(JOB_WATCH_SECONDS, self._watch_jobs)
        self.theme_changed_signal.subscribe(self, self._remember_theme)
        for problem in self.theme_problems:
            self.notify(inert(problem), title="Theme skipped", severity="warning", markup=False)
        # Start-up objects (modules, widgets, styles) live as long as the app: keep them out of
        # the collector's full passes, which otherwise stall the event loop for tens of ms.
        gc.freeze()

    def on_unmount(self) -> None:
        if self._job_pool is not None:
            self._job_pool.close()

    def action_show_screen(self, mode: str) -> None:
        """Switch to one of the five screens."""
        if self.current_mode != mode:
            self.switch_mode(mode)

    def hand_over(self, mode: str, message: Message) -> None:
        """Show screen `mode` and post `message` to it (it arrives after the screen mounts)."""
        self.action_show_screen(mode)
        message.stop()  # for that screen alone: it must not bubble back up to the app
        self.screen_stack[0].post_message(message)

    @on(PreviewDataset)
    def _preview_dataset(self, message: PreviewDataset) -> None:
        self.hand_over("preview", PreviewDataset(message.dataset))

    @work(thread=True, exclusive=True, group="job-watch")
    def _watch_jobs(self) -> None:
        """Notice runs that end or stall, whichever screen is shown: new runs in watched folders
        are added, and unfinished runs (watched, remote) are refreshed through the pool."""
        try:
            from tunedeck.core.jobs import JobRegistry

            pool, discovery = self._watch_tools()
            discovery.run()
            registry = JobRegistry()
            try:
                jobs = self._watched(registry)
            finally:
                registry.close()
            jobs = list(pool.refresh(jobs).jobs)
        except Exception:  # no registry yet, or jobs unavailable: nothing to announce
            return
        states = {job.id: job.state.value for job in jobs}
        previous, self._job_states = self._job_states, states
        if previous is None:
            return
        for job in jobs:
            before = previous.get(job.id)
            noticed = job.state.is_final or job.state.value == "stale"
            if before != job.state.value and noticed:
                self.post_message(JobStateChanged(job.id, job.name, job.state.value))

    def _watch_tools(self):
        """The watcher's pool and watched-folder discovery, made once."""
        if self._job_pool is None:
            from tunedeck.core.jobs.pool import BackendPool
            from tunedeck.core.jobs.watched_folders import Discovery

            self._job_pool = BackendPool(remote_every=REMOTE_WATCH_SECONDS)
            self._discovery = Discovery(self._job_pool)
        return self._job_pool, self._discovery

    def _watched(self, registry) -> list:
        """The newest runs and those seen unfinished last time: not every row of the registry."""
        jobs, _ = registry.recent(WATCHED_RECENT)
        listed = {job.id for job in jobs}
        for job_id, state in (self._job_states or {}).items():
            if job_id not in listed and state in UNFINISHED:
                job = registry.get(job_id)
                if job is not None:
                    jobs.append(job)
        return jobs

    @on(JobStateChanged)
    def _job_finished(self, message: JobStateChanged) -> None:
        """Announce a run that ended or stalled, unless it is the one being looked at."""
        if self.looking_at(message.job_id):
            return
        settings = self.settings.notices
        text = f"{message.name} ({message.job_id}) {message.state}"
        if settings.popup:
            severity = {"succeeded": "information", "cancelled": "warning", "stale": "warning"}
            self.notify(
                inert(text),
                markup=False,
                title=NOTICE_TITLES.get(message.state, "Run finished"),
                severity=severity.get(message.state, "error"),
                timeout=10,
            )
        sent = BELL if settings.bell else ""
        if wants_desktop(settings.desktop, os.environ):
            sent += osc9(f"tunedeck: {text}", os.environ)
        if sent:
            self._send_to_terminal(sent)
        self.post_message(RunNoticed(message.job_id, message.state, settings.popup, sent))

    def looking_at(self, job_id: str) -> bool:
        """Whether the user sees this run now: selected on the Runs screen, the terminal focused."""
        if not self.app_focus or self.current_mode != "runs":
            return False
        try:
            screen = self.screen
        except ScreenStackError:  # the app is closing: nothing is on screen
            return False
        return getattr(screen, "selected", None) == job_id

    def _send_to_terminal(self, sequence: str) -> None:
        """Write a bell or an OSC sequence to the terminal (nothing when headless)."""
        if self._driver is not None and not self.is_headless:
            self._driver.write(sequence)

    @on(JobSubmitted)
    def _job_submitted(self, message: JobSubmitted) -> None:
        self.hand_over("runs", SelectJob(message.job_id))

    def action_toggle_keys(self) -> None:
        """Show or hide the panel that lists every key of the focused screen."""
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for i, (mode, title) in enumerate(SCREENS_IN_ORDER, start=1):
            yield SystemCommand(
                f"Screen: {title}",
                f"Go to the {title} screen (key {i})",
                partial(self.action_show_screen, mode),
            )
        yield from super().get_system_commands(screen)

    def _remember_theme(self, theme: Theme) -> None:
        self._save_theme(theme.name)

    @work(thread=True, group="settings", exclusive=True)
    def _save_theme(self, name: str) -> None:
        save_theme(name)
