"""The Slurm backend against a real Slurm (tests/slurm_cluster.py), on the login node and over ssh.

`slurm_host` runs each test twice: tunedeck on the login node itself (target `local`), and
over the loopback sshd, where the login node's agent submits.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from jobs_helpers import cli, wait_for
from slurm_cluster import CLUSTER_NAME

from tunedeck.core.jobs import Job, JobSpec, JobState, get_backend
from tunedeck.core.jobs.backend import Resources
from tunedeck.core.jobs.registry import JobRegistry
from tunedeck.core.jobs.ssh import SshBackend, master_pid
from tunedeck.core.locations import ensure, state_dir

pytestmark = pytest.mark.slow


def final(backend, job: Job, timeout: float = 120) -> Job:
    return wait_for(
        lambda: next((j for j in backend.status([job.id]) if j.state.is_final), None),
        timeout=timeout,
        interval=0.3,
        what=f"Slurm job {job.scheduler_id} to end",
    )


def current(backend, job: Job) -> Job:
    return backend.status([job.id])[0]


def test_a_job_runs_with_its_log_and_exit_code_and_keeps_its_sbatch_script(slurm_host):
    backend = get_backend(CLUSTER_NAME)
    spec = JobSpec(
        argv=("bash", "-c", "echo hello; sleep 1; echo 'bye now'; exit 3"),
        name="hello",
        resources=Resources(time="5", cpus_per_task=1),
    )
    job = backend.submit(spec)
    assert job.scheduler_id and job.scheduler_id.isdigit() and job.host == CLUSTER_NAME
    ended = final(backend, job)
    assert (ended.state, ended.scheduler_state, ended.exit_code) == (JobState.FAILED, "FAILED", 3)
    assert backend.read_log(ended).data == b"hello\nbye now\n"
    script = Path(ended.script_path).read_text()
    assert Path(ended.script_path).parent == Path(state_dir_of(slurm_host)) / "runs"
    for line in ("#SBATCH --time=5", "#SBATCH --cpus-per-task=1", "#SBATCH --partition=debug"):
        assert line in script.splitlines()
    assert f"#SBATCH --output={ended.log_path}" in script
    assert "#SBATCH --signal=B:TERM@35" in script  # the host's env sets the lead for tests
    backend.close()


def test_running_job_holds_the_node_and_the_next_is_pending_for_resources(slurm_host, tmp_path):
    backend = get_backend(CLUSTER_NAME)
    flag = tmp_path / "go"
    wait_flag = f"echo started; while [ ! -e '{flag}' ]; do sleep 0.1; done"
    whole_node = Resources(cpus_per_task=2)
    first = backend.submit(JobSpec(("bash", "-c", wait_flag), "first", resources=whole_node))
    wait_for(lambda: current(backend, first).state == JobState.RUNNING, timeout=60)
    second = backend.submit(JobSpec(("bash", "-c", "echo second"), "second", resources=whole_node))
    waiting = wait_for(
        lambda: (j := current(backend, second)).reason not in (None, "waiting") and j,
        timeout=60,
        what="squeue to give a reason",
    )
    running = current(backend, first)
    assert (running.state, running.scheduler_state) == (JobState.RUNNING, "RUNNING")
    assert (waiting.state, waiting.scheduler_state) == (JobState.QUEUED, "PENDING")
    assert waiting.reason.split(";")[0] in ("Resources", "Priority"), waiting.reason
    flag.touch()
    assert final(backend, first).state == JobState.SUCCEEDED
    assert final(backend, second).state == JobState.SUCCEEDED
    assert backend.read_log(second).data == b"second\n"
    backend.close()


def test_held_job_is_pending_with_slurms_reason_and_a_cancel_takes_it_off_the_queue(slurm_host):
    backend = get_backend(CLUSTER_NAME)
    job = backend.submit(
        JobSpec(("bash", "-c", "echo never"), "held", resources=Resources(hold=True))
    )
    held = wait_for(
        lambda: (j := current(backend, job)).reason not in (None, "waiting") and j,
        timeout=60,
        what="squeue to give a reason",
    )
    assert (held.state, held.scheduler_state) == (JobState.QUEUED, "PENDING")
    assert held.reason.startswith("JobHeldUser"), held.reason
    shown = json.loads(cli("runs", "show", job.id, "--json").stdout)
    assert shown["reason"] == held.reason and shown["scheduler_state"] == "PENDING"
    result = backend.cancel(held, grace=5)
    assert result.job.state == JobState.CANCELLED and result.signal == "scancel"
    assert current(backend, job).state == JobState.CANCELLED
    assert backend.read_log(job).data == b""


def test_pending_jobs_are_numbered_in_the_queue_and_move_up_when_one_starts(
    slurm_host, slurm_cluster
):
    backend = get_backend(CLUSTER_NAME)
    held = Resources(hold=True)
    jobs = [backend.submit(JobSpec(("true",), f"held-{k}", resources=held)) for k in range(4)]
    ids = [job.id for job in jobs]

    def positions() -> list:
        return [job.queue_position for job in backend.status(ids) if job.state == JobState.QUEUED]

    try:
        wait_for(lambda: positions() == [1, 2, 3, 4], timeout=60, what="places 1..4")
        listed = {doc["id"]: doc for doc in json.loads(cli("runs", "--json").stdout)}
        assert [listed[i]["queue_position"] for i in ids] == [1, 2, 3, 4]
        slurm_cluster.run("scontrol", "release", jobs[0].scheduler_id)
        assert final(backend, jobs[0]).queue_position is None
        wait_for(lambda: positions() == [1, 2, 3], timeout=60, what="the rest to move up")
    finally:
        for job in jobs:
            backend.cancel(job, grace=5)
        backend.close()


def test_bad_partition_is_refused_with_slurms_words_at_the_flag_and_records_nothing(slurm_host):
    done = cli("run", "--host", CLUSTER_NAME, "--partition", "nope", "--", "true", check=False)
    assert done.returncode == 1
    assert "'--partition'" in done.stderr and "Invalid partition name specified" in done.stderr
    assert done.stdout == ""
    assert json.loads(cli("runs", "--json").stdout) == []
    if slurm_host.target != "local":  # nor on the login node
        assert JobRegistry(Path(state_dir_of(slurm_host)) / "jobs.db").list() == []


def test_request_larger_than_any_node_is_refused_at_its_flag(slurm_host):
    done = cli("run", "--host", CLUSTER_NAME, "--cpus-per-task", "64", "--", "true", check=False)
    assert done.returncode == 1, done.stdout
    assert "Requested node configuration is not available" in done.stderr
    assert "'--cpus-per-task'" in done.stderr
    assert json.loads(cli("runs", "--json").stdout) == []


def test_four_specs_run_as_one_job_array(slurm_host):
    backend = get_backend(CLUSTER_NAME)
    specs = [
        JobSpec(("bash", "-c", f"echo task {k} of ${{SLURM_ARRAY_JOB_ID}}"), f"sw-{k}")
        for k in range(4)
    ]
    specs = [replace(spec, group="grp1", group_index=k) for k, spec in enumerate(specs)]
    jobs = backend.submit_array(specs)
    array_id = jobs[0].scheduler_id.split("_")[0]
    assert [j.scheduler_id for j in jobs] == [f"{array_id}_{k}" for k in range(4)]
    assert [(j.group, j.group_index) for j in jobs] == [("grp1", k) for k in range(4)]
    for k, job in enumerate(jobs):
        ended = final(backend, job)
        assert ended.state == JobState.SUCCEEDED and ended.scheduler_state == "COMPLETED"
        assert backend.read_log(ended).data == f"task {k} of {array_id}\n".encode()
    script = Path(jobs[0].script_path).read_text()
    assert "#SBATCH --array=0-3" in script and script.count("ARGV=(") == 4
    backend.close()


def test_dry_run_prints_the_sbatch_script_and_submits_nothing(slurm_host):
    done = cli(
        "run", "--host", CLUSTER_NAME, "--dry-run", "--nodes", "1", "--time", "10",
        "--mem", "500M", "--requeue", "--", "echo", "hi there",
    )  # fmt: skip
    lines = done.stdout.splitlines()
    assert lines[0] == "#!/bin/bash"
    for line in ("#SBATCH --time=10", "#SBATCH --mem=500M", "#SBATCH --requeue"):
        assert line in lines
    assert "    ARGV=(echo 'hi there')" in lines
    assert json.loads(cli("runs", "--json").stdout) == []


def test_a_job_slurm_forgot_is_lost_unless_it_left_its_exit_status(slurm_local_host):
    registry = JobRegistry()
    ghost = Job(id="ghost1", name="g", argv=("true",), host=CLUSTER_NAME, scheduler_id="9999991")
    ghost = registry.add(ghost.evolve(state=JobState.RUNNING, scheduler_state="RUNNING"))
    registry.add(
        Job(id="ended1", name="e", argv=("true",), host=CLUSTER_NAME, scheduler_id="9999992")
    )
    exit_file = ensure(state_dir() / "slurm") / "ended1.exit"
    exit_file.write_text("0 \n")
    backend = get_backend(CLUSTER_NAME)
    lost, done = backend.status(["ghost1", "ended1"])
    assert lost.state == JobState.LOST and "no longer knows job 9999991" in lost.message
    assert (done.state, done.exit_code) == (JobState.SUCCEEDED, 0)


def test_hosts_check_reports_slurms_version_and_partitions(slurm_host):
    text = cli("hosts", "check", CLUSTER_NAME).stdout
    assert "Slurm 22.05" in text or "Slurm 2" in text
    assert "debug*: 1 node(s) (1 idle), CPUs 0/2 in use" in text
    doc = json.loads(cli("hosts", "check", CLUSTER_NAME, "--json").stdout)
    (partition,) = doc["slurm"]["partitions"]
    assert partition["name"] == "debug" and partition["default"] and partition["node_cpus"] == 2


def test_log_follow_over_ssh_survives_killed_masters_with_no_line_lost_or_repeated(
    slurm_ssh_host,
):
    lines = 3000
    script = (
        "import sys, time\n"
        f"for i in range(1, {lines + 1}):\n"
        "    print(f'line {i:06d}', flush=True)\n"
        "    if i % 50 == 0: time.sleep(0.05)\n"
    )
    backend = SshBackend(slurm_ssh_host)
    job = backend.submit(JobSpec(argv=(sys.executable, "-c", script), name="numbers"))
    received = bytearray()
    kills = []

    def cut_connections():
        for threshold in (lines // 4, lines // 2):
            wait_for(lambda t=threshold: received.count(b"\n") >= t, timeout=120, interval=0.01)
            pid = master_pid(slurm_ssh_host)
            if pid:
                os.kill(pid, signal.SIGKILL)
                kills.append(pid)

    killer = threading.Thread(target=cut_connections)
    killer.start()
    for chunk in backend.follow_log(job, 0):
        received += chunk.data
    killer.join()
    assert len(kills) == 2
    assert bytes(received) == "".join(f"line {i:06d}\n" for i in range(1, lines + 1)).encode()
    assert final(backend, job).state == JobState.SUCCEEDED
    backend.close()


def state_dir_of(host) -> str:
    """The login node's state dir: this one, or the one its agent runs with."""
    home = host.env.get("TUNEDECK_HOME")
    if host.target == "local" or not home:
        return str(state_dir())
    return str(Path(home) / "state")
