"""The tunedeck Textual app: five screens over the core, switched with 1-5 or the palette."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.theme import Theme

from tunedeck.core.text import inert
from tunedeck.themes import THEMES_DIR
from tunedeck.tui.messages import JobStateChanged, JobSubmitted, PreviewDataset, SelectJob
from tunedeck.tui.screens.order import SCREENS_IN_ORDER
from tunedeck.tui.settings import DEFAULT_THEME, load_settings, save_theme
from tunedeck.tui.theming import load_themes

JOB_WATCH_SECONDS = 2.0
WATCHED_RECENT = 100  # the newest runs the watcher reads, plus every one it last saw unfinished


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
        """Notice runs that end, whichever screen is shown (the registry is a local file)."""
        try:
            from tunedeck.core.jobs import JobRegistry

            registry = JobRegistry()
            try:
                jobs = self._watched(registry)
            finally:
                registry.close()
        except Exception:  # no registry yet, or jobs unavailable: nothing to announce
            return
        states = {job.id: job.state.value for job in jobs}
        previous, self._job_states = self._job_states, states
        if previous is None:
            return
        for job in jobs:
            before = previous.get(job.id)
            if before != job.state.value and job.state.is_final:
                self.post_message(JobStateChanged(job.id, job.name, job.state.value))

    def _watched(self, registry) -> list:
        """The newest runs and those seen unfinished last time: not every row of the registry."""
        jobs, _ = registry.recent(WATCHED_RECENT)
        listed = {job.id for job in jobs}
        for job_id, state in (self._job_states or {}).items():
            if job_id not in listed and state in ("queued", "running"):
                job = registry.get(job_id)
                if job is not None:
                    jobs.append(job)
        return jobs

    @on(JobStateChanged)
    def _job_finished(self, message: JobStateChanged) -> None:
        severity = {"succeeded": "information", "cancelled": "warning"}.get(message.state, "error")
        self.notify(
            inert(f"{message.name} ({message.job_id}) {message.state}"),
            markup=False,
            title="Run finished",
            severity=severity,
            timeout=10,
        )

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
