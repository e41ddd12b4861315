"""The command line shows hostile names, messages, env and logs inert: no markup, no control
sequences, no secret values (unless --show-env), and never a traceback."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tunedeck.core.jobs.model import Job, JobState, new_job_id
from tunedeck.core.jobs.registry import JobRegistry
from tunedeck.core.text import InertStream, has_controls, inert, inert_lines
from tunedeck.tui.cli import app

TITLE = "\x1b]0;pwned\x07"
CLEAR = "\x1b[2J\x1b[H"
OSC52 = "\x1b]52;c;ZXZpbCBjbGlwYm9hcmQ=\x07"
C1_CSI = "\x9b31m"
SECRET = "hf_Zq8secretTOKENvalue"


def tunedeck(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess, output as bytes (nothing decoded away)."""
    done = subprocess.run(
        [sys.executable, "-m", "tunedeck.tui", *args], capture_output=True, timeout=120
    )
    if check:
        assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done


def on_a_terminal(*args: str) -> bytes:
    """What `tunedeck ARGS` writes to stdout when stdout is a terminal (a real pty)."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "tunedeck.tui", *args],
        stdout=follower,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "200"},
    )
    os.close(follower)
    output = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            break
        try:
            data = os.read(leader, 65536)
        except OSError:  # the follower side closed: the process is done writing
            break
        if not data:
            break
        output += data
    os.close(leader)
    assert process.wait(timeout=60) == 0
    return output


def finished_job(tmp_path: Path, log: bytes = b"", **fields) -> Job:
    """A succeeded job in this test's registry, with `log` as its log file."""
    job_id = new_job_id()
    log_path = tmp_path / f"{job_id}.log"
    log_path.write_bytes(log)
    defaults = dict(
        id=job_id,
        name="job",
        argv=("true",),
        state=JobState.SUCCEEDED,
        exit_code=0,
        log_path=str(log_path),
        ended_at=time.time(),
    )
    registry = JobRegistry()
    try:
        return registry.put(Job(**{**defaults, **fields}))
    finally:
        registry.close()


def started(*args: str) -> str:
    """Start `tunedeck run ARGS` for real and wait until it has ended; return its id."""
    job_id = tunedeck("run", "-q", *args).stdout.decode().strip()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        doc = json.loads(tunedeck("runs", "show", job_id, "--json").stdout)
        if doc["state"] in ("succeeded", "failed"):
            return job_id
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not end")


# -- the core helper ----------------------------------------------------------------------


def test_inert_writes_every_control_character_visibly():
    assert inert(TITLE + "a\r\nb\t" + C1_CSI + "\x7f") == (
        "\\x1b]0;pwned\\x07a\\x0d\\x0ab\\x09\\x9b31m\\x7f"
    )
    assert inert("plain [red]text[/] ünïcode 名前") == "plain [red]text[/] ünïcode 名前"


def test_inert_lines_keeps_newlines_and_expands_tabs():
    assert inert_lines("a\tb\n" + CLEAR + "\r") == "a       b\n\\x1b[2J\\x1b[H\\x0d"
    assert not has_controls(inert_lines(OSC52 + "\n"))


def test_inert_stream_keeps_a_character_split_between_chunks():
    data = ("é" + OSC52 + "名").encode()
    stream = InertStream()
    pieces = [stream.feed(data[i : i + 1]) for i in range(len(data))] + [stream.finish()]
    assert b"".join(pieces).decode() == inert_lines("é" + OSC52 + "名")


# -- markup (item 2) ----------------------------------------------------------------------


def test_a_name_with_closing_markup_is_listed_and_shown_literally():
    broken = started("--name", "data[/path]", "--", "true")
    styled = started("--name", "[red]alert[/red]", "--", "true")
    listing = tunedeck("runs").stdout.decode()
    assert "data[/path]" in listing and "[red]alert[/red]" in listing
    assert "data[/path]" in tunedeck("runs", "show", broken).stdout.decode()
    assert "[red]alert[/red]" in tunedeck("runs", "show", styled).stdout.decode()


def test_an_error_quoting_markup_is_printed_plainly():
    done = tunedeck("runs", "show", "zz[/x]", check=False)
    assert done.returncode == 1
    assert b"error: no job matches 'zz[/x]'" in done.stderr
    assert b"Traceback" not in done.stderr


def test_a_styled_name_is_not_styled_on_a_terminal(tmp_path):
    finished_job(tmp_path, name="[bold red]loud[/bold red]")
    screen = on_a_terminal("runs")
    assert b"[bold red]loud[/bold red]" in screen
    assert b"\x1b[1;31m" not in screen


# -- control sequences (item 3) -----------------------------------------------------------


def test_escape_sequences_in_a_name_are_shown_not_obeyed():
    job_id = started("--name", f"{TITLE}{CLEAR}x", "--", "true")
    for args in (("runs",), ("runs", "show", job_id)):
        stdout = tunedeck(*args).stdout
        assert b"\x1b" not in stdout and b"\x07" not in stdout
        assert b"\\x1b]0;pwned\\x07\\x1b[2J\\x1b[Hx" in stdout


def test_runs_logs_on_a_terminal_escapes_control_sequences(tmp_path):
    log = f"step 1\n{OSC52}step 2\r{TITLE}\n".encode()
    job = finished_job(tmp_path, log=log)
    screen = on_a_terminal("runs", "logs", job.id)
    assert b"\x1b]52" not in screen and b"\x07" not in screen
    assert b"\\x1b]52;c;ZXZpbCBjbGlwYm9hcmQ=\\x07step 2\\x0d\\x1b]0;pwned\\x07" in screen
    assert OSC52.encode() in on_a_terminal("runs", "logs", job.id, "--raw")


