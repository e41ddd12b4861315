"""Jobs on a Slurm cluster: sbatch, squeue, scontrol, sacct, scancel and sinfo on its login node.

A SlurmBackend runs where those commands work: directly when tunedeck runs on the login node
(a host whose target is `local`), or inside `tunedeck agent` there when reached over ssh.
Its jobs live in that machine's registry with the scheduler's id, state and reason. One refresh
of any number of jobs is one squeue call; Slurm is never asked per job unless a job left the queue.
"""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from tunedeck.core.errors import HostError, JobError, Location
from tunedeck.core.jobs import logs, metrics
from tunedeck.core.jobs.backend import DEFAULT_GRACE, CancelResult, JobSpec, Resources
from tunedeck.core.jobs.gpus import Gpu, query_gpus
from tunedeck.core.jobs.hosts import Host
from tunedeck.core.jobs.model import KINDS, Job, JobState
from tunedeck.core.jobs.registry import JobRegistry
from tunedeck.core.jobs.slurm_script import (
    DEFAULT_SIGNAL_LEAD,
    ScriptOptions,
    ScriptTask,
    render_script,
)
from tunedeck.core.jobs.slurm_states import (
    QUEUE_ORDER_FORMAT,
    QUEUE_ORDER_SORT,
    SINFO_NODE_FORMAT,
    SQUEUE_FORMAT,
    WHY_MESSAGES,
    Partition,
    QueueEntry,
    exit_code_of,
    memory_mb,
    parse_queue_order,
    parse_scontrol_job,
    parse_sinfo_nodes,
    parse_squeue,
    tunedeck_state,
)
from tunedeck.core.locations import ensure, state_dir

SLURM_TIMEOUT = 60.0
REFRESH_EVERY = 1.0  # a log follow asks Slurm about its job at most this often
POSITION_EVERY = 10.0  # the queue's order (one more squeue call) is asked at most this often
CANCEL_POLL = 0.5
KILL_WAIT = 30.0
SIGNAL_LEAD_ENV = "TUNEDECK_SLURM_SIGNAL_LEAD"  # seconds before the limit (tests use less)
RESUMABLE_KINDS = ("train",)
# How `tunedeck agent` on a login node learns it serves a Slurm host (set by the ssh side).
SCHEDULER_ENV = "TUNEDECK_SCHEDULER"
HOST_NAME_ENV = "TUNEDECK_SCHEDULER_HOST"
PARTITION_ENV = "TUNEDECK_SLURM_PARTITION"
ACCOUNT_ENV = "TUNEDECK_SLURM_ACCOUNT"
QOS_ENV = "TUNEDECK_SLURM_QOS"


def agent_env(host: Host) -> dict[str, str]:
    """What the agent of a Slurm host is started with, so that it serves a SlurmBackend."""
    if not host.is_slurm:
        return {}
    values = {SCHEDULER_ENV: "slurm", HOST_NAME_ENV: host.name}
    optional = {PARTITION_ENV: host.partition, ACCOUNT_ENV: host.account, QOS_ENV: host.qos}
    return values | {key: value for key, value in optional.items() if value}


class SlurmError(JobError):
    """Slurm refused a submission or a request; its own words, located at the flag or key."""


@dataclass(frozen=True)
class SlurmInfo:
    """What `hosts check` reports of a cluster: Slurm's version and its partitions."""

    version: str
    partitions: tuple[Partition, ...]

    def to_dict(self) -> dict:
        return {"version": self.version, "partitions": [p.to_dict() for p in self.partitions]}

    @classmethod
    def from_dict(cls, doc: dict) -> SlurmInfo:
        parts = tuple(Partition.from_dict(p) for p in doc.get("partitions") or ())
        return cls(doc.get("version", ""), parts)


