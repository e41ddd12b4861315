import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from jobs_helpers import alive, cli, cli_json, wait_for

from tunedeck.core.jobs import Job, JobRegistry, JobSpec, JobState
from tunedeck.core.jobs.local import LocalBackend
from tunedeck.core.jobs.procs import group_and_descendants


def _final(backend: LocalBackend, job_id: str, timeout: float = 30) -> Job:
    return wait_for(
        lambda: next((j for j in backend.status([job_id]) if j.state.is_final), None),
        timeout=timeout,
        what=f"job {job_id} to end",
    )


def _running(backend: LocalBackend, job_id: str) -> Job:
    return wait_for(
        lambda: next((j for j in backend.status([job_id]) if j.pid), None), what="job to start"
    )


@pytest.mark.slow
def test_job_outlives_the_cli_that_started_it_and_a_new_cli_sees_its_exit_code(tmp_path):
    flag = tmp_path / "go"
    job_id = cli(
        "run", "-q", "--", "sh", "-c", f"while [ ! -e '{flag}' ]; do sleep 0.05; done; exit 3"
    ).stdout.strip()
    assert len(job_id) == 6
    shown = cli_json("runs", "show", job_id)
    assert shown["state"] in ("queued", "running")
    wait_for(lambda: cli_json("runs", "show", job_id)["state"] == "running", what="running")
    flag.touch()
    final = wait_for(
        lambda: (doc := cli_json("runs", "show", job_id[:4]))["state"] != "running" and doc,
        what="the job to end",
    )
    assert final["state"] == "failed" and final["exit_code"] == 3
    listed = cli_json("runs")
    assert [j["id"] for j in listed] == [job_id]


def test_job_gets_its_env_cwd_and_an_empty_stdin(tmp_path):
    backend = LocalBackend()
    job = backend.submit(
        JobSpec(
            argv=("sh", "-c", 'cat; echo "FOO=$FOO"; pwd; echo "id=$TUNEDECK_JOB_ID" >&2'),
            name="env",
            cwd=str(tmp_path),
            env={"FOO": "bar baz"},
        )
    )
    final = _final(backend, job.id)
    assert final.state is JobState.SUCCEEDED and final.exit_code == 0
    text = backend.read_log(final).data.decode()
    assert text == f"FOO=bar baz\n{tmp_path}\nid={job.id}\n"


def test_a_missing_program_fails_with_127_and_says_why():
    backend = LocalBackend()
    job = backend.submit(JobSpec(argv=("/no/such/program", "x"), name="nope"))
    final = _final(backend, job.id)
    assert final.state is JobState.FAILED and final.exit_code == 127
    assert b"cannot start '/no/such/program'" in backend.read_log(final).data


def test_kill_9_of_the_job_process_shows_failed_with_the_signal():
    backend = LocalBackend()
    job = _running(backend, backend.submit(JobSpec(argv=("sleep", "30"), name="k")).id)
    os.kill(job.pid, signal.SIGKILL)
    final = _final(backend, job.id)
    assert final.state is JobState.FAILED
    assert final.signal == signal.SIGKILL and final.exit_code is None


def test_kill_9_of_job_and_supervisor_shows_lost_not_running():
    backend = LocalBackend()
    job = _running(backend, backend.submit(JobSpec(argv=("sleep", "30"), name="k")).id)
    os.kill(job.supervisor_pid, signal.SIGKILL)
    os.kill(job.pid, signal.SIGKILL)
    final = _final(backend, job.id)
    assert final.state is JobState.LOST
    assert final.pid == job.pid and "vanished" in final.message


def test_a_recycled_pid_is_not_taken_for_the_job(tmp_path):
    registry = JobRegistry()
    me = os.getpid()  # alive, but it is not the process the record names (other start time)
    registry.add(
        Job(
            id="recycl",
            name="r",
            argv=("x",),
            state=JobState.RUNNING,
            pid=me,
            pgid=me,
            pid_start=1,
            supervisor_pid=me,
            supervisor_start=2,
            created_at=time.time() - 3600,
        )
    )
    assert LocalBackend(registry).status(["recycl"])[0].state is JobState.LOST


