"""What a runner tells the outside world: output_dir/run_status.json and output_dir/trainer_log.jsonl.

trainer_log.jsonl uses LLaMA-Factory's line keys, so tools that tail its runs read ours too.
Plain Python (no torch): the quantize runner and the app import it as well.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tunedeck.core.jobs.metrics import TRAINER_LOG

STATUS_FILE = "run_status.json"
LOG_FILE = TRAINER_LOG
PHASES = (
    "loading",
    "tokenizing",
    "training",
    "merging",
    "calibrating",
    "quantizing",
    "saving",
    "done",
    "failed",
    "cancelled",
)
FINAL_PHASES = ("done", "failed", "cancelled")

# Exit codes of a runner process.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CANCELLED_SIGTERM = 143  # 128 + SIGTERM


class StatusWriter:
    """Writes run_status.json and echoes each phase to the job log; silent when not `enabled`
    (ranks other than 0 of a multi-process run)."""

    def __init__(self, output_dir: str | Path, enabled: bool = True):
        self.output_dir = output_dir
        self.enabled = enabled

    def __call__(self, phase: str, message: str = "", **extra: Any) -> None:
        if self.enabled:
            write_status(self.output_dir, phase, message, **extra)
            print(f"[{phase}] {message}", flush=True)


def print_problems(error: Exception) -> None:
    """Print a typed error (or each of its `problems`) as `error:`/`hint:` lines on stderr."""
    import sys

    for problem in getattr(error, "problems", None) or [error]:
        print(f"error: {problem}", file=sys.stderr)
        if getattr(problem, "hint", None):
            print(f"hint: {problem.hint}", file=sys.stderr)


def write_status(output_dir: str | Path, phase: str, message: str = "", **extra: Any) -> Path:
    """Atomically replace run_status.json with {"phase", "message", "updated_at", **extra}."""
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}")
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    document = {"phase": phase, "message": message, "updated_at": _now(), "pid": os.getpid()}
    document.update(extra)
    target = folder / STATUS_FILE
    temp = folder / f".{STATUS_FILE}.{os.getpid()}.tmp"
    temp.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    os.replace(temp, target)
    return target


def read_status(output_dir: str | Path) -> dict[str, Any] | None:
    """The last status a runner wrote, or None when there is none (or it is unreadable)."""
    try:
        return json.loads((Path(output_dir) / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def log_line(
    current_steps: int,
    total_steps: int,
    elapsed_seconds: float,
    *,
    loss: float | None = None,
    eval_loss: float | None = None,
    lr: float | None = None,
    epoch: float | None = None,
    total_tokens: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One trainer_log.jsonl record with LLaMA-Factory's keys; unknown values are left out."""
    percentage = round(current_steps / total_steps * 100, 2) if total_steps else 0.0
    remaining = (
        elapsed_seconds / current_steps * (total_steps - current_steps) if current_steps else 0.0
    )
    record: dict[str, Any] = {
        "current_steps": current_steps,
        "total_steps": total_steps,
        "loss": _round(loss),
        "eval_loss": _round(eval_loss),
        "lr": lr,
        "epoch": None if epoch is None else round(epoch, 2),
        "percentage": percentage,
        "elapsed_time": format_duration(elapsed_seconds),
        "remaining_time": format_duration(remaining),
    }
    if total_tokens is not None:
        record["throughput"] = round(total_tokens / elapsed_seconds, 2) if elapsed_seconds else 0.0
        record["total_tokens"] = total_tokens
    record.update(extra)
    return {k: v for k, v in record.items() if v is not None}


@dataclass
class TrainerLog:
    """Appends records to output_dir/trainer_log.jsonl, one JSON object per line, flushed each time."""

    output_dir: Path

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir)
        self.path = self.output_dir / LOG_FILE

    def start(self, *, resume_at_step: int | None = None) -> None:
        """Begin a run: truncate the log, or (resuming) keep only lines up to that step."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if resume_at_step is None or not self.path.exists():
            self.path.write_text("", encoding="utf-8")
            return
        kept = [r for r in self.read() if r.get("current_steps", 0) <= resume_at_step]
        self.path.write_text("".join(_dumps(r) for r in kept), encoding="utf-8")

    def append(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(_dumps(record))

    def read(self) -> list[dict[str, Any]]:
        """Every complete record (a half-written last line is skipped)."""
        if not self.path.exists():
            return []
        records = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return records


@dataclass
class Stopwatch:
    """Seconds since start; `offset` carries elapsed time over from a resumed run."""

    offset: float = 0.0

    def __post_init__(self) -> None:
        self.started = time.monotonic()

    @property
    def elapsed(self) -> float:
        return self.offset + time.monotonic() - self.started


def format_duration(seconds: float) -> str:
    """H:MM:SS, as LLaMA-Factory writes elapsed_time and remaining_time."""
    total = int(max(seconds, 0))
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


def parse_duration(text: str) -> float:
    """Inverse of format_duration (also accepts 'D day(s), H:MM:SS')."""
    days = 0
    if "day" in text:
        head, _, text = text.partition(",")
        days = int(head.split()[0])
    parts = [float(p) for p in text.strip().split(":")]
    while len(parts) < 3:
        parts.insert(0, 0.0)
    return days * 86400 + parts[0] * 3600 + parts[1] * 60 + parts[2]


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False) + "\n"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
