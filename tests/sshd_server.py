"""A private OpenSSH server on 127.0.0.1 and a host entry that reaches this repo over it.

Conftests that need it import the fixtures: `from sshd_server import loop_host, remote_home, sshd`.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tunedeck.core.jobs.hosts import Host, add_host

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
HOST_NAME = "loop"


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    """A key-auth-only sshd on a random high port; yields its client config, port, dir and key."""
    if not os.path.exists(SSHD):
        pytest.fail("sshd is missing: run `make sysdeps` (installs openssh-server)")
    root = tmp_path_factory.mktemp("sshd")
    for key in ("hostkey", "userkey"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / key)], check=True
        )
    shutil.copy(root / "userkey.pub", root / "authorized_keys")
    port = _free_port()
    config = root / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root / 'hostkey'}\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\n"
        f"UsePAM no\nPidFile {root / 'sshd.pid'}\nMaxSessions 100\nMaxStartups 100\n"
    )
    os.makedirs("/run/sshd", exist_ok=True)
    server = subprocess.Popen([SSHD, "-D", "-f", str(config), "-E", str(root / "sshd.log")])
    client_config = root / "ssh_config"
    client_config.write_text(
        f"Host {HOST_NAME}\n  HostName 127.0.0.1\n  Port {port}\n  User {getpass.getuser()}\n"
        f"  IdentityFile {root / 'userkey'}\n  IdentitiesOnly yes\n"
        "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
    )
    _wait_until_listening(port, server)
    yield {"config": client_config, "port": port, "root": root, "key": root / "userkey"}
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture
def remote_home(tmp_path_factory) -> Path:
    """The TUNEDECK_HOME of the 'remote' side (a different dir from the local one)."""
    return tmp_path_factory.mktemp("remote-home")


@pytest.fixture
def loop_host(sshd, remote_home, tmp_path_factory) -> Host:
    """hosts.toml entry 'loop': this machine over ssh, running this repo's tunedeck."""
    workdir = tmp_path_factory.mktemp("remote-work")
    host = add_host(
        Host(
            name=HOST_NAME,
            target=HOST_NAME,
            workdir=str(workdir),
            command=f"{sys.executable} -m tunedeck.tui",
            env={"TUNEDECK_HOME": str(remote_home)},
            ssh_options=("-F", str(sshd["config"])),
        )
    )
    yield host
    from tunedeck.core.jobs.ssh import stop_master

    stop_master(host)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_listening(port: int, server: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if server.poll() is not None:
            raise AssertionError(f"sshd exited with {server.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for sshd to listen")
        time.sleep(0.05)
