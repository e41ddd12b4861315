"""Runs tunedeck did not start, watched by their output dir.

A LLaMA-Factory run (trainer_log.jsonl), a plain transformers/trl Trainer run (trainer_state.json,
checkpoint-*/trainer_state.json) or a tunedeck runner's folder (run_status.json) becomes a Job
with no argv of its own, in the registry of the host that has the folder. Its state is read from
the files alone: running while they grow or a known pid lives; stale after a quiet period (it may
come back); succeeded when the trainer wrote its end; failed or cancelled only when a tunedeck
runner said so; lost when a known pid ended before any end was written.

A refresh stats a handful of files; a file is parsed again only when its size or mtime changed.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tunedeck.core.errors import DiskFullError, JobError, Location
from tunedeck.core.jobs import metrics, procs
from tunedeck.core.jobs.model import LOCAL_HOST, Job, JobState
from tunedeck.core.jobs.registry import JobRegistry
from tunedeck.core.jobs.watched_folders import stale_after

TRAINER_STATE = metrics.TRAINER_STATE
RUN_STATUS = "run_status.json"  # what a tunedeck runner writes (runners/progress.py)
END_FILES = ("all_results.json", "train_results.json")  # LLaMA-Factory / Trainer scripts' end
LAST_LINES_BYTES = 8 * 1024
RESUME_SLACK = 60.0  # an end file older than the newest log line by more: a resume is writing
STATUS_STATES = {"done": JobState.SUCCEEDED, "failed": JobState.FAILED}
STATUS_STATES["cancelled"] = JobState.CANCELLED
WAITING = "waiting for trainer_log.jsonl or trainer_state.json"


def is_watched(job: Job) -> bool:
    """A run tunedeck watches but did not start: it has no command of tunedeck's (submit always
    records one)."""
    return not job.argv


def recognise(output_dir: str | Path) -> str | None:
    """Who wrote this run folder ("tunedeck", "llamafactory", "trainer"), None when no trainer
    file is there (yet)."""
    folder = Path(output_dir)
    if (folder / RUN_STATUS).is_file():
        return "tunedeck"
    if (folder / metrics.TRAINER_LOG).is_file():
        return "llamafactory"
    if metrics.newest_trainer_state(str(folder)) is not None:
        return "trainer"
    return None


def add_watched(
    output_dir: str,
    *,
    name: str | None = None,
    log: str | None = None,
    pid: int | None = None,
    registry: JobRegistry,
) -> Job:
    """Record a run folder of this host as a watched run (again: update its name, log, pid).

    The folder must exist; one with no trainer file yet is recorded as queued, waiting for one.
    """
    folder = _existing_folder(output_dir)
    log_path = _existing_log(log) if log else None
    process = _live_process(pid) if pid is not None else None
    registry.unforget_dir(folder)
    known = registry.with_output_dir(folder)
    if known:
        return _update_known(known[0], registry, name=name, log=log_path, process=process)
    job = Job(
        id=registry.new_id(),
        name=name or Path(folder).name,
        argv=(),
        kind="train",
        host=LOCAL_HOST,
        cwd=folder,
        output_dir=folder,
        log_path=log_path,
        origin=recognise(folder) or "trainer",
        started_at=time.time(),
        **(process or {}),
    )
    registry.add(job)
    return refresh_watched(job, registry)


def refresh_watched(job: Job, registry: JobRegistry, now: float | None = None) -> Job:
    """The watched run as its files (and its pid, when known) say it is now; recorded when
    anything shown changed."""
    if job.state.is_final:
        return job
    now = time.time() if now is None else now
    seen = observe(job.output_dir or "", job.log_path)
    changes = _state_changes(job, seen, now)
    changes.update(_progress_changes(job, seen))
    if not any(getattr(job, key) != value for key, value in changes.items()):
        return job
    try:
        return registry.update(job.id, lambda current: _apply(current, changes))
    except DiskFullError:
        return job.evolve(**changes)  # shown as it is, recorded once there is space
    except JobError:
        return job.evolve(**changes)  # forgotten meanwhile (runs rm)


@dataclass(frozen=True)
class Observation:
    """What a run folder says now: who wrote it, how far it is, when it last changed, and the
    end its trainer wrote (None while none)."""

    origin: str | None
    fraction: float | None = None
    last_loss: float | None = None
    activity: float | None = None  # newest mtime of the run's files
    started_at: float | None = None
    end: JobState | None = None
    ended_at: float | None = None
    message: str | None = None


def observe(output_dir: str, log_path: str | None = None) -> Observation:
    """Read the run folder's state: stats every time, parses only files that changed."""
    folder = Path(output_dir)
    log_stat = _stat(folder / metrics.TRAINER_LOG)
    state_path = metrics.newest_trainer_state(output_dir)
    state_stat = _stat(state_path) if state_path else None
    status_stat = _stat(folder / RUN_STATUS)
    mtimes = [s.st_mtime for s in (log_stat, state_stat, status_stat) if s]
    for extra in (folder, Path(log_path) if log_path else None):
        if extra is not None and (extra_stat := _stat(extra)) is not None:
            mtimes.append(extra_stat.st_mtime)
    origin = "tunedeck" if status_stat else "llamafactory" if log_stat else None
    if origin is None and state_stat:
        origin = "trainer"
    seen = Observation(origin, activity=max(mtimes) if mtimes else None)
    if log_stat:
        seen = _with_trainer_log(seen, folder / metrics.TRAINER_LOG, log_stat)
    elif state_stat:
        seen = _with_trainer_state(seen, state_path, state_stat, output_dir)
    if seen.end is None and (end := _end_file(folder, max(mtimes, default=0.0))) is not None:
        seen = _replace(seen, end=JobState.SUCCEEDED, ended_at=end)
    if status_stat:
        seen = _with_run_status(seen, folder / RUN_STATUS, status_stat)
    return seen


