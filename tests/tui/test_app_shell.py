"""The app shell: screen switching, keys help, command palette, themes and their persistence."""

from __future__ import annotations

from pathlib import Path

import pytest
from pilot_tools import EXAMPLE_DATA, Posted, settle

from tunedeck.core.locations import config_dir
from tunedeck.tui.app import SCREENS_IN_ORDER, TunedeckApp
from tunedeck.tui.messages import JobSubmitted, PreviewDataset, SelectJob
from tunedeck.tui.settings import _set_key, load_settings, save_theme


async def test_number_keys_switch_between_the_five_screens():
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(80, 24)) as pilot:
        for number, (mode, _title) in enumerate(SCREENS_IN_ORDER, start=1):
            await pilot.press(str(number))
            await settle(pilot)
            assert app.current_mode == mode
            assert type(app.screen).__name__.lower().startswith(mode)
        await pilot.press("1")
        await settle(pilot)
        assert app.current_mode == "datasets"


async def test_a_submitted_job_is_handed_to_the_runs_screen_by_message():
    posted = Posted()
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(80, 24), message_hook=posted) as pilot:
        await settle(pilot)
        app.post_message(JobSubmitted("job-handed-over"))
        await settle(pilot)
        assert app.current_mode == "runs"
        select = posted.last(SelectJob)
        assert select.job_id == "job-handed-over"
        assert not hasattr(app, "pending_job")


async def test_a_preview_request_reaches_the_preview_screen_and_stops_there():
    posted = Posted()
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(80, 24), message_hook=posted) as pilot:
        await settle(pilot)
        app.screen.post_message(PreviewDataset("demo_kto"))
        await settle(pilot)
        assert app.current_mode == "preview"
        assert app.screen.query_one("#preview-dataset").value == "demo_kto"
        assert len(posted.of(PreviewDataset)) == 3  # up to the app, the app's one to Preview
        assert not hasattr(app, "pending_preview")


async def test_question_mark_toggles_the_keys_panel():
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("question_mark")
        await settle(pilot)
        assert app.screen.query("HelpPanel"), "keys panel shown"
        await pilot.press("question_mark")
        await settle(pilot)
        assert not app.screen.query("HelpPanel"), "keys panel hidden"


async def test_command_palette_lists_every_screen():
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(120, 40)):
        titles = [command.title for command in app.get_system_commands(app.screen)]
        for _mode, title in SCREENS_IN_ORDER:
            assert f"Screen: {title}" in titles
        assert "Theme" in titles


async def test_every_binding_has_an_id_and_a_description():
    from importlib import import_module

    classes = [TunedeckApp]
    for mode, _title in SCREENS_IN_ORDER:
        classes.append(import_module(f"tunedeck.tui.screens.{mode}").SCREEN)
    from tunedeck.tui.widgets.log_view import LogView

    classes.append(LogView)
    for cls in classes:
        for binding in cls.BINDINGS:
            assert binding.id, f"{cls.__name__} {binding.key} has no id"
            assert binding.description, f"{cls.__name__} {binding.key} has no description"


async def test_three_shipped_themes_and_the_choice_persists():
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(80, 24)) as pilot:
        for name in ("tunedeck-dark", "tunedeck-light", "tunedeck-contrast"):
            assert name in app.available_themes
        assert app.theme == "tunedeck-dark"
        app.theme = "tunedeck-light"
        path = config_dir() / "config.toml"
        await settle(pilot, "settings")
        assert path.exists() and "tunedeck-light" in path.read_text(), "theme saved"
    again = TunedeckApp(EXAMPLE_DATA)
    async with again.run_test(size=(80, 24)):
        assert again.theme == "tunedeck-light"


async def test_a_user_theme_file_is_loaded_and_a_broken_one_is_reported():
    themes = config_dir() / "themes"
    themes.mkdir(parents=True)
    (themes / "mine.yaml").write_text("name: mine\nprimary: '#ff8800'\ndark: true\n")
    (themes / "broken.yaml").write_text("name: broken\nprimray: '#ff8800'\n")
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(80, 24)):
        assert "mine" in app.available_themes
        assert "broken" not in app.available_themes
        assert any(
            "broken.yaml" in problem and "primray" in problem for problem in app.theme_problems
        )


def test_saving_the_theme_keeps_the_rest_of_the_config_file(tmp_path: Path):
    path = tmp_path / "config.toml"
    path.write_text('# mine\n[hosts]\ndefault = "gpu1"\n\n[tui]\ntheme = "old"\nother = 1\n')
    save_theme("tunedeck-contrast", path)
    text = path.read_text()
    assert '[hosts]\ndefault = "gpu1"' in text and "other = 1" in text and "# mine" in text
    assert load_settings(path).theme == "tunedeck-contrast"
    assert _set_key("", "tui", "theme", 'a"b') == '[tui]\ntheme = "a\\"b"\n'


def test_open_app_defaults_to_the_data_folder_in_the_working_directory(monkeypatch, tmp_path):
    from tunedeck.tui.commands import tui

    opened = []
    monkeypatch.setattr(TunedeckApp, "run", lambda self: opened.append(self.data_dir))
    tui.open_app(None)
    tui.open_app(tmp_path)
    assert opened == [Path("data"), tmp_path]


@pytest.mark.parametrize("theme", ["tunedeck-dark", "tunedeck-light", "tunedeck-contrast"])
def test_shipped_themes_parse_into_colour_systems(theme):
    from tunedeck.tui.theming import load_themes

    themes, problems = load_themes()
    assert not problems
    by_name = {t.name: t for t in themes}
    assert by_name[theme].to_color_system() is not None


async def test_keys_are_rebound_by_id_from_the_config_file():
    path = config_dir() / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('[tui]\ntheme = "tunedeck-contrast"\n\n[tui.keys]\n"app.keys" = "f1"\n')
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(120, 40)) as pilot:
        assert app.theme == "tunedeck-contrast"
        await pilot.press("f1")
        await settle(pilot)
        assert app.screen.query("HelpPanel"), "keys panel via f1"
