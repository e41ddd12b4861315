"""Training metrics of a job as one series: from trainer_log.jsonl, or HF Trainer stdout lines."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tunedeck.core.jobs.model import Job

TAIL_BYTES = 256 * 1024
TRAINER_LOG = "trainer_log.jsonl"  # LLaMA-Factory's metrics file in a run's output_dir
TRAINER_STATE = "trainer_state.json"  # a HF Trainer's, in output_dir and each checkpoint-N/
CHECKPOINT_PREFIX = "checkpoint-"
ABSENT = "absent"


@dataclass(frozen=True)
class MetricPoint:
    step: int
    loss: float | None = None
    eval_loss: float | None = None
    lr: float | None = None
    epoch: float | None = None
    throughput: float | None = None
    tokens: int | None = None  # tokens seen so far (num_input_tokens_seen), when logged
    elapsed: float | None = None  # seconds since the run began, when logged

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Progress:
    """What a job list shows: fraction done (None when unknown) and the last training loss."""

    fraction: float | None
    last_loss: float | None


def read_metrics_files(output_dir: str | None, log_path: str | None) -> list[MetricPoint]:
    """trainer_log.jsonl in output_dir when it exists, else Trainer dict lines in the log."""
    if output_dir:
        trainer_log = Path(output_dir) / TRAINER_LOG
        if trainer_log.is_file():
            return parse_trainer_log(trainer_log.read_text(encoding="utf-8", errors="replace"))
    if log_path and Path(log_path).is_file():
        return parse_trainer_stdout(Path(log_path).read_text(encoding="utf-8", errors="replace"))
    return []


def read_progress(output_dir: str | None, log_path: str | None) -> Progress:
    """Progress from the last entries only (the tails of the files), for cheap job lists."""
    trainer_log = Path(output_dir) / TRAINER_LOG if output_dir else None
    return _progress(trainer_log, log_path)


def read_job_metrics(job: Job) -> list[MetricPoint]:
    """This job's own points: its trainer_log.jsonl, never another run's in the same output_dir
    (one that ran before it, or its resume); else Trainer lines in its own log."""
    trainer_log = job_trainer_log(job)
    if trainer_log is not None:
        return parse_trainer_log(trainer_log.read_text(encoding="utf-8", errors="replace"))
    state = _watched_trainer_state(job)
    if state is not None:
        return parse_trainer_state(Path(state).read_text(encoding="utf-8", errors="replace"))
    return read_metrics_files(None, job.log_path)


def read_job_progress(job: Job) -> Progress:
    """Fraction done and last loss from this job's own points (see read_job_metrics)."""
    return _progress(job_trainer_log(job), job.log_path)


def job_trainer_log(job: Job) -> Path | None:
    """The trainer_log.jsonl that holds this job's points, None when the job wrote none."""
    if job.metrics_path:
        path = Path(job.metrics_path)  # the copy taken when it ended
        return path if path.is_file() else None
    if not job.output_dir:
        return None
    path = Path(job.output_dir) / TRAINER_LOG
    if job.metrics_before is not None:  # recorded at start: did this job write the file?
        if job.state.is_final or trainer_log_mark(job.output_dir) == job.metrics_before:
            return None
    return path if path.is_file() else None


def trainer_log_mark(output_dir: str | None) -> str:
    """Which trainer_log.jsonl is in output_dir now: "inode:size:mtime_ns", or "absent"."""
    if not output_dir:
        return ABSENT
    try:
        stat = os.stat(Path(output_dir) / TRAINER_LOG)
    except OSError:
        return ABSENT
    return f"{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"


def keep_job_metrics(job: Job, copy_to: Path) -> str | None:
    """At the job's end: copy the trainer_log.jsonl it wrote to `copy_to` (a later run or a
    resume may rewrite the original); None when the job wrote none."""
    if job.metrics_before is None or trainer_log_mark(job.output_dir) == job.metrics_before:
        return None
    try:
        shutil.copyfile(Path(job.output_dir) / TRAINER_LOG, copy_to)
    except OSError:
        return None
    return str(copy_to)


