"""A private OpenSSH server on 127.0.0.1, in its own pid namespace, and the hosts it serves.

- `loop_host`: this account over ssh, running this repo's tunedeck; its jobs run in the server's
  pid namespace, so no local pid check can see them.
- `remote_box`: a separate account with its own empty home (a box that is really apart: it cannot
  read this account's files, and its processes are invisible here).
- `fresh_host`: a new account made for the test session (`fresh_account`), with an empty home
  and no tunedeck: what `tunedeck hosts setup` starts from.

Conftests that need them import the fixtures:
`from sshd_server import loop_host, remote_box, remote_home, sshd`.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import pytest

from tunedeck.core.jobs.hosts import Host, add_host

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
REPO = Path(__file__).resolve().parent.parent
HOST_NAME = "loop"
BOX_NAME = "box"
BOX_USER = "tunedeck-box"


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
    # sshd reads the key list as the user logging in: the box account must be able to reach it.
    keys = Path(tempfile.mkdtemp(prefix="tunedeck-sshd-keys-"))
    keys.chmod(0o755)
    shutil.copy(root / "userkey.pub", keys / "authorized_keys")
    (keys / "authorized_keys").chmod(0o644)
    port = _free_port()
    config = root / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root / 'hostkey'}\n"
        f"AuthorizedKeysFile {keys / 'authorized_keys'}\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\n"
        f"UsePAM no\nPidFile {root / 'sshd.pid'}\nMaxSessions 100\nMaxStartups 100\n"
    )
    os.makedirs("/run/sshd", exist_ok=True)
    # Its own pid namespace: every process a session starts (jobs, agents) is invisible here.
    server = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", SSHD, "-D", "-f", str(config)]
        + ["-E", str(root / "sshd.log")],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
    )
    client_config = root / "ssh_config"
    common = (
        f"  HostName 127.0.0.1\n  Port {port}\n  IdentityFile {root / 'userkey'}\n"
        "  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
        "  LogLevel ERROR\n"
    )
    client_config.write_text(
        f"Host {HOST_NAME}\n  User {getpass.getuser()}\n{common}"
        f"Host {BOX_NAME}\n  User {BOX_USER}\n{common}"
    )
    _wait_until_listening(port, server)
    yield {"config": client_config, "port": port, "root": root, "key": root / "userkey"}
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=10)
    shutil.rmtree(keys, ignore_errors=True)


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


@pytest.fixture(scope="session")
def box_account() -> pwd.struct_passwd:
    """An unprivileged account with its own home: the 'remote box' (made once, reused)."""
    try:
        return pwd.getpwnam(BOX_USER)
    except KeyError:
        pass
    if os.geteuid() != 0:
        pytest.fail(f"making the test account {BOX_USER!r} needs root (useradd)")
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", BOX_USER], check=True)
    subprocess.run(["usermod", "-p", "*", BOX_USER], check=True)  # unlocked, no password
    return pwd.getpwnam(BOX_USER)


@pytest.fixture
def remote_box(sshd, box_account, tmp_path_factory) -> Host:
    """hosts.toml entry 'box': another account over ssh, a fresh workdir and state in its home.

    The box runs this repo's tunedeck through its venv python (readable by every account), the
    way a host whose tunedeck lives in a venv is set up.
    """
    base = Path(tempfile.mkdtemp(prefix="t-", dir=box_account.pw_dir))
    for sub in ("work", "home"):
        (base / sub).mkdir()
    subprocess.run(["chown", "-R", f"{BOX_USER}:", str(base)], check=True)
    host = add_host(
        Host(
            name=BOX_NAME,
            target=BOX_NAME,
            workdir=str(base / "work"),
            command=f"{_box_python(box_account)} -m tunedeck.tui",
            env={"TUNEDECK_HOME": str(base / "home")},
            ssh_options=("-F", str(sshd["config"])),
        )
    )
    yield host
    from tunedeck.core.jobs.ssh import stop_master

    stop_master(host)
    shutil.rmtree(base, ignore_errors=True)


def _box_python(box_account: pwd.struct_passwd) -> str:
    """A venv python of the box account's own, running a copy of this checkout's tunedeck.

    The box never reads this checkout (it may sit under a root-only home, and a box is apart):
    a venv in the box's home, made from the system python of this version, holds a fresh copy
    of src/ and themes/ and reads only third-party packages from this venv's site-packages.
    One venv per checkout, so two checkouts' test runs never share one.
    """
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    checkout = hashlib.sha256(str(REPO).encode()).hexdigest()[:8]
    venv = Path(box_account.pw_dir) / f"venv-{version}-{checkout}"
    site_dir = venv / "lib" / f"python{version}" / "site-packages"
    if not (venv / "bin" / "python").exists():
        system = shutil.which(f"python{version}", path="/usr/local/bin:/usr/bin")
        if system is None:
            pytest.fail(f"no system python{version} for the {BOX_USER} account")
        subprocess.run([system, "-m", "venv", "--without-pip", str(venv)], check=True)
    package = site_dir / "tunedeck"
    shutil.rmtree(package, ignore_errors=True)
    for name, source in (("core", "src/core"), ("tui", "src/tui"), ("themes", "themes")):
        shutil.copytree(  # over what a box process left behind mid-removal, if any
            REPO / source,
            package / name,
            ignore=shutil.ignore_patterns("__pycache__"),
            dirs_exist_ok=True,
        )
    ours = sysconfig.get_paths()["purelib"]  # third-party only: its .pth files are not run
    (site_dir / "tunedeck-tests.pth").write_text(f"import sys; sys.path.append({ours!r})\n")
    subprocess.run(["chown", "-R", f"{BOX_USER}:", str(venv)], check=True)
    boxed = venv / "bin" / "python"
    if not _box_can_run(boxed, report=True):
        pytest.fail(f"{BOX_USER} cannot import tunedeck with {boxed}")
    return str(boxed)


def _box_can_run(python: Path, report: bool = False) -> bool:
    probe = subprocess.run(
        ["su", "-s", "/bin/sh", BOX_USER, "-c", f"{python} -c 'import tunedeck.tui'"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0 and report:
        print(probe.stderr.strip()[-300:], file=sys.stderr)
    return probe.returncode == 0


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


FRESH_NAME = "fresh"


@pytest.fixture(scope="session")
def fresh_account() -> pwd.struct_passwd:
    """A new unprivileged account with an empty home, made for this test session and removed
    after it: a box nobody prepared (no tunedeck, no venv)."""
    if os.geteuid() != 0:
        pytest.fail("making a fresh test account needs root (useradd)")
    user = f"td-fresh-{os.getpid()}-{secrets.token_hex(3)}"  # each conftest makes its own
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", user], check=True)
    subprocess.run(["usermod", "-p", "*", user], check=True)  # unlocked, no password
    yield pwd.getpwnam(user)
    subprocess.run(["userdel", "-r", "-f", user], capture_output=True)


@pytest.fixture
def fresh_host(sshd, fresh_account, tmp_path) -> Host:
    """hosts.toml entry 'fresh': the fresh account over ssh, its own TUNEDECK_HOME and workdir
    in that home, and no command (setup records it)."""
    base = Path(tempfile.mkdtemp(prefix="t-", dir=fresh_account.pw_dir))
    (base / "work").mkdir()
    subprocess.run(["chown", "-R", f"{fresh_account.pw_name}:", str(base)], check=True)
    config = tmp_path / "ssh_config"
    config.write_text(
        Path(sshd["config"]).read_text()
        + f"Host {FRESH_NAME}\n  User {fresh_account.pw_name}\n  HostName 127.0.0.1\n"
        f"  Port {sshd['port']}\n  IdentityFile {sshd['key']}\n  IdentitiesOnly yes\n"
        "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
    )
    host = add_host(
        Host(
            name=FRESH_NAME,
            target=FRESH_NAME,
            workdir=str(base / "work"),
            env={"TUNEDECK_HOME": str(base / "home")},
            ssh_options=("-F", str(config)),
        )
    )
    yield host
    from tunedeck.core.jobs.ssh import stop_master

    stop_master(host)
    shutil.rmtree(base, ignore_errors=True)