# -- state -------------------------------------------------------------------------------------


def _state_changes(job: Job, seen: Observation, now: float) -> dict:
    alive = procs.is_alive(job.pid, job.pid_start) if job.pid else False
    changes: dict = {"origin": seen.origin or job.origin}
    if seen.started_at is not None:
        changes["started_at"] = seen.started_at
    if seen.end is not None and not alive:
        changes.update(state=seen.end, ended_at=seen.ended_at or now, message=seen.message)
    elif job.pid and not alive:
        changes.update(
            state=JobState.LOST,
            ended_at=now,
            message=f"its process {job.pid} ended before the trainer wrote its end",
        )
    elif alive:
        changes.update(state=JobState.RUNNING, message=seen.message)
    elif seen.activity is None or seen.origin is None:
        changes.update(state=JobState.QUEUED, message=WAITING)
    else:
        quiet = now - seen.activity
        if quiet < stale_after():
            changes.update(state=JobState.RUNNING, message=seen.message)
        else:
            changes.update(state=JobState.STALE, message=f"no change for {_span(quiet)}")
    return changes


def _progress_changes(job: Job, seen: Observation) -> dict:
    changes = {}
    if seen.fraction is not None:
        changes["progress"] = seen.fraction
    if seen.last_loss is not None:
        changes["last_loss"] = seen.last_loss
    return changes


def _apply(current: Job, changes: dict) -> Job | None:
    if current.state.is_final:
        return None  # ended meanwhile (a cancel): that record wins
    return current.evolve(**changes)


