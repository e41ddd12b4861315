import json
import os
import shlex
import signal
import subprocess
import sys
import threading

import pytest
from jobs_helpers import alive, cli, cli_json, group_on_host, on_host, wait_for

from tunedeck.core.errors import HostError
from tunedeck.core.jobs import JobSpec, JobState
from tunedeck.core.jobs.hosts import Host, add_host
from tunedeck.core.jobs.ssh import SshBackend, master_pid, stop_master

pytestmark = pytest.mark.slow


def _final(backend: SshBackend, job_id: str, timeout: float = 60):
    return wait_for(
        lambda: next((j for j in backend.status([job_id]) if j.state.is_final), None),
        timeout=timeout,
        what=f"remote job {job_id} to end",
    )


def _kill_master(host: Host) -> None:
    pid = master_pid(host)
    assert pid, "expected a running ControlMaster"
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not alive(pid), what="the master to die")


def test_remote_job_survives_cli_exit_and_master_kill_and_a_new_cli_sees_exit_code(
    loop_host, tmp_path
):
    flag = tmp_path / "go"
    job_id = cli(
        "run",
        "--host",
        "loop",
        "-q",
        "--",
        "sh",
        "-c",
        f"while [ ! -e '{flag}' ]; do sleep 0.05; done; echo done; exit 3",
    ).stdout.strip()
    wait_for(lambda: cli_json("runs", "show", job_id)["state"] == "running", what="running")
    _kill_master(loop_host)
    assert cli_json("runs", "show", job_id)["state"] == "running"  # reconnects by itself
    flag.touch()
    final = wait_for(
        lambda: (doc := cli_json("runs", "show", job_id))["state"] != "running" and doc,
        what="the remote job to end",
    )
    assert final["state"] == "failed" and final["exit_code"] == 3 and final["host"] == "loop"
    assert cli("runs", "logs", job_id).stdout == "done\n"


def test_remote_job_survives_a_killed_long_lived_client(loop_host, tmp_path):
    flag = tmp_path / "go"
    job_id = cli(
        "run",
        "--host",
        "loop",
        "-q",
        "--",
        "sh",
        "-c",
        f"echo waiting; while [ ! -e '{flag}' ]; do sleep 0.05; done; echo finished",
    ).stdout.strip()
    # A follower holds an agent session open, as the app does; kill it without warning.
    follower = subprocess.Popen(
        [sys.executable, "-m", "tunedeck.tui", "runs", "logs", job_id, "-f"],
        stdout=subprocess.PIPE,
    )
    assert follower.stdout.readline() == b"waiting\n"
    follower.kill()
    follower.wait()
    flag.touch()
    backend = SshBackend(loop_host)
    final = _final(backend, job_id)
    assert final.state is JobState.SUCCEEDED and final.exit_code == 0
    assert backend.read_log(final).data == b"waiting\nfinished\n"
    backend.close()


def test_args_names_and_paths_arrive_literally_and_no_shell_runs_them(loop_host, tmp_path):
    nasty = [
        "two words",
        'it\'s "quoted"',
        "$(touch PWNED1)",
        "`touch PWNED2`",
        "a; touch PWNED3",
        "line\nbreak",
        "ünïcødé ☃ 名前",
        "$HOME ${PATH} * ? ~",
        "",
        "-",
    ]
    workdir = tmp_path / "dir with $(x) `y`; and ☃"
    workdir.mkdir()
    script = "import json, os, sys; json.dump([sys.argv[1:], os.getcwd(), os.environ['NASTY']], open('out.json', 'w'))"
    backend = SshBackend(loop_host)
    job = backend.submit(
        JobSpec(
            argv=(sys.executable, "-c", script, *nasty),
            name="name; $(touch PWNED4) `x` ☃\n",
            cwd=str(workdir),
            env={"NASTY": "$(touch PWNED5); `x`"},
        )
    )
    final = _final(backend, job.id)
    assert final.state is JobState.SUCCEEDED, backend.read_log(final).data
    assert final.name == "name; $(touch PWNED4) `x` ☃\n"
    args, cwd, env_value = json.loads((workdir / "out.json").read_text())
    assert args == nasty
    assert cwd == str(workdir)
    assert env_value == "$(touch PWNED5); `x`"
    remote_work = loop_host.workdir
    for where in (workdir, remote_work, tmp_path):
        assert not [p for p in os.listdir(where) if p.startswith("PWNED")]
    backend.close()