def metrics_stamp(job: Job) -> tuple | None:
    """What changes when a local job's points change; None (always re-read) for remote jobs."""
    if not job.is_local:
        return None
    stamp: list = [job.state.value, job.metrics_path]
    state = _watched_trainer_state(job)
    paths = (job_trainer_log(job), Path(job.log_path) if job.log_path else None)
    for path in (*paths, Path(state) if state else None):
        try:
            stat = path.stat() if path else None
        except OSError:
            stat = None
        stamp.append((stat.st_size, stat.st_mtime_ns) if stat else None)
    return tuple(stamp)


def newest_trainer_state(output_dir: str | None) -> str | None:
    """The trainer_state.json furthest along: output_dir's own (written at the end), else the
    one in the highest checkpoint-N/. The folder is listed again only when its mtime changed."""
    if not output_dir:
        return None
    root = os.path.join(output_dir, TRAINER_STATE)
    if os.path.isfile(root):
        return root
    for step in reversed(_checkpoint_steps(output_dir)):
        path = os.path.join(output_dir, f"{CHECKPOINT_PREFIX}{step}", TRAINER_STATE)
        if os.path.isfile(path):
            return path
    return None


def trainer_state_summary(path: str | Path) -> tuple[int, int, float | None] | None:
    """(global_step, max_steps, last training loss) of a trainer_state.json; None if unreadable."""
    doc = read_json(path)
    if not doc:
        return None
    losses = [e.get("loss") for e in doc.get("log_history") or () if isinstance(e, dict)]
    losses = [loss for loss in losses if _number(loss) is not None]
    step = int(_number(doc.get("global_step")) or 0)
    max_steps = int(_number(doc.get("max_steps")) or 0)
    return step, max_steps, _number(losses[-1]) if losses else None


def parse_trainer_state(text: str) -> list[MetricPoint]:
    """A trainer_state.json's log_history: one point per step, eval entries joined to theirs."""
    try:
        doc = json.loads(text)
    except ValueError:
        return []
    points: dict[int, MetricPoint] = {}
    for entry in (doc.get("log_history") if isinstance(doc, dict) else None) or ():
        if not isinstance(entry, dict) or entry.get("step") is None:
            continue
        step = int(_number(entry["step"]) or 0)
        point = points.get(step) or MetricPoint(step=step)
        points[step] = replace(
            point,
            loss=_number(entry.get("loss")) if "loss" in entry else point.loss,
            eval_loss=_number(entry.get("eval_loss")) if "eval_loss" in entry else point.eval_loss,
            lr=_number(entry["learning_rate"]) if "learning_rate" in entry else point.lr,
            epoch=_number(entry.get("epoch")) if "epoch" in entry else point.epoch,
            tokens=_count(entry.get("num_input_tokens_seen", entry.get("num_tokens")))
            or point.tokens,
        )
    return [points[step] for step in sorted(points) if _has_values(points[step])]