class SlurmBackend:
    """The Backend of one Slurm cluster, run on its login node."""

    scheduler = "slurm"

    def __init__(
        self,
        host: str,
        *,
        defaults: Resources | None = None,
        env: dict[str, str] | None = None,
        registry: JobRegistry | None = None,
        host_config: Host | None = None,
    ):
        self.host = host
        self.host_config = host_config
        self.defaults = defaults or Resources()
        self.env = dict(env or {})
        self.registry = registry or JobRegistry()
        self._asked_at: dict[str, float] = {}
        self._accounting: bool | None = None
        # Records as last read or written here, kept until another connection commits.
        self._cache: dict[str, Job] = {}
        self._cache_version: int | None = None
        # Pending jobs' places in their partitions' queues, as last asked (queue_positions).
        self._positions: dict[str, int] = {}
        self._positions_of: frozenset[str] = frozenset()
        self._positions_at = -POSITION_EVERY
        self.position_every = POSITION_EVERY

    @classmethod
    def for_host(cls, host: Host) -> SlurmBackend:
        """The backend of a hosts.toml Slurm entry (its env may carry SLURM_CONF)."""
        defaults = Resources(partition=host.partition, account=host.account, qos=host.qos)
        return cls(host.name, defaults=defaults, env=host.env, host_config=host)

    @classmethod
    def from_agent_env(cls, env: dict[str, str]) -> SlurmBackend | None:
        """The backend an agent serves when its host is a Slurm login node (see agent_env)."""
        if env.get(SCHEDULER_ENV) != "slurm":
            return None
        defaults = Resources(
            partition=env.get(PARTITION_ENV) or None,
            account=env.get(ACCOUNT_ENV) or None,
            qos=env.get(QOS_ENV) or None,
        )
        return cls(env.get(HOST_NAME_ENV) or "slurm", defaults=defaults)

    # -- submitting -----------------------------------------------------------------------

    def submit(self, spec: JobSpec) -> Job:
        """One sbatch of one job; nothing is recorded when sbatch refuses it."""
        return self.submit_array([spec])[0]

    def submit_array(self, specs: list[JobSpec]) -> list[Job]:
        """One sbatch for every spec: a job array (`--array=0-(N-1)`) when there are several.

        Task k runs specs[k]; its Job has scheduler_id "ID_k" and keeps the spec's group and
        group_index. The resources are the first spec's (a sweep shares them).
        """
        if not specs:
            return []
        existing = [self.registry.get(s.id) for s in specs if s.id]
        if existing and len(existing) == len(specs) and all(existing):
            return list(existing)  # a retried submit (a dropped connection)
        jobs, script = self._prepare(specs)
        path = self._write_script(jobs[0], script)
        jobs = [job.evolve(script_path=str(path)) for job in jobs]
        self._check_submission(path, jobs[0].cwd, self.resources_for(specs[0].resources))
        for job in jobs:  # there before Slurm writes to it: a follow can start at once
            Path(job.log_path).touch(mode=0o600)
        try:
            scheduler_id = self._sbatch(path, jobs[0].cwd)
        except SlurmError:
            for job in jobs:
                Path(job.log_path).unlink(missing_ok=True)
            raise
        if len(jobs) == 1:
            ids = [scheduler_id]
        else:
            ids = [f"{scheduler_id}_{k}" for k in range(len(jobs))]
        recorded = []
        for job, sid in zip(jobs, ids, strict=True):
            job = job.evolve(
                scheduler_id=sid,
                scheduler_state="PENDING",
                message=f"submitted as Slurm job {sid}; sbatch script {path}",
            )
            recorded.append(self.registry.add(job))
        return recorded

    def preview(self, specs: list[JobSpec]) -> str:
        """The sbatch script submit_array would write for `specs`; nothing is written."""
        _jobs, script = self._prepare(specs, record=False)
        return script

    def _prepare(self, specs: Sequence[JobSpec], record: bool = True) -> tuple[list[Job], str]:
        for spec in specs:
            if not spec.argv:
                raise JobError("nothing to run: the command is empty")
            if spec.kind not in KINDS:
                raise JobError(f"unknown job kind '{spec.kind}'", hint=f"one of {', '.join(KINDS)}")
        resources = self.resources_for(specs[0].resources)
        log_dir = state_dir() / "logs"
        slurm_dir = state_dir() / "slurm"
        if record:
            ensure(log_dir)
            ensure(slurm_dir)
        ids = [spec.id or (self.registry.new_id() if record else "<id>") for spec in specs]
        array = len(specs) > 1
        log_pattern = str(log_dir / (f"{ids[0]}-%a.log" if array else f"{ids[0]}.log"))
        jobs, tasks = [], []
        for index, (spec, job_id) in enumerate(zip(specs, ids, strict=True)):
            cwd = str(Path(spec.cwd or os.getcwd()).expanduser().absolute())
            if record and not Path(cwd).is_dir():
                raise JobError(f"working directory does not exist: {cwd}")
            output_dir = spec.output_dir
            if output_dir and not os.path.isabs(output_dir):
                output_dir = os.path.normpath(os.path.join(cwd, output_dir))
            log_path = log_pattern.replace("%a", str(index))
            jobs.append(
                Job(
                    id=job_id,
                    name=spec.name,
                    argv=tuple(spec.argv),
                    kind=spec.kind,
                    host=self.host,
                    cwd=cwd,
                    env=dict(spec.env),
                    config=spec.config,
                    output_dir=output_dir,
                    log_path=log_path,
                    command_line=spec.command_line,
                    group=spec.group,
                    group_index=spec.group_index,
                )
            )
            tasks.append(
                ScriptTask(
                    job_id=job_id,
                    argv=tuple(spec.argv),
                    cwd=cwd,
                    exit_path=str(slurm_dir / f"{job_id}.exit"),
                    cancel_path=str(slurm_dir / f"{job_id}.cancel"),
                    env=dict(spec.env),
                    resumable=spec.kind in RESUMABLE_KINDS,
                    output_dir=output_dir,
                )
            )
        options = ScriptOptions(
            name=specs[0].name,
            log_path=log_pattern,
            resources=resources,
            signal_lead=self._signal_lead(),
            body=specs[0].launch_lines,
        )
        return jobs, render_script(tasks, options)

    def resources_for(self, asked: Resources | None) -> Resources:
        """What was asked for, with the host's partition, account and qos where none was."""
        asked = asked or Resources()
        return replace(
            asked,
            partition=asked.partition or self.defaults.partition,
            account=asked.account or self.defaults.account,
            qos=asked.qos or self.defaults.qos,
        )

    def _write_script(self, first: Job, script: str) -> Path:
        """The script beside the config snapshots (<state>/runs), named like them."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = ensure(state_dir() / "runs") / f"{stamp}-{first.id}-{_safe(first.name)}.sbatch"
        path.write_text(script, encoding="utf-8")
        return path

    def _check_submission(self, script: Path, cwd: str | None, resources: Resources) -> None:
        """`sbatch --test-only`: a request no node can ever satisfy is refused here, located
        at the flags that ask for more than the partition's largest node has."""
        done = self._run(["sbatch", "--test-only", str(script)], cwd=cwd)
        if done.returncode == 0:
            return
        error = submission_error(done.stderr or done.stdout, self.host, script)
        if "node configuration" in error.message:
            flags = self._too_big(resources)
            if flags:
                error.location = Location(str(script), column="/".join(flags))
        raise error

    def _too_big(self, resources: Resources) -> list[str]:
        try:
            partitions = self.info().partitions
        except HostError:
            return []
        wanted = resources.partition
        chosen = [p for p in partitions if p.name == wanted or (not wanted and p.default)]
        if not chosen:
            return []
        return chosen[0].too_small_for(
            resources.nodes,
            resources.cpus_per_task,
            resources.gpus_per_node,
            memory_mb(resources.mem),
        )

    def _sbatch(self, script: Path, cwd: str | None) -> str:
        done = self._run(["sbatch", "--parsable", str(script)], cwd=cwd)
        if done.returncode != 0:
            raise submission_error(done.stderr or done.stdout, self.host, script)
        words = done.stdout.strip().splitlines()
        if not words:
            raise SlurmError(
                f"{self.host}: sbatch printed no job id", location=Location(str(script))
            )
        return words[-1].split(";")[0].strip()

    # -- states ---------------------------------------------------------------------------

    def status(self, ids: list[str]) -> list[Job]:
        """These jobs as Slurm says they are now: one squeue call for all of them."""
        return self.refresh_many(self._records(ids))

    def _records(self, ids: Sequence[str]) -> list[Job]:
        """The registry's records of `ids`, read again only when another process wrote."""
        version = self.registry.version()
        if version != self._cache_version:
            self._cache.clear()
            self._cache_version = version
        for job_id in ids:
            if job_id not in self._cache:
                job = self.registry.get(job_id)
                if job is not None:
                    self._cache[job_id] = job
        return [self._cache[job_id] for job_id in ids if job_id in self._cache]

    def list(self) -> list[Job]:
        return self.refresh_many(self.registry.list(self.host))

    def refresh(self, job: Job) -> Job:
        """One job, asked at most every REFRESH_EVERY seconds (a log follow polls often)."""
        if job.state.is_final:
            return job
        now = time.monotonic()
        if now - self._asked_at.get(job.id, -REFRESH_EVERY) < REFRESH_EVERY:
            return self.registry.get(job.id) or job
        self._asked_at[job.id] = now
        return self.refresh_many([job])[0]

    def refresh_many(self, jobs: Sequence[Job]) -> list[Job]:
        """Fresh records: squeue once (and the queue's order while some are pending, at most
        every POSITION_EVERY seconds); jobs it no longer lists from sacct or their exit file."""
        active = [job for job in jobs if not job.state.is_final and job.scheduler_id]
        if not active:
            return list(jobs)
        queue = self.squeue({str(job.scheduler_id) for job in active})
        positions = self.queue_positions(
            [entry for entry in queue.values() if tunedeck_state(entry.state) == JobState.QUEUED]
        )
        missing = [job for job in active if job.scheduler_id not in queue]
        accounted = self.sacct([job.scheduler_id for job in missing]) if missing else {}
        fresh = {}
        for job in active:
            entry = queue.get(job.scheduler_id) or accounted.get(job.scheduler_id)
            updated = self._updated(job, entry, positions.get(str(job.scheduler_id)))
            if updated is not job:
                updated = self.registry.update(
                    job.id, lambda current, u=updated: _merge(current, u)
                )
                self._cache[job.id] = updated
            fresh[job.id] = updated
        return [fresh.get(job.id, job) for job in jobs]

    def squeue(self, wanted: Collection[str] | None = None) -> dict[str, QueueEntry]:
        """Jobs of this account Slurm still knows (finished ones too, while it remembers);
        only the `wanted` ids when given."""
        done = self._run(squeue_argv())
        if done.returncode != 0:
            raise HostError(
                f"{self.host}: squeue failed: {_last_line(done.stderr or done.stdout)}",
                hint="is slurmctld up? (sinfo; SLURM_CONF in the host's env)",
            )
        return parse_squeue(done.stdout, wanted)

    def queue_positions(self, pending: Sequence[QueueEntry]) -> dict[str, int]:
        """Each pending job's place in its partition's queue (every user's pending jobs, in
        Slurm's priority order): one squeue call, asked again only after `position_every`
        seconds or for a pending job not placed yet."""
        if not pending:
            return {}
        ids = {entry.scheduler_id for entry in pending}
        partitions = frozenset(
            name for entry in pending for name in (entry.partition or "").split(",") if name
        )
        recent = time.monotonic() - self._positions_at < self.position_every
        if recent and ids <= self._positions.keys() and partitions <= self._positions_of:
            return self._positions
        argv = ["squeue", "--noheader", "--array", "--states=PENDING"]
        argv += [f"--sort={QUEUE_ORDER_SORT}", f"--format={QUEUE_ORDER_FORMAT}"]
        if partitions:
            argv.append("--partition=" + ",".join(sorted(partitions)))
        done = self._run(argv)
        if done.returncode != 0:
            return self._positions  # a place in the queue is a detail: the states still count
        self._positions = parse_queue_order(done.stdout)
        self._positions_of, self._positions_at = partitions, time.monotonic()
        return self._positions

    def sacct(self, scheduler_ids: list[str]) -> dict[str, QueueEntry]:
        """Finished jobs from Slurm's accounting, when the cluster keeps it."""
        if not scheduler_ids or self._accounting is False:
            return {}
        done = self._run(
            ["sacct", "--noheader", "--parsable2", "--jobs=" + ",".join(scheduler_ids)]
            + ["--format=JobID,State,Reason,Start,NodeList,Elapsed,ExitCode"]
        )
        if done.returncode != 0:
            self._accounting = False  # "Slurm accounting storage is disabled"
            return {}
        self._accounting = True
        found = {}
        for line in done.stdout.splitlines():
            parts = line.split("|")
            if len(parts) >= 6 and "." not in parts[0]:
                found[parts[0]] = QueueEntry(parts[0], parts[1], parts[2] or None, None, None, None)
        return found

    def _updated(self, job: Job, entry: QueueEntry | None, position: int | None = None) -> Job:
        if entry is None:
            return self._left_queue(job).evolve(queue_position=None)
        state = tunedeck_state(entry.state)
        changes: dict = {"scheduler_state": entry.state.split()[0], "queue_position": None}
        if state == JobState.QUEUED:
            changes.update(state=state, reason=entry.pending_reason(), queue_position=position)
        elif not state.is_final:
            changes.update(state=state, reason=None)
            if job.started_at is None:
                changes["started_at"] = time.time()
            if entry.nodes:
                changes["message"] = f"running on {entry.nodes} (Slurm job {job.scheduler_id})"
            progress = metrics.read_job_progress(job)
            changes.update(progress=progress.fraction, last_loss=progress.last_loss)
        else:
            changes.update(self._ended(job, entry.state.split()[0], entry.reason))
        if all(getattr(job, key) == value for key, value in changes.items()):
            return job  # nothing new: most of a long queue on most refreshes
        return job.evolve(**changes)

    def _ended(self, job: Job, slurm_state: str, reason: str | None) -> dict:
        """Final fields of a job Slurm reports as ended: its exit code from the run's file
        (else from scontrol), cancelled if we asked for it."""
        code, why = read_exit_file(self._exit_path(job))
        if code is None:
            shown = parse_scontrol_job(self._scontrol_show(job.scheduler_id))
            code = exit_code_of(shown.get("ExitCode"))
        state = tunedeck_state(slurm_state)
        if job.cancel_requested_at or why == "cancel":
            state = JobState.CANCELLED
        message = WHY_MESSAGES.get(slurm_state)
        if why == "timelimit" and code != 0:
            cause = message or "stopped by Slurm's signal (time limit or preemption)"
            message = f"{cause}; checkpoint saved: `tunedeck runs resume {job.id}` goes on from it"
        progress = metrics.read_job_progress(job)
        return {
            "state": state,
            "exit_code": code,
            "ended_at": job.ended_at or time.time(),
            "reason": reason if state == JobState.FAILED else None,
            "message": message or f"Slurm job {job.scheduler_id} ended {slurm_state}",
            "progress": progress.fraction,
            "last_loss": progress.last_loss,
        }

    def _left_queue(self, job: Job) -> Job:
        """Slurm forgot the job: its exit file says how it ended, else it is lost."""
        code, why = read_exit_file(self._exit_path(job))
        if code is None:
            return job.evolve(
                state=JobState.LOST,
                ended_at=time.time(),
                message=f"Slurm no longer knows job {job.scheduler_id} and it left no exit status",
            )
        if job.cancel_requested_at or why == "cancel":
            state = JobState.CANCELLED
        else:
            state = JobState.SUCCEEDED if code == 0 else JobState.FAILED
        return job.evolve(state=state, exit_code=code, ended_at=job.ended_at or time.time())

    def _scontrol_show(self, scheduler_id: str | None) -> str:
        if not scheduler_id:
            return ""
        done = self._run(["scontrol", "show", "job", "--oneliner", scheduler_id])
        return done.stdout if done.returncode == 0 else ""

    # -- logs, metrics ---------------------------------------------------------------------

    def read_log(self, job: Job, offset: int = 0, limit: int = logs.DEFAULT_LIMIT):
        return logs.read_log_file(job.log_path, offset, limit)

    def tail_offset(self, job: Job, lines: int) -> int:
        return logs.tail_offset(job.log_path, lines)

    def follow_log(
        self, job: Job, offset: int = 0, stop_event: threading.Event | None = None
    ) -> Iterator[logs.LogChunk]:
        def finished() -> bool:
            current = self.registry.get(job.id)
            return current is None or self.refresh(current).state.is_final

        return logs.follow_file(job.log_path, offset, finished=finished, stop_event=stop_event)

    def metrics(self, job: Job) -> list[metrics.MetricPoint]:
        return metrics.read_job_metrics(job)

    def gpus(self) -> list[Gpu]:
        """The login node's own GPUs (a cluster's are in info().partitions)."""
        return query_gpus()

    # -- cancel, remove ---------------------------------------------------------------------

    def cancel(self, job: Job, grace: float = DEFAULT_GRACE) -> CancelResult:
        """`scancel --batch --signal=TERM` (the runner saves a checkpoint), `scancel` after
        `grace` seconds if it still runs; a pending job is simply removed from the queue."""
        job = self.refresh_many([self.registry.get(job.id) or job])[0]
        if job.state.is_final:
            return CancelResult(job, None)
        Path(self._cancel_path(job)).parent.mkdir(parents=True, exist_ok=True)
        Path(self._cancel_path(job)).touch()
        job = self.registry.set(job.id, cancel_requested_at=time.time())
        self._cache.pop(job.id, None)
        if job.state == JobState.QUEUED:
            used = "scancel"
            self._scancel(job)
        else:
            used = "SIGTERM"
            self._scancel(job, "--batch", "--signal=TERM")
            if not self._wait_left(job, grace):
                used = "SIGKILL"
                self._scancel(job)
        self._wait_left(job, KILL_WAIT)
        final = self.refresh_many([self.registry.get(job.id) or job])[0]
        if not final.state.is_final:
            final = self.registry.update(
                job.id, lambda j: j.evolve(state=JobState.CANCELLED, ended_at=time.time())
            )
        final = self.registry.update(
            job.id, lambda j: j.evolve(state=JobState.CANCELLED, cancel_signal=used)
        )
        self._cache[job.id] = final
        return CancelResult(final, used)

    def _scancel(self, job: Job, *flags: str) -> None:
        done = self._run(["scancel", *flags, str(job.scheduler_id)])
        if done.returncode != 0 and "already completing" not in done.stderr:
            raise SlurmError(f"{self.host}: scancel failed: {_last_line(done.stderr)}")

    def _wait_left(self, job: Job, seconds: float) -> bool:
        """True once Slurm lists the job as ended (or no longer lists it)."""
        deadline = time.monotonic() + seconds
        while True:
            entry = self.squeue().get(str(job.scheduler_id))
            if entry is None or tunedeck_state(entry.state).is_final:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(CANCEL_POLL)

    def remove(self, job: Job) -> None:
        job = self.refresh_many([job])[0]
        if not job.state.is_final:
            raise JobError(
                f"job {job.id} is still {job.state.value}",
                hint=f"cancel it first: tunedeck runs cancel {job.id}",
            )
        self.registry.remove(job.id)
        self._cache.pop(job.id, None)
        for path in (job.log_path, self._exit_path(job), self._cancel_path(job)):
            if path:
                Path(path).unlink(missing_ok=True)

    # -- the cluster ----------------------------------------------------------------------

    def check(self) -> dict:
        """What an agent's hello says, for launch (the interpreter) and the Hosts screen."""
        import platform

        from tunedeck.core import __version__

        return {
            "version": __version__,
            "hostname": platform.node(),
            "python": sys.executable,
            "workdir": os.getcwd(),
            "state_dir": str(state_dir()),
            "scheduler": "slurm",
        }

    def info(self) -> SlurmInfo:
        """Slurm's version and the partitions with their nodes, CPUs and GPUs in use (sinfo)."""
        version = self._run(["sinfo", "--version"])
        nodes = self._run(["sinfo", "--noheader", "--Node", f"--Format={SINFO_NODE_FORMAT}"])
        for done in (version, nodes):
            if done.returncode != 0:
                raise HostError(
                    f"{self.host}: sinfo failed: {_last_line(done.stderr or done.stdout)}",
                    hint="is slurmctld up? (SLURM_CONF in the host's env)",
                )
        return SlurmInfo(version.stdout.strip(), tuple(parse_sinfo_nodes(nodes.stdout)))

    def close(self) -> None:
        pass  # the registry is shared with the caller's other uses

    # -- helpers --------------------------------------------------------------------------

    def _run(self, argv: list[str], cwd: str | None = None) -> subprocess.CompletedProcess:
        env = {**os.environ, **self.env}
        try:
            return subprocess.run(
                argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=SLURM_TIMEOUT
            )
        except FileNotFoundError:
            raise HostError(
                f"{self.host}: {argv[0]} not found: this machine is not a Slurm login node",
                hint="install Slurm's client tools (slurm-client) or reach the login node over ssh",
            ) from None
        except subprocess.TimeoutExpired:
            raise HostError(
                f"{self.host}: {argv[0]} did not answer in {SLURM_TIMEOUT:.0f} s"
            ) from None

    def _signal_lead(self) -> int:
        value = self.env.get(SIGNAL_LEAD_ENV) or os.environ.get(SIGNAL_LEAD_ENV)
        return int(value) if value and value.isdigit() else DEFAULT_SIGNAL_LEAD

    def _exit_path(self, job: Job) -> str:
        return str(state_dir() / "slurm" / f"{job.id}.exit")

    def _cancel_path(self, job: Job) -> str:
        return str(state_dir() / "slurm" / f"{job.id}.cancel")


