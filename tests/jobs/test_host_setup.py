"""`tunedeck hosts setup` on a fresh account over the loopback sshd: a real install, no mocks."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import sshd_server
from jobs_helpers import cli, on_host

from tunedeck.core import __version__
from tunedeck.core.jobs.hosts import Host, add_host, load_hosts
from tunedeck.core.jobs.setup import (
    NoPythonError,
    NoSpaceError,
    NoWheelError,
    RemotePython,
    SetupOptions,
    SetupRun,
    cuda_version,
    local_wheel,
    setup_host,
    split_torch_spec,
    torch_tag,
)

sshd = sshd_server.sshd
fresh_account = sshd_server.fresh_account
fresh_host = sshd_server.fresh_host

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="session")
def wheel_cache(tmp_path_factory) -> Path:
    """One local wheel cache (tunedeck wheel, wheelhouses) for the whole session."""
    return tmp_path_factory.mktemp("wheel-cache")


@pytest.fixture(scope="session")
def tunedeck_wheel(wheel_cache) -> Path:
    """This tree's wheel, built once: every setup in the session installs the same one."""
    return local_wheel(wheel_cache)


@pytest.fixture(autouse=True)
def shared_wheel_cache(wheel_cache, monkeypatch):
    monkeypatch.setenv("TUNEDECK_WHEEL_CACHE", str(wheel_cache))


@pytest.fixture
def setup(tunedeck_wheel):
    """`tunedeck hosts setup ARGS` with the session's wheel (the tree may change under us)."""

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        argv = ("hosts", "setup", *args, "--wheel", str(tunedeck_wheel))
        return cli(*argv, check=check, timeout=900)

    return run


def venv_of(host: Host) -> str:
    return f"{host.env['TUNEDECK_HOME']}/venv"


# -- the torch build for a driver ---------------------------------------------------------------


def test_cuda_version_is_read_from_the_nvidia_smi_header():
    header = "| NVIDIA-SMI 570.86.15   Driver Version: 570.86.15   CUDA Version: 12.8     |"
    assert cuda_version(header) == (12, 8)
    assert cuda_version("NVIDIA-SMI has failed") is None


@pytest.mark.parametrize(
    ("cuda", "tag"),
    [
        (None, "cpu"),
        ((12, 8), "cu128"),
        ((12, 9), "cu129"),
        ((12, 7), "cu126"),
        ((12, 2), "cu121"),
        ((11, 8), "cu118"),
        ((11, 4), "cpu"),
        ((13, 1), "cu130"),
    ],
)
def test_torch_tag_is_the_newest_build_the_driver_runs(cuda, tag):
    assert torch_tag(cuda) == tag


def test_torch_spec_is_a_tag_a_requirement_or_both():
    assert split_torch_spec("cu128") == ("cu128", "torch")
    assert split_torch_spec("torch==2.6.0") == (None, "torch==2.6.0")
    assert split_torch_spec("cu126:torch==2.6.0") == ("cu126", "torch==2.6.0")


def test_platform_tags_follow_the_host_glibc():
    python = RemotePython("/usr/bin/python3", (3, 11), "x86_64", ("glibc", "2.36"), "/home/u")
    platforms = python.platforms()
    assert platforms[0] == "manylinux_2_36_x86_64"
    assert "manylinux_2_17_x86_64" in platforms and "manylinux2014_x86_64" in platforms
    assert platforms[-1] == "linux_x86_64" and python.tag == "cp311"


# -- on a fresh account -------------------------------------------------------------------------


def test_setup_installs_tunedeck_records_the_command_and_a_rerun_changes_nothing(setup, fresh_host):
    assert cli("hosts", "check", "fresh", check=False).returncode != 0  # nothing there yet

    done = setup("fresh", "--extras", "")

    command = f"{venv_of(fresh_host)}/bin/tunedeck"
    assert load_hosts()["fresh"].command == command
    assert "set up: tunedeck" in done.stdout and "from index" in done.stdout
    assert "setup: creating the venv" in done.stderr  # progress on stderr
    out = cli("hosts", "check", "fresh").stdout
    assert f"tunedeck {__version__}" in out
    assert on_host(fresh_host, command, "--help").returncode == 0

    again = setup("fresh", "--extras", "")
    assert f"already set up: tunedeck {__version__} in {venv_of(fresh_host)}" in again.stdout
    assert "creating the venv" not in again.stderr and "installing" not in again.stderr
    doc = json.loads(setup("fresh", "--extras", "", "--json").stdout)
    assert doc["changed"] is False and doc["command"] == command and doc["source"] == ""


def test_offline_setup_installs_from_pushed_wheels(setup, fresh_host, tunedeck_home):
    done = setup("fresh", "--extras", "", "--offline")

    assert "from pushed wheels" in done.stdout
    assert re.search(r"setup: sending wheels [\d.]+ [KMG]?B/[\d.]+ [KMG]?B", done.stderr)
    log = (tunedeck_home / "state" / "setup" / "fresh.log").read_text()
    assert "--no-index" in log and "pip index versions" not in log
    listed = on_host(fresh_host, "ls", f"{venv_of(fresh_host)}/wheelhouse").stdout.split()
    assert any(name.startswith("tunedeck-") for name in listed)
    assert any(name.startswith("pyarrow-") for name in listed)
    assert f"tunedeck {__version__}" in cli("hosts", "check", "fresh").stdout


