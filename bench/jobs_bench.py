"""Jobs benchmark: remote status, warm remote latency, remote follow throughput and local
append-to-delivery latency, each against a baseline measured in the same run.

Starts a private sshd on 127.0.0.1 (needs openssh-server) and uses a temporary TUNEDECK_HOME.
Run: .venv/bin/python bench/jobs_bench.py
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

FOLLOW_BYTES = 128 << 20


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="tdbench-"))
    os.environ["TUNEDECK_HOME"] = str(work / "local")
    server, ssh_config = start_sshd(work / "sshd")
    try:
        from tunedeck.core.jobs.hosts import Host, add_host

        host = add_host(
            Host(
                name="loop",
                target="loop",
                workdir=str(work / "remote-work"),
                command=f"{sys.executable} -m tunedeck.tui",
                env={"TUNEDECK_HOME": str(work / "remote")},
                ssh_options=("-F", str(ssh_config)),
            )
        )
        remote_figures(host)
        local_figures()
    finally:
        from tunedeck.core.jobs.ssh import stop_master

        stop_master(host)
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)
    return 0


def remote_figures(host) -> None:
    from tunedeck.core.jobs import JobSpec
    from tunedeck.core.jobs.ssh import SshBackend, ssh_argv

    backend = SshBackend(host)
    backend.check()  # opens the master and the agent session

    bare = [timed(lambda: subprocess.run(ssh_argv(host, "true"), check=True)) for _ in range(30)]
    hello = [timed(lambda: backend.request("hello")) for _ in range(200)]
    info = backend.request("hello")  # the answer really comes from the remote agent
    assert info["state_dir"].startswith(host.env["TUNEDECK_HOME"]), info
    one = [timed(lambda: backend.request("status", ids=["none00"])) for _ in range(200)]
    base_ms, warm_ms = ms(bare), ms(hello)
    print(
        f"warm remote request (agent hello): median {warm_ms:.2f} ms, p95 {p95_ms(hello):.2f} ms,"
        f" mean {statistics.mean(hello) * 1000:.2f} ms (target < 50 ms)"
    )
    print(f"warm remote status request (registry read): median {ms(one):.2f} ms")
    print(f"  baseline bare `ssh <ControlMaster> host true`: median {base_ms:.2f} ms")
    print(f"  ratio baseline/agent: {base_ms / warm_ms:.1f}x faster")

    ids = [backend.submit(JobSpec(argv=("sleep", "60"), name=f"bench{i}")).id for i in range(10)]
    calls: list[str] = []
    request = backend.request

    def counting(op, *args, **kwargs):
        calls.append(op)
        return request(op, *args, **kwargs)

    backend.request = counting
    status = [timed(lambda: backend.status(ids)) for _ in range(30)]
    backend.request = request
    per_call = len(calls) / 30
    print(f"status of 10 remote jobs: median {ms(status):.2f} ms, {per_call:.0f} request each")
    print(f"  ratio vs bare ssh true: {ms(status) / base_ms:.2f}x of one bare ssh command")
    for job_id in ids:
        backend.request("cancel", id=job_id, grace=5)

    writer = f"yes 'a line of a training log, 0123456789 abcdefghij' | head -c {FOLLOW_BYTES}"
    job = backend.submit(JobSpec(argv=("sh", "-c", writer), name="bigout"))
    while not backend.status([job.id])[0].state.is_final:
        time.sleep(0.1)
    job = backend.status([job.id])[0]
    start = time.perf_counter()
    received = sum(len(c.data) for c in backend.follow_log(job, 0))
    follow_s = time.perf_counter() - start
    assert received == FOLLOW_BYTES, received
    start = time.perf_counter()
    cat = subprocess.run(ssh_argv(host, "cat", job.log_path), capture_output=True, check=True)
    cat_s = time.perf_counter() - start
    assert len(cat.stdout) == FOLLOW_BYTES
    mb = FOLLOW_BYTES / 1e6
    print(f"remote log follow: {mb / follow_s:.0f} MB/s over {mb:.0f} MB (target >= 20 MB/s)")
    print(f"  baseline `ssh host cat log`: {mb / cat_s:.0f} MB/s")
    print(f"  ratio follow/cat: {cat_s / follow_s:.2f}")
    backend.close()


def local_figures() -> None:
    """A real job prints a timestamped line every 50 ms; how late does a follower see it?"""
    from tunedeck.core.jobs import JobSpec
    from tunedeck.core.jobs.local import LocalBackend
    from tunedeck.core.jobs.logs import read_log_file

    script = (
        "import time\n"
        "time.sleep(1.0)\n"
        "for i in range(60):\n"
        "    print(repr(time.time()), flush=True)\n"
        "    time.sleep(0.05)\n"
    )
    backend = LocalBackend()
    job = backend.submit(JobSpec(argv=(sys.executable, "-c", script), name="stamps"))
    delays = []
    pending = b""
    for chunk in backend.follow_log(job, 0):
        now = time.time()
        pending += chunk.data
        *lines, pending = pending.split(b"\n")
        delays += [now - float(line) for line in lines if line]
    watch_ms, watch_p95 = ms(delays), p95_ms(delays)

    job = backend.submit(JobSpec(argv=(sys.executable, "-c", script), name="stamps-poll"))
    poll_delays, offset, pending = [], 0, b""
    stop = threading.Event()
    while not stop.is_set():
        chunk = read_log_file(job.log_path, offset)
        now = time.time()
        offset = chunk.next_offset
        pending += chunk.data
        *lines, pending = pending.split(b"\n")
        poll_delays += [now - float(line) for line in lines if line]
        if len(poll_delays) >= 60:
            stop.set()
        time.sleep(0.001)
    poll_ms = ms(poll_delays)
    print(
        f"local append-to-delivery (watchfiles follow): median {watch_ms:.1f} ms,"
        f" p95 {watch_p95:.1f} ms over {len(delays)} lines (target < 100 ms)"
    )
    print(f"  baseline 1 ms busy-poll reader: median {poll_ms:.1f} ms")
    print(f"  ratio follow/poll: {watch_ms / max(poll_ms, 1e-3):.1f}x (poll burns a core)")


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def p95_ms(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.95) - 1] * 1000


def start_sshd(root: Path):
    """A private key-only sshd on a random port; returns (process, client config path)."""
    root.mkdir(parents=True)
    for key in ("hostkey", "userkey"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / key)], check=True
        )
    shutil.copy(root / "userkey.pub", root / "authorized_keys")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (root / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root / 'hostkey'}\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
        f"StrictModes no\nUsePAM no\nPidFile {root / 'sshd.pid'}\n"
    )
    os.makedirs("/run/sshd", exist_ok=True)
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    server = subprocess.Popen([sshd, "-D", "-f", str(root / "sshd_config")])
    config = root / "ssh_config"
    config.write_text(
        f"Host loop\n  HostName 127.0.0.1\n  Port {port}\n  User {getpass.getuser()}\n"
        f"  IdentityFile {root / 'userkey'}\n  IdentitiesOnly yes\n"
        "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    return server, config


if __name__ == "__main__":
    sys.exit(main())