def read_json(path: str | Path) -> dict | None:
    """A JSON object file, None when it is missing, unreadable or not an object."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def tail_text(path: Path, size: int = TAIL_BYTES) -> str:
    """The last `size` bytes of a file as text, from its first whole line."""
    return _tail_text(path, size)


def _watched_trainer_state(job: Job) -> str | None:
    """A watched run's (no argv of tunedeck's) trainer_state.json, when it has no trainer_log."""
    if job.argv or not job.output_dir:
        return None
    if (Path(job.output_dir) / TRAINER_LOG).is_file():
        return None
    return newest_trainer_state(job.output_dir)


_CHECKPOINTS: dict[str, tuple[int, list[int]]] = {}


def _checkpoint_steps(output_dir: str) -> list[int]:
    """The N of each checkpoint-N/ in output_dir, ascending (listed again on a new mtime)."""
    try:
        mtime = os.stat(output_dir).st_mtime_ns
    except OSError:
        return []
    cached = _CHECKPOINTS.get(output_dir)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    steps = []
    try:
        with os.scandir(output_dir) as entries:
            for entry in entries:
                suffix = entry.name[len(CHECKPOINT_PREFIX) :]
                if entry.name.startswith(CHECKPOINT_PREFIX) and suffix.isdigit():
                    steps.append(int(suffix))
    except OSError:
        return []
    if len(_CHECKPOINTS) > 4096:
        _CHECKPOINTS.clear()
    _CHECKPOINTS[output_dir] = (mtime, sorted(steps))
    return _CHECKPOINTS[output_dir][1]


def _has_values(point: MetricPoint) -> bool:
    return point.loss is not None or point.eval_loss is not None


def _progress(trainer_log: Path | None, log_path: str | None) -> Progress:
    if trainer_log is not None:
        if trainer_log.is_file():
            entries = [_json(line) for line in _tail_text(trainer_log).splitlines()]
            entries = [e for e in entries if e]
            fraction = loss = None
            for entry in entries:
                total, current = entry.get("total_steps"), entry.get("current_steps")
                if entry.get("percentage") is not None:
                    fraction = float(entry["percentage"]) / 100
                elif total and current is not None:
                    fraction = float(current) / float(total)
                if entry.get("loss") is not None:
                    loss = float(entry["loss"])
            return Progress(fraction, loss)
    if log_path and Path(log_path).is_file():
        points = parse_trainer_stdout(_tail_text(Path(log_path)))
        losses = [p.loss for p in points if p.loss is not None]
        return Progress(None, losses[-1] if losses else None)
    return Progress(None, None)


def parse_trainer_log(text: str) -> list[MetricPoint]:
    """LLaMA-Factory's trainer_log.jsonl lines (current_steps, loss, eval_loss, lr, ...)."""
    points = []
    for line in text.splitlines():
        entry = _json(line)
        if not entry:
            continue
        step = entry.get("current_steps", len(points) + 1)
        points.append(
            MetricPoint(
                step=int(step),
                loss=_number(entry.get("loss")),
                eval_loss=_number(entry.get("eval_loss")),
                lr=_number(entry.get("lr", entry.get("learning_rate"))),
                epoch=_number(entry.get("epoch")),
                throughput=_number(entry.get("throughput")),
                tokens=_count(entry.get("total_tokens", entry.get("num_input_tokens_seen"))),
                elapsed=_seconds(entry.get("elapsed_time")),
            )
        )
    return points


_TRAINER_DICT = re.compile(r"\{'(?:loss|eval_loss)'[^{}\n]*\}")


def parse_trainer_stdout(text: str) -> list[MetricPoint]:
    """HF Trainer log lines such as `{'loss': 2.31, 'learning_rate': 5e-05, 'epoch': 0.1}`.

    They carry no step: training lines are numbered in order; an eval line joins the last step.
    """
    points: list[MetricPoint] = []
    for match in _TRAINER_DICT.finditer(text):
        try:
            entry = ast.literal_eval(match.group(0))
        except (ValueError, SyntaxError):
            continue
        if not isinstance(entry, dict):
            continue
        if "loss" in entry:
            step = int(_number(entry.get("step")) or len(points) + 1)
            points.append(
                MetricPoint(
                    step=step,
                    loss=_number(entry.get("loss")),
                    lr=_number(entry.get("learning_rate")),
                    epoch=_number(entry.get("epoch")),
                    throughput=_number(entry.get("train_tokens_per_second")),
                    tokens=_count(entry.get("num_input_tokens_seen", entry.get("num_tokens"))),
                )
            )
        elif "eval_loss" in entry:
            last = points.pop() if points else MetricPoint(step=0)
            points.append(
                MetricPoint(
                    step=last.step,
                    loss=last.loss,
                    eval_loss=_number(entry["eval_loss"]),
                    lr=last.lr,
                    epoch=_number(entry.get("epoch")) or last.epoch,
                    throughput=last.throughput,
                    tokens=last.tokens,
                )
            )
    return points


def _number(value) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _count(value) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


def _seconds(value) -> float | None:
    """LLaMA-Factory's elapsed_time ("H:MM:SS", or "1 day, H:MM:SS") in seconds."""
    if not isinstance(value, str):
        return _number(value)
    days, _, clock = value.rpartition(",")
    try:
        parts = [float(part) for part in clock.strip().split(":")]
        whole_days = int(days.split()[0]) if days.strip() else 0
    except (ValueError, IndexError):
        return None
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60 + part
    return whole_days * 86400 + seconds


def _json(line: str) -> dict | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _tail_text(path: Path, tail: int = TAIL_BYTES) -> str:
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - tail))
        data = f.read()
    if size > tail:
        data = data[data.find(b"\n") + 1 :]
    return data.decode("utf-8", "replace")
