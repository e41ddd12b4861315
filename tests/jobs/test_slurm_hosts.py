"""Slurm hosts in hosts.toml: `hosts add --slurm` and its defaults, and how a login node's agent
is told to submit with sbatch (no Slurm needed)."""

from __future__ import annotations

import shlex

from jobs_helpers import cli

from tunedeck.core.jobs.hosts import hosts_file, load_hosts
from tunedeck.core.jobs.ssh import agent_command


def test_hosts_add_slurm_keeps_the_scheduler_and_its_defaults():
    cli("hosts", "add", "cluster", "me@login.example", "--slurm", "--partition", "gpu",
        "--account", "proj", "--qos", "high")  # fmt: skip
    host = load_hosts()["cluster"]
    assert (host.scheduler, host.partition, host.account, host.qos) == (
        "slurm",
        "gpu",
        "proj",
        "high",
    )
    assert 'scheduler = "slurm"' in hosts_file().read_text()
    listed = cli("hosts").stdout
    assert "slurm (partition=gpu, account=proj, qos=high)" in listed
    words = shlex.split(agent_command(host))
    assert words[:1] == ["env"] and "TUNEDECK_SCHEDULER=slurm" in words
    assert "TUNEDECK_SCHEDULER_HOST=cluster" in words and "TUNEDECK_SLURM_PARTITION=gpu" in words


def test_slurm_defaults_need_slurm_and_target_local_needs_a_slurm_host():
    refused = cli("hosts", "add", "box", "me@box", "--partition", "gpu", check=False)
    assert refused.returncode == 2 and "--partition is a Slurm default" in refused.stderr
    here = cli("hosts", "add", "here", "local", check=False)
    assert here.returncode == 2 and "only a Slurm host" in here.stderr
    assert load_hosts() == {}
    cli("hosts", "add", "here", "local", "--slurm")
    assert load_hosts()["here"].is_this_machine