# Which flag (or hosts.toml key) a Slurm refusal is about, by the words it uses.
_ERROR_FLAGS = (
    ("account", "--account"),  # "Invalid account or account/partition combination"
    ("partition", "--partition"),
    ("qos", "--qos"),
    ("time limit", "--time"),
    ("--time", "--time"),
    ("memory", "--mem"),
    ("gres", "--gpus-per-node"),
    ("node count", "--nodes"),
    ("node configuration", "--nodes/--gpus-per-node/--cpus-per-task/--mem"),
    ("cpu count", "--cpus-per-task"),
)


def squeue_argv() -> list[str]:
    """The one squeue call a refresh makes: every job of this account, array tasks one each."""
    argv = ["squeue", "--noheader", "--array", "--states=all", f"--user={_user()}"]
    return [*argv, f"--format={SQUEUE_FORMAT}"]


def submission_error(text: str, host: str, script: Path) -> SlurmError:
    """Slurm's refusal of a script as a located error: which flag it is about, if we can tell."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    said = "; ".join(dict.fromkeys(_strip_prefix(line) for line in lines)) or "sbatch failed"
    lowered = said.lower()
    flag = next((flag for word, flag in _ERROR_FLAGS if word in lowered), None)
    hint = None
    if flag == "--partition":
        hint = "see the partitions with `tunedeck hosts check HOST` (or sinfo)"
    elif flag and "/" in flag:
        hint = "ask for no more than one node of the partition has (`tunedeck hosts check HOST`)"
    return SlurmError(
        f"{host}: Slurm refused the job: {said}",
        location=Location(str(script), column=flag),
        hint=hint,
    )


def read_exit_file(path: str) -> tuple[int | None, str]:
    """The exit code and why ("timelimit", "cancel", "") the batch script wrote, if it did."""
    try:
        words = Path(path).read_text(encoding="utf-8").split()
    except OSError:
        return None, ""
    if not words or not words[0].lstrip("-").isdigit():
        return None, ""
    return int(words[0]), words[1] if len(words) > 1 else ""


def _strip_prefix(line: str) -> str:
    for prefix in ("sbatch: error: ", "allocation failure: ", "sbatch: "):
        if line.startswith(prefix):
            return line[len(prefix) :]
    return line


def _merge(current: Job, updated: Job) -> Job:
    """The refreshed fields onto the registry's record (a cancel request made meanwhile stays)."""
    fields = ("state", "scheduler_state", "reason", "queue_position", "started_at", "ended_at")
    fields += ("exit_code",)
    fields += ("message", "progress", "last_loss")
    if current.state.is_final:
        return current
    return current.evolve(**{name: getattr(updated, name) for name in fields})


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:60] or "job"


def _last_line(text: str) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
