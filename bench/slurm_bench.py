"""Slurm benchmark: one refresh of 200 queued jobs (SlurmBackend.status) against one bare squeue
call, both measured in the same run against a private Slurm on this machine; also a refresh that
asks the queue's order as well (the second squeue call a refresh makes at most every 10 s).

Starts munged (unless one answers), slurmctld and slurmd with a generated slurm.conf under a temp
dir (needs root and slurm-wlm + munge: `make sysdeps`); the jobs are submitted held (sbatch --hold)
so that they stay queued. Uses a temporary TUNEDECK_HOME.
Run: .venv/bin/python bench/slurm_bench.py [--jobs 200] [--rounds 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from slurm_cluster import (  # noqa: E402 - the tests' fixture code, reused
    PARTITION,
    SlurmNode,
    free_port,
    start_cluster,
    stop_cluster,
    write_slurm_conf,
)


def main() -> int:
    args = _arguments()
    work = Path(tempfile.mkdtemp(prefix="tdslurm-"))
    os.environ["TUNEDECK_HOME"] = str(work / "home")
    nodes = [SlurmNode(name="node1", port=free_port())]
    cluster = start_cluster(write_slurm_conf(work / "slurm", nodes), nodes, PARTITION)
    os.environ.update(cluster.env)
    try:
        return measure(args.jobs, args.rounds)
    finally:
        stop_cluster(cluster)
        shutil.rmtree(work, ignore_errors=True)


def measure(count: int, rounds: int) -> int:
    from tunedeck.core.jobs import JobSpec, JobState
    from tunedeck.core.jobs.backend import Resources
    from tunedeck.core.jobs.slurm import SlurmBackend, squeue_argv

    backend = SlurmBackend("cluster")
    started = time.perf_counter()
    held = Resources(hold=True)
    jobs = [backend.submit(JobSpec(("true",), f"held-{k}", resources=held)) for k in range(count)]
    print(f"submitted {count} held jobs in {time.perf_counter() - started:.1f} s")
    ids = [job.id for job in jobs]
    first = backend.status(ids)  # records the reason Slurm gives (JobHeldUser) once
    assert all(job.state == JobState.QUEUED for job in first), "a held job left the queue"
    squeue = squeue_argv()
    bare, refresh = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        subprocess.run(squeue, capture_output=True, check=True)
        bare.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fresh = backend.status(ids)
        refresh.append(time.perf_counter() - t0)
        assert len(fresh) == count and all(j.reason.startswith("JobHeldUser") for j in fresh)
    placed = [job.queue_position for job in fresh]
    assert placed == list(range(1, count + 1)), "held jobs not placed 1..N in the queue"
    backend.position_every = 0.0  # the refresh that asks the queue's order too (every 10 s)
    ordered = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        backend.status(ids)
        ordered.append(time.perf_counter() - t0)
    squeue_ms = statistics.median(bare) * 1000
    refresh_ms = statistics.median(refresh) * 1000
    ordered_ms = statistics.median(ordered) * 1000
    print(f"one squeue call:               {squeue_ms:7.1f} ms (median of {rounds})")
    print(f"status of {count} queued jobs:    {refresh_ms:7.1f} ms (median of {rounds})")
    print(f"ratio: {refresh_ms / squeue_ms:.2f}x (goal <= 1.5x)")
    print(f"with the queue's order asked:  {ordered_ms:7.1f} ms ({ordered_ms / squeue_ms:.2f}x)")
    return 0


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=20)
    return parser.parse_args()


if __name__ == "__main__":
    raise SystemExit(main())