TREE = textwrap.dedent(
    """
    sleep 300 &
    sleep 300 &
    {ignore}
    setsid sleep 300 &
    echo started
    wait
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("stubborn", [False, True], ids=["all-obey-sigterm", "one-ignores"])
def test_cancel_leaves_no_process_of_the_tree_and_says_which_signal(stubborn):
    ignore = "sh -c 'trap \"\" TERM; while :; do sleep 0.1; done' &" if stubborn else ""
    backend = LocalBackend()
    job = backend.submit(JobSpec(argv=("sh", "-c", TREE.format(ignore=ignore)), name="tree"))
    job = _running(backend, job.id)
    wait_for(lambda: b"started" in backend.read_log(job).data, what="children started")
    tree = group_and_descendants(job.pgid, [job.pid, job.supervisor_pid])
    pids = [p.pid for p in tree if p.pid != job.supervisor_pid]
    assert len(pids) >= 4  # the shell, two sleeps and the one in its own session
    assert any(p.pgid != job.pgid for p in tree if p.pid != job.supervisor_pid)

    result = backend.cancel(job, grace=1.0)

    assert result.signal == ("SIGKILL" if stubborn else "SIGTERM")
    assert result.survivors == ()
    assert not [pid for pid in pids if alive(pid)]
    assert result.job.state is JobState.CANCELLED
    assert result.job.cancel_signal == result.signal


def test_cancel_through_the_cli_reports_and_a_finished_job_is_left_alone():
    job_id = cli("run", "-q", "--", "sleep", "30").stdout.strip()
    backend = LocalBackend()
    _running(backend, job_id)
    out = cli("runs", "cancel", job_id, "--grace", "5").stdout
    assert "stopped on SIGTERM" in out
    doc = cli_json("runs", "show", job_id)
    assert doc["state"] == "cancelled" and doc["cancel_signal"] == "SIGTERM"
    assert "already ended" in cli("runs", "cancel", job_id).stdout
    cli("runs", "rm", job_id)
    assert cli_json("runs") == []


def test_removing_a_running_job_is_refused():
    job_id = cli("run", "-q", "--", "sleep", "30").stdout.strip()
    done = cli("runs", "rm", job_id, check=False)
    assert done.returncode == 1 and "cancel it first" in done.stderr
    cli("runs", "cancel", job_id, "--grace", "5")


def test_logs_tail_and_full_output_through_the_cli():
    script = "for i in $(seq 1 50); do echo line $i; done"
    job_id = cli("run", "-q", "--name", "lines", "--", "sh", "-c", script).stdout.strip()
    _final(LocalBackend(), job_id)
    assert cli("runs", "logs", job_id, "--tail", "3").stdout == "line 48\nline 49\nline 50\n"
    assert cli("runs", "logs", job_id).stdout.count("\n") == 50
    followed = cli("runs", "logs", job_id, "-f", "-n", "1").stdout
    assert followed == "line 50\n"


def test_runs_json_shows_state_host_pid_and_exit_code():
    job_id = cli("run", "-q", "--", sys.executable, "-c", "raise SystemExit(5)").stdout.strip()
    _final(LocalBackend(), job_id)
    (doc,) = cli_json("runs")
    assert doc["id"] == job_id and doc["host"] == "local" and doc["exit_code"] == 5
    assert doc["state"] == "failed" and isinstance(doc["pid"], int)
    assert json.loads(cli("runs", "show", job_id, "--json").stdout)["argv"][0] == sys.executable


def test_unknown_job_id_is_a_clean_error():
    done = cli("runs", "show", "zzzzzz", check=False)
    assert done.returncode == 1
    assert "no job matches 'zzzzzz'" in done.stderr and "Traceback" not in done.stderr


FOLLOWER = """
import sys
from tunedeck.core.jobs import get_backend, submit
job = submit(["sh", "-c", sys.argv[1]], name="held")
print(job.id, flush=True)
for chunk in get_backend().follow_log(job):
    sys.stdout.buffer.write(chunk.data)
    sys.stdout.flush()
"""


def test_local_job_survives_a_killed_long_lived_client(tmp_path):
    flag = tmp_path / "go"
    client = subprocess.Popen(
        [sys.executable, "-c", FOLLOWER, f"echo up; while [ ! -e '{flag}' ]; do sleep 0.05; done"],
        stdout=subprocess.PIPE,
    )
    job_id = client.stdout.readline().decode().strip()
    assert client.stdout.readline() == b"up\n"
    client.kill()
    client.wait()
    backend = LocalBackend()
    assert backend.status([job_id])[0].state is JobState.RUNNING
    flag.touch()
    final = _final(backend, job_id)
    assert final.state is JobState.SUCCEEDED and final.exit_code == 0
