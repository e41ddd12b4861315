"""Jobs on a remote box: the system `ssh` (multiplexed) running `tunedeck agent` there.

One agent session per host stays open while this backend lives, so a warm request costs
one round trip over the shared connection, not an ssh handshake and a Python start-up.
Every remote command is built from argument lists with shlex.join; job data travels as
JSON over the channel, never through a remote shell.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shlex
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson

from tunedeck.core.errors import (
    DiskFullError,
    HostError,
    JobError,
    Location,
    StateError,
    TunedeckError,
)
from tunedeck.core.jobs.backend import DEFAULT_GRACE, CancelResult, JobSpec
from tunedeck.core.jobs.gpus import Gpu
from tunedeck.core.jobs.hosts import Host, get_host
from tunedeck.core.jobs.logs import LogChunk
from tunedeck.core.jobs.metrics import MetricPoint
from tunedeck.core.jobs.model import Job
from tunedeck.core.jobs.registry import JobRegistry
from tunedeck.core.locations import ensure, state_dir

PROTOCOL = 1
FOLLOW_CHUNK = 8 << 20
FOLLOW_WAIT = 1.0
RECONNECT_FOR = 60.0  # how long a follow keeps retrying a dropped connection
INSTALL_HINT = (
    "set the host up: tunedeck hosts setup {name} (or pip install tunedeck there and give "
    "its command: tunedeck hosts add {name} {target} --command '/path/to/venv/bin/tunedeck')"
)


HELLO_TIMEOUT = 60.0  # how long a starting agent may take to answer
PID_MARK = b"tunedeck-agent-pid "


class ConnectionLost(HostError):
    """The ssh channel closed under a request; a retry on a fresh channel may succeed."""


def control_dir() -> Path:
    """Where ControlMaster sockets live: <state>/ssh, or a short /tmp path if that is too long
    for a unix socket name (%C adds 40 characters, ssh a temporary 17)."""
    preferred = state_dir() / "ssh"
    if len(str(preferred)) <= 40:
        return checked_socket_dir(ensure(preferred))
    digest = hashlib.sha1(str(preferred).encode()).hexdigest()[:10]
    fallback = Path("/tmp") / f"tunedeck-ssh-{os.getuid()}-{digest}"
    try:
        fallback.mkdir(mode=0o700)
    except FileExistsError:
        pass
    return checked_socket_dir(fallback)


def checked_socket_dir(path: Path) -> Path:
    """`path` if it is a real folder of ours that nobody else can enter (0700); else refused,
    since whoever controls it could hijack or spy on our ssh connections."""
    info = os.lstat(path)
    mode = stat.S_IMODE(info.st_mode)
    if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not mode & 0o077:
        return path
    if not stat.S_ISDIR(info.st_mode):
        why = "it is not a folder"
    elif info.st_uid != os.getuid():
        why = f"it belongs to uid {info.st_uid}, not to you"
    else:
        why = f"its mode is {mode:04o}, not 0700"
    raise StateError(
        f"refusing the ssh socket folder {path}: {why}",
        hint=f"remove it (rm -r {path}) or set TUNEDECK_HOME to a shorter path of yours",
    )


def ssh_argv(host: Host, *remote: str) -> list[str]:
    """`ssh` with multiplexing and batch mode; the host's own options come first and win."""
    return [
        "ssh",
        *host.ssh_options,
        "-T",
        "-o",
        "BatchMode=yes",
        "-o",
        "ControlMaster=auto",
        "-o",
        f"ControlPath={control_dir()}/%C",
        "-o",
        "ControlPersist=300",
        "-o",
        "ServerAliveInterval=5",
        "-o",
        "ServerAliveCountMax=3",
        "-o",
        "ConnectTimeout=10",
        "-o",
        "LogLevel=ERROR",
        host.target,
        *remote,
    ]


def agent_command(host: Host) -> str:
    """The remote command line for `tunedeck agent`, quoted for the remote shell."""
    argv = shlex.split(host.command) + ["agent"]
    if host.workdir:
        argv += ["--workdir", host.workdir]
    env = {**host.env, **_scheduler_env(host)}
    if env:
        argv = ["env", *[f"{k}={v}" for k, v in env.items()], *argv]
    return shlex.join(argv)


def _scheduler_env(host: Host) -> dict[str, str]:
    """A Slurm host's agent serves a SlurmBackend: told so by its environment."""
    if not host.is_slurm:
        return {}
    from tunedeck.core.jobs.slurm import agent_env

    return agent_env(host)


