"""Slurm's job states and squeue/sinfo lines, read into tunedeck's words."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from tunedeck.core.jobs.model import JobState

# squeue -o fields, one line per job (array tasks one each with -r): id, state, reason,
# expected start, nodes, elapsed, partition; the exit code is not there (scontrol/sacct/the
# exit file say it).
SQUEUE_FORMAT = "%i|%T|%r|%S|%N|%M|%P"
# The queue's order: pending jobs of every user, highest priority first (then by id).
QUEUE_ORDER_FORMAT = "%i|%P"
QUEUE_ORDER_SORT = "-p,i"
SINFO_NODE_FORMAT = "NodeList:|,Partition:|,StateLong:|,CPUsState:|,Memory:|,Gres:|,GresUsed:|"

STATES = {
    "PENDING": JobState.QUEUED,
    "REQUEUED": JobState.QUEUED,
    "REQUEUE_HOLD": JobState.QUEUED,
    "REQUEUE_FED": JobState.QUEUED,
    "RESV_DEL_HOLD": JobState.QUEUED,
    "CONFIGURING": JobState.RUNNING,
    "RUNNING": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING,
    "SUSPENDED": JobState.RUNNING,
    "STOPPED": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "STAGE_OUT": JobState.RUNNING,
    "RESIZING": JobState.RUNNING,
    "COMPLETED": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
    "TIMEOUT": JobState.FAILED,
    "PREEMPTED": JobState.FAILED,
    "NODE_FAIL": JobState.FAILED,
    "OUT_OF_MEMORY": JobState.FAILED,
    "BOOT_FAIL": JobState.FAILED,
    "DEADLINE": JobState.FAILED,
    "SPECIAL_EXIT": JobState.FAILED,
    "CANCELLED": JobState.CANCELLED,
    "REVOKED": JobState.CANCELLED,
}

WHY_MESSAGES = {
    "TIMEOUT": "Slurm ended it at its time limit",
    "PREEMPTED": "preempted by a higher-priority job",
    "NODE_FAIL": "a node of its allocation failed",
    "OUT_OF_MEMORY": "it ran out of memory (--mem)",
    "BOOT_FAIL": "its node failed to boot",
    "DEADLINE": "it missed its deadline",
}
_NO_TIME = {"N/A", "Unknown", "None", ""}


def tunedeck_state(slurm_state: str) -> JobState:
    """tunedeck's state for one of Slurm's ("CANCELLED by 0" reads as CANCELLED)."""
    word = slurm_state.split()[0].rstrip("+") if slurm_state.strip() else ""
    return STATES.get(word, JobState.RUNNING)


@dataclass(frozen=True)
class QueueEntry:
    """One job as squeue lists it."""

    scheduler_id: str
    state: str
    reason: str | None
    start: str | None  # the expected start of a pending job (squeue --start), else its start
    nodes: str | None
    elapsed: str | None
    partition: str | None = None

    def pending_reason(self) -> str:
        """Slurm's reason with its start estimate, as the Runs screen shows it."""
        reason = self.reason or "waiting"
        if self.start:
            return f"{reason}; expected start {self.start}"
        return reason


def parse_squeue(text: str, wanted: Collection[str] | None = None) -> dict[str, QueueEntry]:
    """squeue lines in SQUEUE_FORMAT, by job id (array tasks as "ID_k"); only `wanted` ids
    when given (a long queue is mostly other runs)."""
    entries = {}
    for line in text.splitlines():
        if wanted is not None and line.lstrip().partition("|")[0] not in wanted:
            continue
        parts = line.strip().split("|")
        if len(parts) < 6:
            continue
        job_id, state, reason, start, nodes, elapsed = parts[:6]
        entries[job_id] = QueueEntry(
            job_id,
            state,
            None if reason in ("None", "") else reason,
            None if start in _NO_TIME else start,
            nodes or None,
            elapsed or None,
            parts[6] or None if len(parts) > 6 else None,
        )
    return entries


def parse_queue_order(text: str, wanted: Collection[str] | None = None) -> dict[str, int]:
    """Lines in QUEUE_ORDER_FORMAT, in squeue's order, as each job's place in its partition's
    queue (1: the next to start); only `wanted` ids when given."""
    seen: dict[str, int] = {}
    positions = {}
    for line in text.splitlines():
        job_id, _, partitions = line.strip().partition("|")
        if not job_id:
            continue
        partition = partitions.split(",")[0]
        seen[partition] = seen.get(partition, 0) + 1
        if wanted is None or job_id in wanted:
            positions[job_id] = seen[partition]
    return positions


def parse_scontrol_job(text: str) -> dict[str, str]:
    """`scontrol show job -o ID` as KEY -> value (values without spaces; Command is last)."""
    values = {}
    for word in text.split():
        key, sep, value = word.partition("=")
        if sep:
            values[key] = value
    return values