def test_a_read_only_data_dir_is_a_located_error(setup, fresh_host, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)  # owned by us: the fresh account cannot write in it
    tmp_path.chmod(0o755)
    add_host(Host(**{**fresh_host.to_dict(), "env": {"TUNEDECK_HOME": str(locked / "td")}}))

    done = setup("fresh", "--extras", "", check=False)

    assert done.returncode == 1
    assert f"fresh:{locked}/td" in done.stderr
    assert "cannot write the tunedeck data dir" in done.stderr
    assert load_hosts()["fresh"].command == "tunedeck"  # nothing recorded


def test_no_python_on_the_path_is_the_no_python_error(setup, fresh_host):
    env = {**fresh_host.env, "PATH": "/nonexistent"}
    add_host(Host(**{**fresh_host.to_dict(), "env": env}))

    done = setup("fresh", "--extras", "", check=False)

    assert done.returncode == 1
    assert "no Python >= 3.10 on the host" in done.stderr
    with pytest.raises(NoPythonError) as caught:
        setup_host(load_hosts()["fresh"], SetupOptions(extras=()))
    assert str(caught.value.location) == "fresh:PATH"


def test_an_interrupted_setup_carries_on_without_making_the_venv_again(setup, fresh_host):
    setup("fresh", "--extras", "")
    venv = venv_of(fresh_host)
    # What a connection dropped after the venv was made leaves: a venv, no finished install.
    on_host(fresh_host, f"{venv}/bin/python", "-m", "pip", "uninstall", "-y", "-q", "tunedeck")
    on_host(fresh_host, "rm", f"{venv}/tunedeck-setup.json")

    done = setup("fresh", "--extras", "")

    assert "set up: tunedeck" in done.stdout and "already" not in done.stdout
    log = Path(done.stdout.split("log: ")[1].strip()).read_text()
    assert log.rsplit("== setup", 1)[1].count(f"venv {venv} is there") == 1
    assert f"tunedeck {__version__}" in cli("hosts", "check", "fresh").stdout


def test_no_wheel_for_the_platform_names_the_package_and_the_platform(tunedeck_wheel):
    python = RemotePython("/usr/bin/python3", (3, 11), "sparc64", ("glibc", "2.36"), "/home/u")
    run = SetupRun(Host("far", "far"), SetupOptions(extras=()), lambda progress: None)
    try:
        with pytest.raises(NoWheelError) as caught:
            run.wheelhouse(python, tunedeck_wheel)
    finally:
        run.log.close()
    message = str(caught.value)
    assert "no wheel of" in message and "cp311-manylinux_2_36_sparc64" in message
    assert re.search(r"no wheel of (pyarrow|orjson|watchfiles|pyyaml)", message, re.I)


def test_too_little_disk_for_the_install_is_a_located_error(fresh_host):
    venv = venv_of(fresh_host)
    run = SetupRun(fresh_host, SetupOptions(extras=()), lambda progress: None)
    try:
        run.check_space(venv, 1 << 20)  # a megabyte fits
        with pytest.raises(NoSpaceError) as caught:
            run.check_space(venv, 1 << 60)  # an exabyte does not
    finally:
        run.log.close()
    assert str(caught.value.location) == f"fresh:{fresh_host.env['TUNEDECK_HOME']}"
    assert "the install needs about" in caught.value.message


# -- the Hosts screen --------------------------------------------------------------------------


def test_s_on_the_hosts_screen_sets_the_selected_host_up_with_a_progress_bar(
    tunedeck_wheel, fresh_host
):
    from textual.widgets import DataTable, ProgressBar, Static

    from tunedeck.tui.app import TunedeckApp
    from tunedeck.tui.messages import HostProbed
    from tunedeck.tui.screens.hosts import SetupFinished, SetupProgressed

    posted = []
    examples = Path(__file__).resolve().parents[2] / "examples" / "workspace" / "data"

    async def wait(pilot, predicate, what: str, limit: float = 600.0) -> None:
        waited = 0.0
        while not predicate():
            assert waited < limit, f"the app never reached: {what}"
            await pilot.pause(0.1)
            waited += 0.1

    async def scenario() -> None:
        app = TunedeckApp(examples)
        async with app.run_test(size=(140, 40), message_hook=posted.append) as pilot:
            await pilot.press("5")
            await wait(pilot, lambda: app.current_mode == "hosts", "the hosts screen")
            table = app.screen.query_one("#hosts-table", DataTable)
            await wait(pilot, lambda: "fresh" in table.rows, "the fresh host listed")
            table.move_cursor(row=table.get_row_index("fresh"))
            await wait(pilot, lambda: app.screen.selected == "fresh", "the fresh host selected")
            app.screen.setup_options = SetupOptions(extras=(), wheel=tunedeck_wheel)
            await pilot.press("s")
            finished = lambda: [m for m in posted if isinstance(m, SetupFinished)]  # noqa: E731
            await wait(pilot, finished, "the setup finished")
            probed = lambda: [  # noqa: E731
                m for m in posted if isinstance(m, HostProbed) and m.probe.name == "fresh"
            ]
            await wait(pilot, lambda: probed() and probed()[-1].probe.reachable, "a probe")
            message = finished()[-1]
            assert message.error is None and message.result.changed
            assert any(isinstance(m, SetupProgressed) for m in posted)
            bar = app.screen.query_one("#setup-bar", ProgressBar)
            assert bar.total and bar.progress == bar.total
            line = str(app.screen.query_one("#setup-line", Static).render())
            assert f"fresh: set up: tunedeck {__version__}" in line

    import asyncio

    asyncio.run(scenario())
    assert load_hosts()["fresh"].command == f"{venv_of(fresh_host)}/bin/tunedeck"