def agent_launch(host: Host) -> str:
    """The remote shell line that starts the agent after telling us (on stderr) its pid, so
    that an agent which never answers can be ended on the box when we give up on it."""
    return f"echo {PID_MARK.decode().strip()} $$ >&2; exec {agent_command(host)}"


def kill_remote(host: Host, pid: int) -> None:
    """End the remote process group `pid` (and `pid`) over the shared connection; best effort."""
    script = (
        f"kill -TERM -{pid} {pid} 2>/dev/null; sleep 1; kill -KILL -{pid} {pid} 2>/dev/null; true"
    )
    try:
        subprocess.run(ssh_argv(host, script), capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        pass


class SshBackend:
    """The backend of one remote host; local registry rows mirror the remote jobs."""

    def __init__(self, host: Host, registry: JobRegistry | None = None):
        self.host_config = host
        self.host = host.name
        self.scheduler = host.scheduler  # "slurm": the agent there submits with sbatch
        self.registry = registry or JobRegistry()
        self._session: AgentSession | None = None
        self._lock = threading.Lock()
        self.hello: dict | None = None

    @classmethod
    def for_host(cls, name: str) -> SshBackend:
        return cls(get_host(name))

    # -- the Backend interface -------------------------------------------------------------

    def submit(self, spec: JobSpec) -> Job:
        job_id = spec.id or self.registry.new_id()
        doc = {**spec.to_dict(), "id": job_id}
        return self._mirror(self.request("submit", spec=doc))

    def submit_array(self, specs: list[JobSpec]) -> list[Job]:
        """A Slurm host's job array: one sbatch on the login node (see SlurmBackend)."""
        docs = [{**spec.to_dict(), "id": spec.id or self.registry.new_id()} for spec in specs]
        return [self._mirror(doc) for doc in self.request("submit_array", specs=docs)]

    def preview(self, specs: list[JobSpec]) -> str:
        """The sbatch script the login node would write for `specs` (nothing submitted)."""
        return str(self.request("preview", specs=[spec.to_dict() for spec in specs]))

    def info(self):
        """A Slurm host's version and partitions (sinfo on the login node)."""
        from tunedeck.core.jobs.slurm import SlurmInfo

        return SlurmInfo.from_dict(self.request("slurm_info"))

    def status(self, ids: list[str]) -> list[Job]:
        """Fresh records of these jobs, all in one round trip."""
        result = self.request("status", ids=list(ids))
        return [self._mirror(doc) for doc in result["jobs"]]

    def list(self) -> list[Job]:
        return [self._mirror(doc) for doc in self.request("list")]

    def read_log(self, job: Job, offset: int = 0, limit: int = FOLLOW_CHUNK) -> LogChunk:
        return _chunk(self.request("read_log", id=job.id, offset=offset, limit=limit))

    def tail_offset(self, job: Job, lines: int) -> int:
        return int(self.request("tail_offset", id=job.id, lines=lines))

    def follow_log(
        self, job: Job, offset: int = 0, stop_event: threading.Event | None = None
    ) -> Iterator[LogChunk]:
        """Stream the log from `offset` until the job ended and all bytes arrived.

        A dropped connection is retried on a fresh one from the last delivered offset, so
        no byte is lost or repeated.
        """
        while not (stop_event and stop_event.is_set()):
            doc = self._request_retrying(
                "read_log", id=job.id, offset=offset, limit=FOLLOW_CHUNK, wait=FOLLOW_WAIT
            )
            chunk = _chunk(doc)
            if chunk.data or chunk.truncated:
                yield chunk
            offset = chunk.next_offset
            if doc["final"]:
                return

    def cancel(self, job: Job, grace: float = DEFAULT_GRACE) -> CancelResult:
        doc = self.request("cancel", id=job.id, grace=grace, timeout=grace + 60)
        return CancelResult(
            self._mirror(doc["job"]),
            doc["signal"],
            tuple(doc["survivors"]),
            tuple(doc.get("leftovers") or ()),
        )

    def remove(self, job: Job) -> None:
        self.request("rm", id=job.id)
        self.registry.remove(job.id)

    def metrics(self, job: Job) -> list[MetricPoint]:
        return [MetricPoint(**p) for p in self.request("metrics", id=job.id)]

    def gpus(self) -> list[Gpu]:
        return [Gpu.from_dict(g) for g in self.request("gpus")]

    def add_watched(self, output_dir: str, name=None, log=None, pid=None) -> Job:
        """Watch a run folder on the host (in its registry), mirrored here."""
        doc = self.request("watch_add", output_dir=output_dir, name=name, log=log, pid=pid)
        return self._mirror(doc)

    def scan_watched(self, folders: list[str]) -> dict:
        """The host adds the new run folders under `folders`; those added are mirrored here."""
        found = self.request("watch_scan", folders=list(folders))
        return {**found, "added": [self._mirror(doc) for doc in found["added"]]}

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    # -- the channel ---------------------------------------------------------------------

    def check(self) -> dict:
        """Connect (or reuse the connection) and return the agent's hello."""
        with self._lock:
            self._connected()
        return dict(self.hello or {})

    def request(self, op: str, timeout: float | None = None, **args):
        """One request, one answer. A connection lost under it is retried once, fresh."""
        with self._lock:
            for attempt in (1, 2):
                session = self._connected()
                try:
                    return _result(session.call(op, args, timeout), self.host_config)
                except ConnectionLost:
                    self.close()
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")

    def _request_retrying(self, op: str, **args):
        deadline = time.monotonic() + RECONNECT_FOR
        delay = 0.1
        while True:
            try:
                return self.request(op, **args)
            except ConnectionLost:
                if time.monotonic() > deadline:
                    raise
            except HostError as error:
                if "unreachable" not in error.message or time.monotonic() > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _connected(self) -> AgentSession:
        if self._session is not None and self._session.alive():
            return self._session
        self.close()
        host = self.host_config
        session = AgentSession(
            ssh_argv(host, agent_launch(host)), on_give_up=lambda pid: kill_remote(host, pid)
        )
        try:
            hello = session.call("hello", {}, timeout=HELLO_TIMEOUT)
        except ConnectionLost:
            code, text = session.exit_code(), session.stderr_text()
            raise connection_error(self.host_config, code, text) from None
        if not hello.get("ok"):
            raise too_old(self.host_config, hello.get("error", {}).get("message", ""))
        result = hello["result"]
        if int(result.get("protocol", 0)) < PROTOCOL:
            raise too_old(self.host_config, f"agent protocol {result.get('protocol')}")
        self.hello, self._session = result, session
        return session

    def _mirror(self, doc: dict) -> Job:
        job = Job.from_dict(doc).evolve(host=self.host)
        return self.registry.put(job)


class AgentSession:
    """A running `ssh HOST tunedeck agent`: write a request line, read its answer line."""

    def __init__(self, argv: list[str], on_give_up: Callable[[int], None] | None = None):
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self._stderr = bytearray()
        self._seq = 0
        self._on_give_up = on_give_up
        self.remote_pid: int | None = None
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def call(self, op: str, args: dict, timeout: float | None = None) -> dict:
        self._seq += 1
        line = orjson.dumps({"v": PROTOCOL, "seq": self._seq, "op": op, **args}) + b"\n"
        timer = None
        if timeout:
            timer = threading.Timer(timeout, self.give_up)
            timer.daemon = True
            timer.start()
        try:
            self.proc.stdin.write(line)
            self.proc.stdin.flush()
            answer = self.proc.stdout.readline()
        except (BrokenPipeError, OSError, ValueError) as error:
            raise ConnectionLost(f"connection lost: {error}") from error
        finally:
            if timer:
                timer.cancel()
        if not answer.endswith(b"\n"):
            raise ConnectionLost("connection lost")
        doc = orjson.loads(answer)
        if doc.get("seq") != self._seq:
            raise ConnectionLost("out-of-order answer from the agent")
        return doc

    def alive(self) -> bool:
        return self.proc.poll() is None

    def exit_code(self) -> int | None:
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            return None

    def stderr_text(self) -> str:
        time.sleep(0.05)  # let the reader thread catch the last bytes
        lines = bytes(self._stderr).splitlines(keepends=True)
        return b"".join(line for line in lines if not line.startswith(PID_MARK)).decode(
            "utf-8", "replace"
        )

    def give_up(self) -> None:
        """No answer in time: close the channel and end the agent on the box as well (one
        stuck in a request never reads the end of its stdin)."""
        if self.remote_pid is not None and self._on_give_up is not None:
            self._on_give_up(self.remote_pid)  # first: the channel then closes by itself
        self.close()

    def close(self) -> None:
        for stream in (self.proc.stdin,):
            try:
                stream.close()
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()

    def _drain_stderr(self) -> None:
        for chunk in iter(lambda: self.proc.stderr.read1(4096), b""):
            self._stderr += chunk
            if self.remote_pid is None:
                self.remote_pid = _marked_pid(self._stderr)
            del self._stderr[:-65536]


def _marked_pid(stderr: bytes) -> int | None:
    """The pid the agent's launch line announced on stderr, once its line is complete."""
    start = stderr.find(PID_MARK)
    end = stderr.find(b"\n", start)
    if start == -1 or end == -1:
        return None
    try:
        return int(stderr[start + len(PID_MARK) : end])
    except ValueError:
        return None


def connection_error(host: Host, code: int | None, stderr: str) -> HostError:
    """Say plainly why the agent session could not start."""
    text = stderr.strip()
    last = text.splitlines()[-1] if text else f"ssh exited with {code}"
    where = f"{host.name} ({host.target})"
    if "Permission denied" in text or "Too many authentication failures" in text:
        return HostError(
            f"{where}: authentication refused: {last}",
            hint=f"`ssh {host.target}` must log in without a password prompt "
            "(BatchMode): load the key into ssh-agent or set IdentityFile in ~/.ssh/config",
        )
    if code == 255:
        return HostError(
            f"{where}: host unreachable: {last}",
            hint=f"check the name, port and network; try `ssh {host.target} true`",
        )
    if code == 127 or "command not found" in text or "No such file or directory" in text:
        return HostError(
            f"{where}: tunedeck is missing on the host ({host.command!r}): {last}",
            hint=INSTALL_HINT.format(name=host.name, target=host.target),
        )
    if "No such command" in text or "No module named" in text:
        return too_old(host, last)
    return HostError(f"{where}: the remote agent did not start: {last}")


def too_old(host: Host, detail: str) -> HostError:
    return HostError(
        f"{host.name}: the remote tunedeck is too old to run jobs ({detail})",
        hint="upgrade it on the host: pip install -U tunedeck",
    )


def _result(doc: dict, host: Host):
    if doc.get("ok"):
        return doc.get("result")
    error = doc.get("error") or {}
    kind, message, hint = error.get("type"), error.get("message", ""), error.get("hint")
    if kind == "DiskFull":
        return _raise(
            DiskFullError(f"{host.name}: remote {message}", hint="free space on the host")
        )
    if kind == "DiskFullError":
        return _raise(
            DiskFullError(
                f"{host.name}: remote disk full: {message}", hint="free space on the host"
            )
        )
    if kind == "StateError":
        return _raise(StateError(f"{host.name}: {message}", hint=hint))
    if kind == "HostError":
        return _raise(HostError(f"{host.name}: {message}", hint=hint))
    if kind == "SlurmError":
        from tunedeck.core.jobs.slurm import SlurmError

        where = error.get("location") or {}
        return _raise(
            SlurmError(
                f"{host.name}: {message}",
                hint=hint,
                location=Location(where.get("file"), column=where.get("column")) if where else None,
            )
        )
    if kind in ("JobError", "UsageError", "ConfigError"):
        return _raise(JobError(f"{host.name}: {message}", hint=hint))
    return _raise(TunedeckError(f"{host.name}: {kind}: {message}", hint=hint))


def _raise(error: Exception):
    raise error


def _chunk(doc: dict) -> LogChunk:
    return LogChunk(
        base64.b64decode(doc["data"]),
        doc["offset"],
        doc["next_offset"],
        doc["size"],
        doc["truncated"],
    )


def master_pid(host: Host) -> int | None:
    """The pid of the running ControlMaster for this host, if one is up."""
    done = subprocess.run(_control(host, "check"), capture_output=True, text=True, timeout=15)
    text = done.stderr + done.stdout
    if done.returncode != 0 or "pid=" not in text:
        return None
    return int(text.split("pid=", 1)[1].split(")", 1)[0])


def stop_master(host: Host) -> None:
    """Close the shared connection to this host (jobs on it keep running)."""
    subprocess.run(_control(host, "exit"), capture_output=True, timeout=15)


def _control(host: Host, command: str) -> list[str]:
    argv = ssh_argv(host)
    return argv[:-1] + ["-O", command, argv[-1]]
