"""One warm backend per host, shared by every face: job states across hosts, host probes.

The CLI makes a pool for one command; a screen keeps one for its life, so a request to a host
after the first is a round trip over an open agent session. A host that failed rests
`rest_seconds` before it is asked again (its jobs keep their last known state meanwhile).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from tunedeck.core.errors import HostError, TunedeckError
from tunedeck.core.jobs.backend import DEFAULT_GRACE, Backend, CancelResult
from tunedeck.core.jobs.gpus import Gpu
from tunedeck.core.jobs.hosts import Host, hosts_file, load_hosts
from tunedeck.core.jobs.logs import DEFAULT_LIMIT, LogChunk
from tunedeck.core.jobs.metrics import MetricPoint
from tunedeck.core.jobs.model import LOCAL_HOST, Job

REST_SECONDS = 30.0


@dataclass(frozen=True)
class Refreshed:
    """Jobs as they are now, in the order asked; hosts that failed this time, with why."""

    jobs: tuple[Job, ...]
    unreachable: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HostProbe:
    """Whether a host answers, how fast (None for this box), its GPUs or why it failed."""

    name: str
    target: str
    reachable: bool
    latency: float | None = None
    gpus: tuple[Gpu, ...] = ()
    error: str | None = None
    # A Slurm host: Slurm's version and its partitions (nodes, CPUs and GPUs in use).
    slurm_version: str | None = None
    partitions: tuple = ()


class HostList:
    """hosts.toml, read again only when it changed: cheap enough to ask every refresh."""

    def __init__(self) -> None:
        self._stamp: tuple | None = None
        self._hosts: dict[str, Host] = {}

    def current(self) -> dict[str, Host]:
        """The hosts by name, as the file says now (a host added by the CLI shows up)."""
        stamp = _file_stamp(str(hosts_file()))
        if stamp != self._stamp:
            self._hosts = load_hosts()
            self._stamp = stamp
        return dict(self._hosts)


class BackendPool:
    """Backends by host: one warm SshBackend per remote host, a LocalBackend per thread."""

    def __init__(
        self,
        *,
        rest_seconds: float = REST_SECONDS,
        remote_every: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.rest_seconds = rest_seconds
        self.remote_every = remote_every  # a screen asks a host at most this often
        self.hosts = HostList()
        self._clock = clock
        self._remote: dict[str, Backend] = {}
        self._failed_at: dict[str, float] = {}
        self._asked_at: dict[str, float] = {}
        self._lock = threading.Lock()
        self._local = threading.local()

    # -- backends -------------------------------------------------------------------------

    def backend(self, host: str | None) -> Backend:
        """The warm backend of `host` (None or "local": this box's, one per thread)."""
        if host is None or host == LOCAL_HOST:
            return self._local_backend()
        entry = self.hosts.current().get(host)
        with self._lock:
            backend = self._remote.get(host)
            if backend is not None and entry is not None and backend.host_config != entry:
                backend.close()  # hosts.toml changed it (a setup recorded its command)
                backend = None
            if backend is None:
                from tunedeck.core.jobs import backend_for
                from tunedeck.core.jobs.hosts import get_host

                backend = backend_for(entry or get_host(host))
                self._remote[host] = backend
            return backend

    def resting(self, host: str) -> bool:
        """True while a host that failed is left alone."""
        failed = self._failed_at.get(host)
        return failed is not None and self._clock() - failed < self.rest_seconds

    def close(self) -> None:
        with self._lock:
            backends, self._remote = list(self._remote.values()), {}
        for backend in backends:
            backend.close()

    def __enter__(self) -> BackendPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- job states -----------------------------------------------------------------------

    def jobs(self, host: str | None = None) -> Refreshed:
        """Every job in this box's registry (one host's when given), oldest first, refreshed."""
        return self.refresh(self._local_backend().registry.list(host))

    def refresh(self, jobs: Iterable[Job]) -> Refreshed:
        """Fresh states: this box's jobs checked here, each host's in one request.

        A local check only ever touches local jobs; a resting host, or one asked less than
        `remote_every` seconds ago, keeps its jobs' recorded states.
        """
        jobs = list(jobs)
        fresh = {job.id: job for job in jobs}
        by_host: dict[str, list[str]] = {}
        for job in jobs:
            if job.state.is_final:
                continue
            if job.is_local:
                fresh[job.id] = self._local_backend().refresh(job)
            else:
                by_host.setdefault(job.host, []).append(job.id)
        unreachable = {}
        for host, ids in by_host.items():
            if self.resting(host) or not self._due(host):
                continue
            try:
                fresh.update({job.id: job for job in self.backend(host).status(ids)})
            except TunedeckError as error:
                self._fail(host)
                unreachable[host] = error.message
        return Refreshed(tuple(fresh[job.id] for job in jobs), unreachable)

    # -- one job --------------------------------------------------------------------------

    def read_log(self, job: Job, offset: int = 0, limit: int = DEFAULT_LIMIT) -> LogChunk:
        return self._call(job.host, lambda backend: backend.read_log(job, offset, limit))

    def metrics(self, job: Job) -> list[MetricPoint]:
        """The job's own metric points (see metrics.read_job_metrics)."""
        return self._call(job.host, lambda backend: backend.metrics(job))

    def cancel(self, job: Job, grace: float = DEFAULT_GRACE) -> CancelResult:
        """Cancel on a backend of its own: a long grace must not hold up the warm session."""
        from tunedeck.core.jobs import cancel

        return cancel(job, grace)

    # -- hosts ----------------------------------------------------------------------------

    def probe(self, name: str) -> HostProbe:
        """Ask a host (always, even a resting one: a probe is how it comes back) for its GPUs."""
        target = "this machine"
        if name != LOCAL_HOST:
            host = self.hosts.current().get(name)
            target = host.target if host else name
        started = self._clock()
        try:
            backend = self.backend(name)
            if name != LOCAL_HOST:
                backend.check()
            gpus = tuple(backend.gpus())
            slurm = backend.info() if getattr(backend, "scheduler", None) == "slurm" else None
        except TunedeckError as error:
            self._fail(name)
            return HostProbe(name, target, reachable=False, error=str(error))
        self._failed_at.pop(name, None)
        latency = None if name == LOCAL_HOST else self._clock() - started
        if slurm is not None:
            return HostProbe(
                name, target, True, latency, gpus, None, slurm.version, slurm.partitions
            )
        return HostProbe(name, target, reachable=True, latency=latency, gpus=gpus)

    # -- helpers --------------------------------------------------------------------------

    def _local_backend(self) -> Backend:
        backend = getattr(self._local, "backend", None)
        if backend is None:  # sqlite connections are not shared between threads
            from tunedeck.core.jobs.local import LocalBackend

            backend = self._local.backend = LocalBackend()
        return backend

    def _call(self, host: str, action):
        if host != LOCAL_HOST and self.resting(host):
            raise HostError(f"{host}: unreachable, retrying in a moment")
        try:
            return action(self.backend(host))
        except HostError:
            if host != LOCAL_HOST:
                self._fail(host)
            raise

    def _due(self, host: str) -> bool:
        now = self._clock()
        if now - self._asked_at.get(host, -self.remote_every - 1) < self.remote_every:
            return False
        self._asked_at[host] = now
        return True

    def _fail(self, host: str) -> None:
        with self._lock:
            self._failed_at[host] = self._clock()
            backend = self._remote.pop(host, None)
        if backend is not None:
            backend.close()


def _file_stamp(path: str) -> tuple | None:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
