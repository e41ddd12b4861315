"""A real Slurm on this machine for tests: munged, slurmctld and slurmd with a private slurm.conf.

`slurm_cluster` (session scope) yields a SlurmCluster whose `conf` path clients find through
SLURM_CONF. `write_slurm_conf` takes several `SlurmNode`s, so the same writer gives Slurm two
nodes on one machine (each slurmd started with `-N NAME`, its own port and address).

Conftests (or test modules) that need them import the fixtures:
`from slurm_cluster import slurm_cluster, slurm_host, slurm_local_host, slurm_ssh_host`
(slurm_ssh_host also needs sshd_server's loop_host).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from tunedeck.core.jobs.hosts import THIS_MACHINE, Host, add_host
from tunedeck.core.jobs.slurm import SIGNAL_LEAD_ENV

PARTITION = "debug"
MUNGE_SOCKET_DIR = Path("/run/munge")
UP_TIMEOUT = 60.0


@dataclass(frozen=True)
class SlurmNode:
    """One NodeName line: its name, the address its slurmd listens on, its port and size."""

    name: str
    address: str = "127.0.0.1"
    port: int = 0
    cpus: int = 2
    memory_mb: int = 2000
    gres: str | None = None  # e.g. "gpu:2" (needs a gres.conf)


@dataclass(frozen=True)
class SlurmCluster:
    """A running cluster: its conf, partition, nodes and the folder holding its state."""

    conf: Path
    partition: str
    nodes: tuple[SlurmNode, ...]
    root: Path
    processes: tuple[subprocess.Popen, ...] = field(default=(), repr=False)

    @property
    def env(self) -> dict[str, str]:
        """The environment a Slurm client of this cluster needs."""
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *argv: str) -> subprocess.CompletedProcess:
        """A Slurm command against this cluster, its output as text."""
        env = {**os.environ, **self.env}
        return subprocess.run(list(argv), capture_output=True, text=True, env=env, timeout=60)


def write_slurm_conf(
    root: Path,
    nodes: Sequence[SlurmNode],
    *,
    partition: str = PARTITION,
    cluster_name: str = "tunedeck",
    ctld_port: int | None = None,
    extra: Sequence[str] = (),
    partitions: Sequence[str] = (),
) -> Path:
    """A slurm.conf for daemons that keep everything under `root` (state, spool, pids, logs);
    `partitions` are more PartitionName lines' options (each over every node)."""
    root.mkdir(parents=True, exist_ok=True)
    for sub in ("state", "spool"):
        (root / sub).mkdir(exist_ok=True)
    ctld_port = ctld_port or free_port()
    lines = [
        f"ClusterName={cluster_name}",
        "SlurmctldHost=localhost(127.0.0.1)",
        f"SlurmctldPort={ctld_port}",
        f"SlurmdPort={nodes[0].port or free_port()}",
        "AuthType=auth/munge",
        "SlurmUser=root",
        "SlurmdUser=root",
        f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool'}/%n",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}",
        f"SlurmdPidFile={root}/slurmd-%n.pid",
        f"SlurmctldLogFile={root / 'slurmctld.log'}",
        f"SlurmdLogFile={root}/slurmd-%n.log",
        "ProctrackType=proctrack/pgid",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "JobCompType=jobcomp/filetxt",
        f"JobCompLoc={root / 'jobcomp'}",
        "AccountingStorageType=accounting_storage/none",
        "MpiDefault=none",
        "ReturnToService=2",
        "SlurmdTimeout=30",
        "MinJobAge=600",
        "KillWait=5",
        # pending jobs (a requeued one too) are looked at every 2 s, not every 60 s
        "SchedulerParameters=sched_interval=2",
        *extra,
    ]
    for node in nodes:
        gres = f" Gres={node.gres}" if node.gres else ""
        port = f" Port={node.port}" if len(nodes) > 1 and node.port else ""
        lines.append(
            f"NodeName={node.name} NodeHostname=localhost NodeAddr={node.address}{port}"
            f" CPUs={node.cpus} RealMemory={node.memory_mb}{gres} State=UNKNOWN"
        )
    names = ",".join(node.name for node in nodes)
    lines.append(f"PartitionName={partition} Nodes={names} Default=YES MaxTime=INFINITE State=UP")
    lines += [
        f"PartitionName={options} Nodes={names} MaxTime=INFINITE State=UP" for options in partitions
    ]
    conf = root / "slurm.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def start_cluster(conf: Path, nodes: Sequence[SlurmNode], partition: str) -> SlurmCluster:
    """munged (unless one answers already), slurmctld, one slurmd per node; wait until idle."""
    for tool in ("slurmctld", "slurmd", "sinfo", "munged"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            pytest.fail(f"{tool} is missing: run `make sysdeps` (installs slurm-wlm and munge)")
    ensure_munge()
    root = conf.parent
    env = {**os.environ, "SLURM_CONF": str(conf)}
    daemons = [_daemon(["slurmctld", "-D", "-f", str(conf)], root / "slurmctld.out", env)]
    for node in nodes:
        argv = ["slurmd", "-D", "-f", str(conf), "-N", node.name]
        daemons.append(_daemon(argv, root / f"slurmd-{node.name}.out", env))
    cluster = SlurmCluster(conf, partition, tuple(nodes), root, tuple(daemons))
    try:
        _wait_idle(cluster)
    except BaseException:
        stop_cluster(cluster)
        raise
    return cluster


def stop_cluster(cluster: SlurmCluster) -> None:
    """Cancel what is left, then stop the daemons this fixture started."""
    cluster.run("scancel", "--user", str(os.getuid()))
    for process in reversed(cluster.processes):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in cluster.processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory) -> Iterator[SlurmCluster]:
    """A one-node Slurm (2 CPUs, partition 'debug') for the whole session."""
    if os.geteuid() != 0:
        pytest.fail("the Slurm fixture starts slurmd, which needs root")
    root = Path(tmp_path_factory.mktemp("slurm"))
    nodes = [SlurmNode(name="node1", address="127.0.0.1", port=free_port())]
    conf = write_slurm_conf(root, nodes)
    cluster = start_cluster(conf, nodes, PARTITION)
    yield cluster
    stop_cluster(cluster)


