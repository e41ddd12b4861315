import json
import shlex
import subprocess
import sys

from jobs_helpers import cli

from tunedeck.core.jobs.hosts import Host, add_host, get_host, load_hosts
from tunedeck.core.jobs.ssh import agent_command


def test_hosts_add_list_and_rm_through_the_cli():
    cli(
        "hosts",
        "add",
        "gpu1",
        "me@gpu1.example",
        "--workdir",
        "~/runs",
        "--command",
        "/opt/venv/bin/tunedeck",
        "--env",
        "HF_HOME=/data/hf",
        "--ssh-option",
        "-p 2222",
    )
    (doc,) = json.loads(cli("hosts", "--json", "--show-env").stdout)
    assert doc == {
        "name": "gpu1",
        "target": "me@gpu1.example",
        "workdir": "~/runs",
        "command": "/opt/venv/bin/tunedeck",
        "env": {"HF_HOME": "/data/hf"},
        "ssh_options": ["-p", "2222"],
    }
    assert "gpu1" in cli("hosts").stdout
    cli("hosts", "rm", "gpu1")
    assert json.loads(cli("hosts", "list", "--json").stdout) == []


def test_hosts_file_round_trips_awkward_strings():
    host = Host("odd", "u@h", workdir='/dir "with" \\ and ☃', env={"A": "x\ny", "B": "$(z)"})
    add_host(host)
    assert load_hosts()["odd"] == host


def test_an_ssh_config_name_works_without_a_hosts_entry():
    assert get_host("my-ssh-alias") == Host("my-ssh-alias", "my-ssh-alias")


def test_bad_host_name_is_a_usage_error():
    done = cli("hosts", "add", "-x", "t", check=False)
    assert done.returncode != 0
    done = cli("hosts", "add", "a b", "t", check=False)
    assert done.returncode == 2 and "cannot be a host name" in done.stderr


def test_agent_command_is_quoted_for_the_remote_shell():
    host = Host(
        "h",
        "t",
        workdir="/w w/$(x)",
        command="'/v env/bin/python' -m tunedeck.tui",
        env={"K": "a b;c"},
    )
    line = agent_command(host)
    assert shlex.split(line) == [
        "env", "K=a b;c", "/v env/bin/python", "-m", "tunedeck.tui", "agent", "--workdir",
        "/w w/$(x)",
    ]  # fmt: skip
    assert "'/w w/$(x)'" in line


def _agent(*lines: bytes) -> list[dict]:
    done = subprocess.run(
        [sys.executable, "-m", "tunedeck.tui", "agent"],
        input=b"".join(lines),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_agent_speaks_versioned_json_lines_and_reports_errors_in_band():
    answers = _agent(
        b'{"v": 1, "seq": 1, "op": "hello"}\n',
        b'{"v": 2, "seq": 2, "op": "hello"}\n',
        b'{"v": 1, "seq": 3, "op": "launch_missiles"}\n',
        b"not json\n",
        b'{"v": 1, "seq": 5, "op": "status", "ids": ["nope00"]}\n',
        b'{"v": 1, "seq": 6, "op": "read_log", "id": "nope00"}\n',
    )
    assert [a["seq"] for a in answers] == [1, 2, 3, None, 5, 6]
    assert answers[0]["ok"] and answers[0]["result"]["protocol"] == 1
    assert answers[1]["error"]["type"] == "ProtocolError"
    assert answers[2]["error"]["type"] == "ProtocolError"
    assert answers[3]["error"]["type"] == "ProtocolError"
    assert answers[4]["result"] == {"jobs": [], "missing": ["nope00"]}
    assert answers[5]["error"]["type"] == "JobError"
