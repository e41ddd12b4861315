"""tunedeck's state is private: registry, hosts.toml and state dirs 0600/0700 whatever the umask,
loose ones tightened with one warning, and an ssh socket folder refused unless ours and 0700."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tunedeck.core.errors import StateError
from tunedeck.core.jobs import ssh
from tunedeck.core.jobs.hosts import Host, add_host, hosts_file, load_hosts
from tunedeck.core.jobs.registry import JobRegistry
from tunedeck.core.locations import state_dir


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


MAKE_STATE_UNDER_UMASK_000 = """
import json, os, stat
os.umask(0)
from tunedeck.core.jobs.hosts import Host, add_host, hosts_file
from tunedeck.core.jobs.local import LocalBackend
from tunedeck.core.jobs.backend import JobSpec
from tunedeck.core.locations import state_dir
backend = LocalBackend()
backend.submit(JobSpec(argv=("true",), name="t", env={"HF_TOKEN": "hf_x"}))
add_host(Host(name="gpu", target="me@gpu", env={"HF_TOKEN": "hf_x"}))
paths = [state_dir().parent, state_dir(), state_dir() / "logs", state_dir() / "jobs.db",
         hosts_file(), hosts_file().parent]
paths += sorted((state_dir() / "logs").iterdir())
print(json.dumps({str(p): stat.S_IMODE(os.stat(p).st_mode) for p in paths}))
"""


def test_state_is_private_under_umask_000(tunedeck_home):
    home = tunedeck_home / "fresh"
    env = {**os.environ, "TUNEDECK_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-c", MAKE_STATE_UNDER_UMASK_000],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    modes = json.loads(done.stdout)
    loose = {path: f"{mode:04o}" for path, mode in modes.items() if mode & 0o077}
    assert not loose, f"readable by others: {loose}"
    assert len(modes) >= 7


def test_loose_state_dir_registry_and_hosts_are_tightened_with_one_warning(capfd):
    state = state_dir()
    state.mkdir(parents=True, mode=0o700)
    JobRegistry().close()
    add_host(Host(name="gpu", target="me@gpu"))
    os.chmod(state, 0o755)
    os.chmod(state / "jobs.db", 0o644)
    os.chmod(hosts_file(), 0o666)
    capfd.readouterr()
    JobRegistry().close()
    JobRegistry().close()
    load_hosts()
    load_hosts()
    assert _mode(state) == 0o700
    assert _mode(state / "jobs.db") == 0o600
    assert _mode(hosts_file()) == 0o600
    err = capfd.readouterr().err
    assert err.count(str(state / "jobs.db")) == 1, err
    assert err.count(str(hosts_file())) == 1, err
    assert "0755" in err and "0700" in err


@pytest.fixture
def long_state(tunedeck_home, monkeypatch):
    """A state path too long for a socket name: control_dir() falls back to /tmp."""
    home = tunedeck_home / ("x" * 60)
    monkeypatch.setenv("TUNEDECK_HOME", str(home))
    yield
    fallback = _fallback()
    if fallback.exists():
        os.chmod(fallback, 0o700)
        os.chown(fallback, os.getuid(), os.getgid())
        fallback.rmdir()


def _fallback() -> Path:
    import hashlib

    digest = hashlib.sha1(str(state_dir() / "ssh").encode()).hexdigest()[:10]
    return Path("/tmp") / f"tunedeck-ssh-{os.getuid()}-{digest}"


def test_socket_dir_fallback_is_made_0700_and_used(long_state):
    made = ssh.control_dir()
    assert made == _fallback()
    assert _mode(made) == 0o700


def test_socket_dir_open_to_all_is_refused(long_state):
    _fallback().mkdir(mode=0o700)
    os.chmod(_fallback(), 0o777)
    with pytest.raises(StateError) as caught:
        ssh.control_dir()
    assert str(_fallback()) in caught.value.message and "0777" in caught.value.message
    assert "rm -r" in caught.value.hint
    with pytest.raises(StateError):
        ssh.ssh_argv(Host(name="h", target="h"), "true")


def test_socket_dir_of_another_account_is_refused(long_state, box_account):
    _fallback().mkdir(mode=0o700)
    os.chown(_fallback(), box_account.pw_uid, box_account.pw_gid)
    with pytest.raises(StateError) as caught:
        ssh.control_dir()
    assert f"uid {box_account.pw_uid}" in caught.value.message