def ensure_munge() -> None:
    """A munged answering on the default socket: the one already running, else one started."""
    if _munge_answers():
        return
    MUNGE_SOCKET_DIR.mkdir(parents=True, exist_ok=True)
    shutil.chown(MUNGE_SOCKET_DIR, "munge", "munge")
    subprocess.run(["su", "-s", "/bin/sh", "munge", "-c", "/usr/sbin/munged"], check=True)
    deadline = time.monotonic() + 20
    while not _munge_answers():
        if time.monotonic() > deadline:
            pytest.fail("munged did not start (see /var/log/munge/munged.log)")
        time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _munge_answers() -> bool:
    try:
        made = subprocess.run(["munge", "-n"], capture_output=True, timeout=10)
        if made.returncode != 0:
            return False
        return subprocess.run(["unmunge"], input=made.stdout, capture_output=True).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _daemon(argv: list[str], out: Path, env: dict[str, str]) -> subprocess.Popen:
    with open(out, "ab") as sink:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, env=env,
            start_new_session=True,
        )  # fmt: skip


def _wait_idle(cluster: SlurmCluster) -> None:
    deadline = time.monotonic() + UP_TIMEOUT
    wanted = {node.name for node in cluster.nodes}
    last = ""
    while time.monotonic() < deadline:
        for process in cluster.processes:
            if process.poll() is not None:
                pytest.fail(f"{process.args[0]} exited: see {cluster.root}")
        done = cluster.run("sinfo", "-h", "-N", "-o", "%N %t")
        last = done.stdout + done.stderr
        idle = {line.split()[0] for line in done.stdout.splitlines() if line.endswith(" idle")}
        if wanted <= idle:
            return
        time.sleep(0.3)
    pytest.fail(
        f"Slurm nodes not idle after {UP_TIMEOUT:.0f} s: {last.strip()} (see {cluster.root})"
    )


CLUSTER_NAME = "cluster"
TEST_SIGNAL_LEAD = "35"  # seconds before the time limit the runner is told (the default is 120)


def add_login_host(cluster: SlurmCluster) -> Host:
    """hosts.toml 'cluster': this machine as `cluster`'s login node (target `local`)."""
    return add_host(
        Host(
            name=CLUSTER_NAME,
            target=THIS_MACHINE,
            env={**cluster.env, SIGNAL_LEAD_ENV: TEST_SIGNAL_LEAD},
            scheduler="slurm",
            partition=cluster.partition,
        )
    )


@pytest.fixture
def slurm_local_host(slurm_cluster) -> Host:
    """The session cluster's login node on this machine."""
    return add_login_host(slurm_cluster)


@pytest.fixture
def slurm_ssh_host(slurm_cluster, loop_host) -> Host:
    """hosts.toml 'cluster': the login node reached over the loopback sshd (its agent submits)."""
    return add_host(
        replace(
            loop_host,
            name=CLUSTER_NAME,
            env={**loop_host.env, **slurm_cluster.env, SIGNAL_LEAD_ENV: TEST_SIGNAL_LEAD},
            scheduler="slurm",
            partition=slurm_cluster.partition,
        )
    )


@pytest.fixture(params=["local", "ssh"])
def slurm_host(request) -> Host:
    """The cluster's login node, both ways: tunedeck on it, and over ssh."""
    return request.getfixturevalue(f"slurm_{request.param}_host")