def test_runs_logs_into_a_pipe_passes_the_bytes_unchanged_unless_escape(tmp_path):
    log = f"step 1\n{OSC52}\xff\n".encode("utf-8", "surrogateescape") + b"\xff\xfe\n"
    job = finished_job(tmp_path, log=log)
    assert tunedeck("runs", "logs", job.id).stdout == log
    escaped = tunedeck("runs", "logs", job.id, "--escape").stdout
    assert escaped.startswith(b"step 1\n\\x1b]52;c;") and b"\x1b" not in escaped


# -- secrets (item 4) ---------------------------------------------------------------------


def test_env_values_are_masked_in_every_output_unless_show_env():
    done = tunedeck("run", "--json", "-e", f"HF_TOKEN={SECRET}", "--", "true")
    assert SECRET.encode() not in done.stdout
    job_id = json.loads(done.stdout)["id"]
    outputs = [
        tunedeck("runs", "show", job_id).stdout,
        tunedeck("runs", "show", job_id, "--json").stdout,
        tunedeck("runs", "--json").stdout,
        tunedeck("runs", "list", "--json").stdout,
        tunedeck("runs").stdout,
    ]
    for stdout in outputs:
        assert SECRET.encode() not in stdout
    assert b"HF_TOKEN=***" in outputs[0]
    assert json.loads(outputs[1])["env"] == {"HF_TOKEN": "***"}
    assert json.loads(outputs[2])[0]["env"] == {"HF_TOKEN": "***"}
    assert SECRET.encode() in tunedeck("runs", "show", job_id, "--show-env").stdout
    revealed = json.loads(tunedeck("runs", "--json", "--show-env").stdout)
    assert revealed[0]["env"] == {"HF_TOKEN": SECRET}


def test_host_env_values_are_masked_in_hosts_json():
    tunedeck("hosts", "add", "gpu1", "me@gpu1", "-e", f"HF_TOKEN={SECRET}")
    assert SECRET.encode() not in tunedeck("hosts", "--json").stdout
    assert json.loads(tunedeck("hosts", "--json").stdout)[0]["env"] == {"HF_TOKEN": "***"}
    assert SECRET.encode() in tunedeck("hosts", "list", "--json", "--show-env").stdout


# -- fuzz ---------------------------------------------------------------------------------

HOSTILE_PIECES = st.sampled_from(
    ["[", "]", "[/x]", "[red]", "[/]", "\x1b", TITLE, CLEAR, OSC52, "\x07", "\r", "\x9b", "\x85"]
    + ["\x00", "\x7f", "\t", "\n", "\\", "é", "名"]
)
HOSTILE = st.lists(st.one_of(HOSTILE_PIECES, st.text(max_size=4)), max_size=6).map("".join)
HOSTILE_BYTES = st.lists(
    st.one_of(HOSTILE_PIECES.map(str.encode), st.binary(max_size=6)), max_size=8
).map(b"".join)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    name=HOSTILE,
    host=HOSTILE,
    message=HOSTILE,
    env=st.dictionaries(HOSTILE.filter(bool), HOSTILE, max_size=3),
    argv=st.lists(HOSTILE, min_size=1, max_size=3),
    log=HOSTILE_BYTES,
)
def test_hostile_jobs_never_crash_the_cli_nor_reach_the_terminal(
    tmp_path, name, host, message, env, argv, log
):
    env = {key: f"sekrit-{value}" for key, value in env.items()}
    job = finished_job(tmp_path, log=log, name=name, argv=tuple(argv), message=message, env=env)
    remote = finished_job(tmp_path, name=name, host=host or "h", message=message, env=env)
    runner = CliRunner()
    for args in (
        ["runs"],
        ["runs", "--json"],
        ["runs", "show", job.id],
        ["runs", "show", remote.id],
        ["runs", "show", job.id, "--json"],
        ["runs", "logs", job.id, "--escape"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output, result.exception)
        assert not has_controls(result.stdout), (args, result.stdout)
        assert "sekrit-" not in result.stdout, args


@settings(max_examples=60, deadline=None)
@given(name=HOSTILE, message=HOSTILE)
def test_printed_errors_quote_hostile_text_inert(name, message):
    from tunedeck.core.errors import JobError
    from tunedeck.tui.console import err, print_error

    with err.capture() as captured:
        print_error(JobError(f"no job matches '{name}'", hint=message))
    assert not has_controls(captured.get())


@pytest.mark.parametrize("text", [OSC52, TITLE + CLEAR, "\x9b2J", "a\x7f\x85"])
def test_json_output_escapes_every_control_character(tmp_path, text):
    job = finished_job(tmp_path, name=text, message=text)
    stdout = CliRunner().invoke(app, ["runs", "show", job.id, "--json"]).stdout
    assert not has_controls(stdout)
    assert json.loads(stdout)["name"] == text


def test_a_dataset_key_with_markup_is_shown_literally_by_the_data_commands(tmp_path):
    rows = [{"instruction": "hi", "input": "", "output": "yo"}]
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    key = f"ident[/x]{TITLE}"
    (tmp_path / "dataset_info.json").write_text(json.dumps({key: {"file_name": "rows.json"}}))
    shown = inert(key).encode()
    for args in (
        ("data", "validate", str(tmp_path)),
        ("data", "stats", key, "--dir", str(tmp_path)),
        ("data", "preview", key, "--dir", str(tmp_path), "--template", "default"),
    ):
        stdout = tunedeck(*args).stdout
        assert shown in stdout and b"\x1b" not in stdout, args