def _span(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 1:
        return f"{int(seconds)} s"
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h"


# -- reading the files (each parse cached by the file's stamp) ---------------------------------


def _with_trainer_log(seen: Observation, path: Path, stat: os.stat_result) -> Observation:
    entry = _cached(path, stat, lambda: _last_log_entry(path))
    if not entry:
        return seen
    total, current = entry.get("total_steps"), entry.get("current_steps")
    fraction = None
    if entry.get("percentage") is not None:
        fraction = _float(entry["percentage"], 0.0) / 100
    elif total and current is not None:
        fraction = _float(current, 0.0) / _float(total, 1.0)
    elapsed = metrics._seconds(entry.get("elapsed_time"))
    started = stat.st_mtime - elapsed if elapsed is not None else None
    end = stat.st_mtime if fraction is not None and fraction >= 1.0 else None
    return _replace(
        seen,
        fraction=min(fraction, 1.0) if fraction is not None else None,
        last_loss=entry.get("_last_loss"),
        started_at=started,
        end=JobState.SUCCEEDED if end else None,
        ended_at=end,
    )


def _last_log_entry(path: Path) -> dict | None:
    """The last trainer_log.jsonl line, with the last loss a line carried: lines are parsed from
    the end (of the last LAST_LINES_BYTES first), so a long log costs a line or two."""
    for size in (LAST_LINES_BYTES, metrics.TAIL_BYTES):
        last, loss = None, None
        for line in reversed(metrics.tail_text(path, size).splitlines()):
            entry = metrics._json(line)
            if not entry:
                continue
            last = last or entry
            if entry.get("loss") is not None:
                loss = _float(entry["loss"], None)
                break
        if loss is not None or size == metrics.TAIL_BYTES:
            return {**last, "_last_loss": loss} if last is not None else None
    return None


def _with_trainer_state(
    seen: Observation, path: str, stat: os.stat_result, output_dir: str
) -> Observation:
    summary = _cached(Path(path), stat, lambda: metrics.trainer_state_summary(path))
    if not summary:
        return seen
    step, max_steps, loss = summary
    fraction = min(step / max_steps, 1.0) if max_steps else None
    finished = bool(max_steps) and step >= max_steps
    return _replace(
        seen,
        fraction=fraction,
        last_loss=loss,
        started_at=_trainer_start(output_dir),
        end=JobState.SUCCEEDED if finished else None,
        ended_at=stat.st_mtime if finished else None,
    )


def _trainer_start(output_dir: str) -> float | None:
    """When a Trainer run began, from the pace between its first and last checkpoints (a
    trainer_state.json holds no times); None with fewer than two."""
    steps = metrics._checkpoint_steps(output_dir)
    if len(steps) < 2:
        return None
    first, last = (
        _stat(os.path.join(output_dir, f"{metrics.CHECKPOINT_PREFIX}{step}", TRAINER_STATE))
        for step in (steps[0], steps[-1])
    )
    if first is None or last is None or last.st_mtime <= first.st_mtime:
        return None
    pace = (last.st_mtime - first.st_mtime) / (steps[-1] - steps[0])
    return first.st_mtime - steps[0] * pace


def _with_run_status(seen: Observation, path: Path, stat: os.stat_result) -> Observation:
    status = _cached(path, stat, lambda: metrics.read_json(path)) or {}
    phase = str(status.get("phase", ""))
    message = status.get("message") or None
    if phase in STATUS_STATES:
        return _replace(seen, end=STATUS_STATES[phase], ended_at=stat.st_mtime, message=message)
    return _replace(seen, end=None, message=f"{phase}: {message}" if message else phase or None)


def _end_file(folder: Path, newest: float) -> float | None:
    """The mtime of an end file the trainer wrote after its last line (not an old run's)."""
    for name in END_FILES:
        stat = _stat(folder / name)
        if stat is not None and stat.st_mtime >= newest - RESUME_SLACK:
            return stat.st_mtime
    return None


_CACHE: dict[str, tuple[tuple, object]] = {}
_CACHE_LOCK = threading.Lock()
CACHE_SIZE = 4096


def _cached(path: Path, stat: os.stat_result, parse):
    """parse() once per (inode, size, mtime) of `path`: an unchanged file is never read again."""
    key, stamp = str(path), (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    try:
        value = parse()
    except OSError:
        value = None
    with _CACHE_LOCK:
        if len(_CACHE) >= CACHE_SIZE:
            _CACHE.clear()
        _CACHE[key] = (stamp, value)
    return value


def _stat(path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def _float(value, default):
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _replace(seen: Observation, **changes) -> Observation:
    from dataclasses import replace

    return replace(seen, **changes)


# -- adding: checks with located errors --------------------------------------------------------


def _existing_folder(output_dir: str) -> str:
    folder = os.path.abspath(os.path.expanduser(output_dir))
    if not os.path.exists(folder):
        raise JobError(
            f"no such folder: {folder}",
            location=Location(file=folder),
            hint="give the run's output_dir, where trainer_log.jsonl or trainer_state.json is"
            " written (it may be empty while the run starts)",
        )
    if not os.path.isdir(folder):
        raise JobError(
            f"not a folder: {folder}",
            location=Location(file=folder),
            hint="give the run's output_dir, not a file in it",
        )
    return folder


def _existing_log(log: str) -> str:
    path = os.path.abspath(os.path.expanduser(log))
    if not os.path.isfile(path):
        raise JobError(
            f"--log: no such file: {path}",
            location=Location(file=path),
            hint="give the file the run's output goes to (e.g. the file `tee` writes)",
        )
    return path


def _live_process(pid: int) -> dict:
    info = procs.proc_info(pid)
    if pid <= 0 or info is None or info.state in ("Z", "X"):
        raise JobError(
            f"--pid {pid}: no such process on this host",
            location=Location(column="--pid"),
            hint="give the pid of the training process (e.g. from `pgrep -f llamafactory-cli`)",
        )
    return {"pid": pid, "pid_start": info.start, "pgid": pid if info.pgid == pid else None}


def _update_known(
    job: Job, registry: JobRegistry, *, name: str | None, log: str | None, process: dict | None
) -> Job:
    if not is_watched(job):
        return job  # tunedeck's own run of that folder: it is listed already
    changes: dict = {}
    if name:
        changes["name"] = name
    if log:
        changes["log_path"] = log
    if process:
        changes.update(process, state=JobState.RUNNING, ended_at=None)
    if changes:
        job = registry.set(job.id, **changes)
    return refresh_watched(job, registry)
