"""Jobs on this box: started through the supervisor, checked by pid + start time."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tunedeck.core.errors import DiskFullError, JobError
from tunedeck.core.jobs import logs, metrics, procs, space, watch
from tunedeck.core.jobs.backend import DEFAULT_GRACE, CancelResult, JobSpec
from tunedeck.core.jobs.gpus import Gpu, query_gpus
from tunedeck.core.jobs.model import KINDS, LOCAL_HOST, Job, JobState
from tunedeck.core.jobs.registry import JobRegistry
from tunedeck.core.locations import ensure, state_dir

# A queued job whose supervisor never reported within this time is lost.
QUEUED_TIMEOUT = 30.0
KILL_WAIT = 10.0
POLL = 0.05


class LocalBackend:
    """Runs jobs on this machine; also what `tunedeck agent` runs on a remote one."""

    host = LOCAL_HOST

    def __init__(self, registry: JobRegistry | None = None):
        self.registry = registry or JobRegistry()

    def submit(self, spec: JobSpec) -> Job:
        """Record the job, start its supervisor (which double-forks) and return at once."""
        if not spec.argv:
            raise JobError("nothing to run: the command is empty")
        if spec.kind not in KINDS:
            raise JobError(f"unknown job kind '{spec.kind}'", hint=f"one of {', '.join(KINDS)}")
        if spec.id is not None and (existing := self.registry.get(spec.id)) is not None:
            return existing  # a retried submit (e.g. after a dropped connection)
        cwd = str(Path(spec.cwd or os.getcwd()).expanduser().absolute())
        if not Path(cwd).is_dir():
            raise JobError(f"working directory does not exist: {cwd}")
        log_dir = ensure(state_dir() / "logs")
        space.require_space(log_dir)
        space.require_space(self.registry.path.parent)
        job_id = spec.id or self.registry.new_id()
        output_dir = spec.output_dir
        if output_dir and not os.path.isabs(output_dir):
            output_dir = os.path.normpath(os.path.join(cwd, output_dir))
        job = Job(
            id=job_id,
            name=spec.name,
            argv=tuple(spec.argv),
            kind=spec.kind,
            cwd=cwd,
            env=dict(spec.env),
            config=spec.config,
            output_dir=output_dir,
            log_path=str(log_dir / f"{job_id}.log"),
            command_line=spec.command_line,
            group=spec.group,
            group_index=spec.group_index,
        )
        try:
            Path(job.log_path).touch(mode=0o600)
            self.registry.add(job)
        except OSError as error:
            raise _disk_error(error, log_dir) from error
        with open(job.log_path, "ab") as log:
            launcher = subprocess.Popen(
                [sys.executable, "-m", "tunedeck.core.jobs.supervisor"]
                + ["--db", str(self.registry.path), job.id],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                close_fds=True,
                start_new_session=True,
            )
        if launcher.wait() != 0:
            self.registry.set(job.id, state=JobState.FAILED, message="the supervisor did not start")
        return self.registry.get(job.id) or job

    def status(self, ids: list[str]) -> list[Job]:
        found = []
        for job_id in ids:
            job = self.registry.get(job_id)
            if job is not None:
                found.append(self.refresh(job))
        return found

    def list(self) -> list[Job]:
        """This box's jobs, refreshed (remote rows are their hosts' business)."""
        return [self.refresh(job) for job in self.registry.list(LOCAL_HOST)]

    def refresh(self, job: Job) -> Job:
        """The job as it is now: a vanished process with no recorded exit becomes lost.

        Only a job of this box is checked here: a remote job's processes are never visible
        locally, so it is returned as recorded.
        """
        if job.state.is_final or not job.is_local:
            return job
        if watch.is_watched(job):
            return watch.refresh_watched(job, self.registry)
        if procs.is_alive(job.pid, job.pid_start):
            return self._with_progress(job)
        if procs.is_alive(job.supervisor_pid, job.supervisor_start):
            return job  # starting, or recording the exit right now
        if job.supervisor_pid is None and time.time() - job.created_at < QUEUED_TIMEOUT:
            return job

        def mark_lost(current: Job) -> Job | None:
            if current.state.is_final:
                return None
            if procs.is_alive(current.supervisor_pid, current.supervisor_start):
                return None
            return current.evolve(
                state=JobState.LOST,
                ended_at=time.time(),
                message="the job's processes vanished without a recorded exit",
            )

        try:
            return self._with_progress(self.registry.update(job.id, mark_lost))
        except DiskFullError:
            return mark_lost(job) or job  # shown as it is, recorded once there is space

    def read_log(self, job: Job, offset: int = 0, limit: int = logs.DEFAULT_LIMIT):
        return logs.read_log_file(job.log_path, offset, limit)

    def tail_offset(self, job: Job, lines: int) -> int:
        return logs.tail_offset(job.log_path, lines)

    def follow_log(self, job: Job, offset: int = 0, stop_event=None) -> Iterator[logs.LogChunk]:
        if not job.log_path:
            return iter(())  # a watched run with no log file known

        def finished() -> bool:
            current = self.registry.get(job.id)
            return current is None or self.refresh(current).state.is_final

        return logs.follow_file(job.log_path, offset, finished=finished, stop_event=stop_event)

    def cancel(self, job: Job, grace: float = DEFAULT_GRACE) -> CancelResult:
        """SIGTERM the job's group and stray descendants; after `grace` seconds, SIGKILL.

        A job already ended may have left processes behind (its main process killed alone):
        those are ended the same way and listed as `leftovers`.
        """
        job = self.refresh(job)
        if watch.is_watched(job) and job.pid is None:
            raise JobError(
                f"{job.id} is a watched run whose process tunedeck does not know: it cannot stop it",
                hint="stop it where it runs, or add it with its pid first:"
                f" tunedeck runs add {job.output_dir} --pid PID",
            )
        if job.state.is_final:
            return self._end_leftovers(job, grace)
        job = self.registry.set(job.id, cancel_requested_at=time.time())
        deadline = time.monotonic() + QUEUED_TIMEOUT
        while job.pid is None and not job.state.is_final and time.monotonic() < deadline:
            time.sleep(POLL)  # the supervisor is starting it; it will see the request
            job = self.refresh(self.registry.get(job.id) or job)
        if job.state.is_final:
            return CancelResult(job, None)
        used, seen = self._term_then_kill(job, self._tree(job), grace)
        survivors = {p.pid for p in self._tree(job)}
        # A rank still listed by nvidia-smi holds GPU memory: report it, whatever /proc says.
        survivors |= {p.pid for gpu in query_gpus() for p in gpu.processes if p.pid in seen}
        self._wait_recorded(job)
        final = self.registry.update(
            job.id,
            lambda j: j.evolve(
                state=JobState.CANCELLED, cancel_signal=used, ended_at=j.ended_at or time.time()
            ),
        )
        return CancelResult(final, used, tuple(sorted(survivors)))

    def _end_leftovers(self, job: Job, grace: float) -> CancelResult:
        """End what is left of an ended job's tree (still under its supervisor)."""
        targets = self._tree(job)
        if not targets:
            return CancelResult(job, None)
        used, seen = self._term_then_kill(job, targets, grace)
        survivors = tuple(sorted(p.pid for p in self._tree(job)))
        return CancelResult(job, used, survivors, leftovers=tuple(sorted(seen)))

    def _term_then_kill(
        self, job: Job, targets: list[procs.ProcInfo], grace: float
    ) -> tuple[str, set[int]]:
        """SIGTERM `targets`, SIGKILL what is left after `grace`; the last signal and every pid
        seen in the tree meanwhile."""
        seen = {p.pid for p in targets}
        _signal_all(job.pgid, targets, signal.SIGTERM)
        if self._wait_gone(job, time.monotonic() + grace, seen):
            return "SIGTERM", seen
        _signal_all(job.pgid, self._tree(job), signal.SIGKILL)
        self._wait_gone(job, time.monotonic() + KILL_WAIT, seen)
        return "SIGKILL", seen

    def remove(self, job: Job) -> None:
        """Forget a finished job and delete its log; a watched run is forgotten in any state, its
        folder and log left as they are (and a watched folder's scan skips it from now on)."""
        if watch.is_watched(job):
            self.registry.remove(job.id)
            if job.output_dir:
                self.registry.forget_dir(job.output_dir)
            return
        job = self.refresh(job)
        if not job.state.is_final:
            raise JobError(
                f"job {job.id} is still {job.state.value}",
                hint=f"cancel it first: tunedeck runs cancel {job.id}",
            )
        self.registry.remove(job.id)
        for path in (job.log_path, job.metrics_path):
            if path:
                Path(path).unlink(missing_ok=True)

    def metrics(self, job: Job) -> list[metrics.MetricPoint]:
        """The job's own points (never another run's in the same output_dir)."""
        return metrics.read_job_metrics(job)

    def gpus(self) -> list[Gpu]:
        return query_gpus()

    def add_watched(
        self,
        output_dir: str,
        name: str | None = None,
        log: str | None = None,
        pid: int | None = None,
    ) -> Job:
        """Watch a run folder of this box (see watch.add_watched)."""
        return watch.add_watched(output_dir, name=name, log=log, pid=pid, registry=self.registry)

    def scan_watched(self, folders: list[str]) -> dict:
        """Add the new run folders under `folders`: {"added": [Job], "missing": [folder]}."""
        from tunedeck.core.jobs.watched_folders import LOCAL_SCANNER, scan_and_add

        found = scan_and_add(folders, self.registry, LOCAL_SCANNER)
        return {**found, "added": [Job.from_dict(doc) for doc in found["added"]]}

    def close(self) -> None:
        pass

    def _tree(self, job: Job) -> list[procs.ProcInfo]:
        roots = [job.pid] if procs.is_alive(job.pid, job.pid_start) else []
        if procs.is_alive(job.supervisor_pid, job.supervisor_start):
            roots.append(job.supervisor_pid)
        if not roots:
            return []
        tree = procs.group_and_descendants(job.pgid, roots)
        if job.pid in roots and all(p.pid != job.pid for p in tree):
            main = procs.proc_info(job.pid)  # outside its group (a watched run's own process)
            tree += [main] if main is not None else []
        return [p for p in tree if p.pid != job.supervisor_pid]

    def _wait_gone(self, job: Job, deadline: float, seen: set[int]) -> bool:
        while True:
            tree = self._tree(job)
            seen.update(p.pid for p in tree)
            if not tree:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL)

    def _wait_recorded(self, job: Job) -> Job:
        deadline = time.monotonic() + KILL_WAIT
        current = self.registry.get(job.id) or job
        while not current.state.is_final and time.monotonic() < deadline:
            if not procs.is_alive(current.supervisor_pid, current.supervisor_start):
                break
            time.sleep(POLL)
            current = self.registry.get(job.id) or current
        return current

    def _with_progress(self, job: Job) -> Job:
        progress = metrics.read_job_progress(job)
        if (progress.fraction, progress.last_loss) == (job.progress, job.last_loss):
            return job
        shown = job.evolve(progress=progress.fraction, last_loss=progress.last_loss)
        try:
            return self.registry.update(
                job.id, lambda j: j.evolve(progress=progress.fraction, last_loss=progress.last_loss)
            )
        except DiskFullError:
            return shown  # a full disk: still shown, recorded later


def _signal_all(pgid: int | None, targets: list[procs.ProcInfo], sig: int) -> None:
    if pgid and targets:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    for p in targets:
        if procs.is_alive(p.pid, p.start):  # never signal a recycled pid
            try:
                os.kill(p.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass


def _disk_error(error: OSError, where: Path) -> Exception:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(
            f"no space left on {space.mount_of(where)}: cannot write the job log under {where}",
            hint="free some space there; nothing was started",
        )
    return JobError(f"cannot write under {where}: {error.strerror or error}")
