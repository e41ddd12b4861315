"""The jobs tests use the private loopback sshd shared with the runner tests (tests/sshd_server.py)
and a real Slurm (tests/slurm_cluster.py)."""

from __future__ import annotations

from slurm_cluster import slurm_cluster, slurm_host, slurm_local_host, slurm_ssh_host  # noqa: F401, E501
from sshd_server import box_account, loop_host, remote_box, remote_home, sshd  # noqa: F401 - fixtures
