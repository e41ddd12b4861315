"""Badges, states and roles take their colours from the current theme, and a theme switch
recolours them without a restart."""

from __future__ import annotations

import pytest
from pilot_tools import EXAMPLE_DATA, settle, settle_until, wait_until
from rich.style import Style
from textual.color import Color
from textual.widgets import DataTable, Static

from tunedeck.core.jobs import JobRegistry
from tunedeck.core.jobs.model import Job, JobState
from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.palette import ROLES, Palette
from tunedeck.tui.theming import load_theme_file, load_themes

SHIPPED = ("tunedeck-dark", "tunedeck-light", "tunedeck-contrast")


def _colour(style) -> str:
    """The foreground of a Rich style (or style string) as #RRGGBB."""
    style = Style.parse(style) if isinstance(style, str) else style
    return style.color.get_truecolor().hex.upper()


def _theme_colour(app, variable: str) -> str:
    return Color.parse(app.theme_variables[variable]).hex6


def _badge_colour(app, name: str) -> str:
    cell = app.screen.query_one("#datasets-table", DataTable).get_cell(name, "badge")
    return _colour(cell.style)


def _foregrounds(content) -> set[str]:
    """The text colours a Static's content uses."""
    return {span.style.foreground.hex6 for span in content.spans if span.style.foreground}


async def test_a_theme_switch_recolours_the_dataset_badges_and_the_spec_pane():
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert app.screen.reports["demo_alpaca"].status == "ok"
        seen = set()
        for theme in ("tunedeck-dark", "tunedeck-light", "tunedeck-contrast"):
            app.theme = theme
            success = app.get_theme(theme).to_color_system().generate()["success"]
            await settle_until(
                pilot,
                lambda success=success: _badge_colour(app, "demo_alpaca") == success,
                f"{theme}: the ok badge in the theme's success colour",
            )
            assert _theme_colour(app, "success") == success
            spec = app.screen.query_one("#spec-text", Static).visual
            assert success in _foregrounds(spec), f"{theme}: the spec pane's status colour"
            row = app.screen.query_one("#row-text", Static).visual
            assert _theme_colour(app, "primary") in _foregrounds(row), f"{theme}: user turn"
            seen.add(success)
        assert len(seen) == 3, "the three themes have three success colours"


def test_every_role_has_a_colour_in_every_shipped_theme():
    themes = {theme.name: theme for theme in load_themes()[0]}
    for name in SHIPPED:
        palette = Palette.of_theme(themes[name])
        for role in ROLES:
            assert palette.colour(role).startswith("#") and len(palette.colour(role)) == 7
        assert palette.colour("failed") == Color.parse(palette.variables["error"]).hex6
    assert Palette.of_theme(themes["tunedeck-contrast"]).colour("system") == "#FF00FF"


def test_a_theme_variable_named_after_a_role_overrides_its_base_colour():
    palette = Palette({"background": "#000000", "secondary": "#FFFFFF", "role-system": "#FF00FF"})
    assert palette.colour("system") == "#FF00FF"
    assert palette.style("system", "bold") == "bold #FF00FF"


def test_a_theme_file_with_a_role_colour_textual_cannot_parse_is_refused(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nprimary: '#ff8800'\nvariables:\n  state-failed: redish\n")
    with pytest.raises(ValueError, match="state-failed"):
        load_theme_file(path)
    path.write_text("name: mine\nprimary: '#ff8800'\nvariables:\n  state-failed: '#ff0000'\n")
    assert Palette.of_theme(load_theme_file(path)).colour("failed") == "#FF0000"


async def test_a_theme_switch_recolours_the_launch_check():
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("4")
        await settle_until(
            pilot,
            lambda: app.current_mode == "launch" and app.screen.check is not None,
            "the launch form checked",
        )
        problems = app.screen.query_one("#launch-problems", Static)
        for theme in ("tunedeck-light", "tunedeck-contrast", "tunedeck-dark"):
            app.theme = theme
            palette = Palette.of_theme(app.get_theme(theme))
            outcomes = {palette.colour(role) for role in ("ok", "warning", "error")}
            await settle_until(
                pilot,
                lambda outcomes=outcomes: set() < _foregrounds(problems.visual) <= outcomes,
                f"{theme}: the check in the theme's outcome colours",
            )


async def test_a_theme_switch_recolours_the_job_states_in_the_runs_table():
    registry = JobRegistry()
    for number, state in enumerate((JobState.SUCCEEDED, JobState.FAILED)):
        registry.put(Job(id=f"job{number}", name="run", argv=("true",), state=state))
    registry.close()
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("3")
        await wait_until(pilot, lambda: len(getattr(app.screen, "jobs", ())) == 2, "both runs")
        table = app.screen.query_one("#jobs-table", DataTable)
        for theme in ("tunedeck-light", "tunedeck-contrast", "tunedeck-dark"):
            app.theme = theme
            palette = Palette.of_theme(app.get_theme(theme))
            expected = (palette.colour("succeeded"), palette.colour("failed"))
            await wait_until(
                pilot,
                lambda expected=expected: _state_colours(table) == expected,
                f"{theme}: succeeded and failed in the theme's colours",
            )


def _state_colours(table) -> tuple[str, ...]:
    """The colours of the state cells of job0 and job1."""
    return tuple(_colour(table.get_cell(key, "state").style) for key in ("job0", "job1"))