def exit_code_of(value: str | None) -> int | None:
    """Slurm's "CODE:SIGNAL" exit code as a shell would say it (128 + signal when killed)."""
    if not value or ":" not in value:
        return None
    code, _, sig = value.partition(":")
    try:
        code_n, sig_n = int(code), int(sig)
    except ValueError:
        return None
    return 128 + sig_n if sig_n else code_n


@dataclass(frozen=True)
class Partition:
    """A partition as sinfo shows it: its nodes and their states, CPUs and GPUs in use."""

    name: str
    default: bool
    nodes: int
    node_states: dict[str, int]
    cpus_allocated: int
    cpus_total: int
    gpus_used: int
    gpus_total: int
    memory_mb: int  # the largest node's
    node_cpus: int = 0  # the largest node's
    node_gpus: int = 0  # the largest node's

    def too_small_for(self, nodes: int, cpus: int | None, gpus: int | None, mem_mb: int | None):
        """The flags of a request no node (or too few nodes) of this partition can meet."""
        flags = []
        if nodes > self.nodes:
            flags.append("--nodes")
        if cpus and cpus > self.node_cpus:
            flags.append("--cpus-per-task")
        if gpus and gpus > self.node_gpus:
            flags.append("--gpus-per-node")
        if mem_mb and mem_mb > self.memory_mb:
            flags.append("--mem")
        return flags

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "default": self.default,
            "nodes": self.nodes,
            "node_states": dict(self.node_states),
            "cpus_allocated": self.cpus_allocated,
            "cpus_total": self.cpus_total,
            "gpus_used": self.gpus_used,
            "gpus_total": self.gpus_total,
            "memory_mb": self.memory_mb,
            "node_cpus": self.node_cpus,
            "node_gpus": self.node_gpus,
        }

    @classmethod
    def from_dict(cls, doc: dict) -> Partition:
        return cls(**{**doc, "node_states": dict(doc.get("node_states") or {})})

    def line(self) -> str:
        """One line for a terminal: name, nodes by state, CPUs and GPUs in use."""
        states = ", ".join(f"{n} {state}" for state, n in sorted(self.node_states.items()))
        star = "*" if self.default else ""
        gpus = f", GPUs {self.gpus_used}/{self.gpus_total} in use" if self.gpus_total else ""
        return (
            f"{self.name}{star}: {self.nodes} node(s) ({states}), "
            f"CPUs {self.cpus_allocated}/{self.cpus_total} in use{gpus}"
        )


def parse_sinfo_nodes(text: str) -> list[Partition]:
    """`sinfo -N -O SINFO_NODE_FORMAT` lines, summed by partition (in sinfo's order)."""
    by_name: dict[str, dict] = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) < 7 or not parts[0]:
            continue
        _node, name, state, cpus, memory, gres, gres_used = parts[:7]
        default = name.endswith("*")
        name = name.rstrip("*")
        entry = by_name.setdefault(
            name,
            {"default": default, "nodes": 0, "states": {}, "alloc": 0, "cpus": 0}
            | {"gpus_used": 0, "gpus": 0, "memory": 0, "node_cpus": 0, "node_gpus": 0},
        )
        entry["nodes"] += 1
        word = state.rstrip("*~#!%$@^-")
        entry["states"][word] = entry["states"].get(word, 0) + 1
        alloc, _idle, _other, total = (_int(x) for x in (cpus.split("/") + ["0"] * 4)[:4])
        entry["alloc"] += alloc
        entry["cpus"] += total
        entry["node_cpus"] = max(entry["node_cpus"], total)
        entry["node_gpus"] = max(entry["node_gpus"], gpu_count(gres))
        entry["gpus"] += gpu_count(gres)
        entry["gpus_used"] += gpu_count(gres_used)
        entry["memory"] = max(entry["memory"], _int(memory))
    return [
        Partition(
            name,
            e["default"],
            e["nodes"],
            e["states"],
            e["alloc"],
            e["cpus"],
            e["gpus_used"],
            e["gpus"],
            e["memory"],
            e["node_cpus"],
            e["node_gpus"],
        )
        for name, e in by_name.items()
    ]


_GPU = re.compile(r"gpu(?::[^:(,]+)?:(\d+)")


def gpu_count(gres: str) -> int:
    """GPUs in a GRES string such as "gpu:a100:4(S:0-1)" or "gpu:2(IDX:0-1)"."""
    return sum(int(n) for n in _GPU.findall(gres or ""))


def _int(text: str) -> int:
    try:
        return int(text.strip().rstrip("+"))
    except ValueError:
        return 0


def memory_mb(text: str | None) -> int | None:
    """Slurm's --mem value ("64G", "2000", "512M") in MB."""
    if not text:
        return None
    match = re.fullmatch(r"(\d+)([KMGT]?)B?", text.strip().upper())
    if not match:
        return None
    scale = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}[match.group(2)]
    return int(int(match.group(1)) * scale)
