"""Two Slurm nodes on one machine: two slurmd (`-N n1`, `-N n2`) with their own loopback address
(127.0.0.2, 127.0.0.3) and port under one slurmctld, written by slurm_cluster's conf writer.

Both slurmd run on this machine and share its disk, as cluster nodes share a file system.
Conftests that need it import the fixture: `from slurm_nodes import slurm_two_nodes`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from slurm_cluster import (
    PARTITION,
    SlurmCluster,
    SlurmNode,
    free_port,
    start_cluster,
    stop_cluster,
    write_slurm_conf,
)

NODE_ADDRESSES = {"n1": "127.0.0.2", "n2": "127.0.0.3"}


@pytest.fixture(scope="session")
def slurm_two_nodes(tmp_path_factory) -> Iterator[SlurmCluster]:
    """A Slurm of two nodes (n1, n2; 2 CPUs each, partition 'debug') for the whole session."""
    if os.geteuid() != 0:
        pytest.fail("the Slurm fixture starts slurmd, which needs root")
    root = Path(tmp_path_factory.mktemp("slurm-two-nodes"))
    nodes = [
        SlurmNode(name=name, address=address, port=free_port())
        for name, address in NODE_ADDRESSES.items()
    ]
    conf = write_slurm_conf(root, nodes, cluster_name="tunedeck2")
    cluster = start_cluster(conf, nodes, PARTITION)
    yield cluster
    stop_cluster(cluster)