def test_follow_across_killed_connections_loses_and_repeats_no_line(loop_host):
    lines = 4000
    script = (
        "import sys, time\n"
        f"for i in range(1, {lines + 1}):\n"
        "    print(f'line {i:06d}', flush=True)\n"
        "    if i % 20 == 0: time.sleep(0.01)\n"
    )
    backend = SshBackend(loop_host)
    job = backend.submit(JobSpec(argv=(sys.executable, "-c", script), name="numbers"))
    received = bytearray()
    kills = []

    def cut_connections():
        # Kill the shared connection twice while the follow is under way.
        for threshold in (lines // 4, lines // 2):
            wait_for(lambda t=threshold: received.count(b"\n") >= t, timeout=60, interval=0.01)
            pid = master_pid(loop_host)
            if pid:
                os.kill(pid, signal.SIGKILL)
                kills.append(pid)

    killer = threading.Thread(target=cut_connections)
    killer.start()
    for chunk in backend.follow_log(job, 0):
        received += chunk.data
    killer.join()
    assert len(kills) == 2
    expected = "".join(f"line {i:06d}\n" for i in range(1, lines + 1)).encode()
    assert bytes(received) == expected
    backend.close()


def test_remote_cancel_kills_the_tree_and_reports_sigkill(loop_host):
    script = (
        "sleep 300 & sleep 300 & "
        "sh -c 'trap \"\" TERM; while :; do sleep 0.1; done' & echo started; wait"
    )
    job_id = cli("run", "--host", "loop", "-q", "--", "sh", "-c", script).stdout.strip()
    wait_for(lambda: "started" in cli("runs", "logs", job_id).stdout, what="children started")
    pgid = cli_json("runs", "show", job_id)["pgid"]
    assert group_on_host(loop_host, pgid)  # seen from the box: its pids are not ours
    doc = cli_json("runs", "cancel", job_id, "--grace", "1")
    assert doc["signal"] == "SIGKILL" and doc["survivors"] == []
    assert doc["job"]["state"] == "cancelled"
    assert not group_on_host(loop_host, pgid)
    assert cli_json("runs", "show", job_id)["cancel_signal"] == "SIGKILL"


def test_status_of_many_remote_jobs_is_one_request(loop_host):
    backend = SshBackend(loop_host)
    ids = [backend.submit(JobSpec(argv=("true",), name=f"j{i}")).id for i in range(10)]
    calls = []
    original = backend.request

    def counting(op, *args, **kwargs):
        calls.append(op)
        return original(op, *args, **kwargs)

    backend.request = counting
    jobs = backend.status(ids)
    assert calls == ["status"] and sorted(j.id for j in jobs) == sorted(ids)
    assert all(j.host == "loop" for j in jobs)
    backend.close()


def test_hosts_check_reports_version_and_no_gpu(loop_host):
    out = cli("hosts", "check", "loop").stdout
    assert "reachable, tunedeck 0.1.0" in out and "no GPU" in out
    doc = cli_json("hosts", "check", "loop")
    assert doc["agent"]["protocol"] == 1 and doc["gpus"] == []


def _error_for(host: Host) -> str:
    add_host(host)
    done = cli("hosts", "check", host.name, check=False)
    stop_master(host)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    return done.stderr


def test_unreachable_host_is_said_plainly(sshd):
    port = sshd["port"] + 1 if sshd["port"] < 65000 else sshd["port"] - 1
    text = _error_for(
        Host("down", "127.0.0.1", ssh_options=("-p", str(port), "-o", "ConnectTimeout=5"))
    )
    assert "host unreachable" in text


def test_refused_authentication_is_said_plainly(sshd, tmp_path):
    key = tmp_path / "otherkey"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    config = tmp_path / "ssh_config"
    config.write_text(
        sshd["config"].read_text().replace(str(sshd["key"]), str(key)) + "  IdentityAgent none\n"
    )
    text = _error_for(Host("nokey", "loop", ssh_options=("-F", str(config))))
    assert "authentication refused" in text and "hint:" in text


def test_missing_remote_tunedeck_says_what_to_install(sshd):
    text = _error_for(
        Host(
            "bare", "loop", command="/opt/nowhere/tunedeck", ssh_options=("-F", str(sshd["config"]))
        )
    )
    assert "tunedeck is missing" in text and "pip install tunedeck" in text


def test_too_old_remote_tunedeck_says_to_upgrade(sshd):
    old = "sh -c 'echo \"Error: No such command agent.\" >&2; exit 2'"
    text = _error_for(Host("old", "loop", command=old, ssh_options=("-F", str(sshd["config"]))))
    assert "too old" in text and "pip install -U tunedeck" in text


def test_remote_disk_full_is_reported(loop_host, remote_home):
    # The box has its own mount namespace: the small tmpfs is mounted and filled from inside it.
    state = remote_home / "state"
    state.mkdir()
    mounted = on_host(
        loop_host, "mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(state), check=False
    )
    if mounted.returncode != 0:
        pytest.skip("needs permission to mount a small tmpfs")
    try:
        backend = SshBackend(loop_host)
        backend.submit(JobSpec(argv=("true",), name="fits"))
        on_host(
            loop_host,
            "sh",
            "-c",
            "cat /dev/zero > " + shlex.quote(str(state / "filler")),
            check=False,
        )
        with pytest.raises(HostError, match="disk full"):
            backend.submit(JobSpec(argv=("true",), name="x" * 100_000))
        backend.close()
    finally:
        on_host(loop_host, "umount", "-l", str(state), check=False)
