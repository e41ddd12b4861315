"""Runs side by side: loss and eval_loss aligned by step or by tokens seen, the config keys that
differ, and each run's final metrics.

A sweep (jobs sharing a `group`) is named by its group id and compared member by member; a
resumed run (jobs writing the same output dir one after another) reads as one run with one
series. Points come from the backends (`BackendPool.metrics`), never from files read here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import yaml

from tunedeck.core.errors import JobError, TunedeckError, UsageError
from tunedeck.core.jobs.metrics import MetricPoint
from tunedeck.core.jobs.model import LOCAL_HOST, Job

if TYPE_CHECKING:
    from tunedeck.core.jobs.pool import BackendPool

BY_STEP, BY_TOKENS = "step", "tokens"
AXES = (BY_STEP, BY_TOKENS)
METRICS = ("loss", "eval_loss")
NOT_KEPT = "(not kept)"  # how a face shows a key of a run whose config is unknown


@dataclass(frozen=True)
class FinalMetrics:
    """Where a run ended up (None: not known)."""

    state: str
    steps: int | None
    tokens: int | None
    last_loss: float | None
    best_eval_loss: float | None
    last_eval_loss: float | None
    runtime: float | None  # seconds

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ComparedRun:
    """One run as compared: its jobs, oldest first (a resume adds one), and one series."""

    jobs: tuple[Job, ...]
    points: tuple[MetricPoint, ...]
    config: dict[str, Any] | None  # the config it ran with; None when the run kept none
    label: str = ""
    problem: str | None = None  # why its points could not be read (a host away, ...)

    @property
    def job(self) -> Job:
        """The latest job of the run: its state is the run's."""
        return self.jobs[-1]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(job.id for job in self.jobs)

    @property
    def has_tokens(self) -> bool:
        """Whether its log counts tokens seen (num_input_tokens_seen / total_tokens)."""
        return any(point.tokens is not None for point in self.points)

    def curve(self, metric: str = "loss", by: str = BY_STEP) -> list[tuple[float, float]]:
        """(x, value) for `metric` in step order; x is the step or the tokens seen so far."""
        # an eval line that counts no tokens is at the tokens of the training line of its step
        tokens_at = {p.step: p.tokens for p in self.points if p.tokens is not None}
        out = []
        for point in self.points:
            value = getattr(point, metric)
            x = point.step if by == BY_STEP else point.tokens or tokens_at.get(point.step)
            if value is not None and x is not None:
                out.append((float(x), float(value)))
        return out

    def final(self, now: float | None = None) -> FinalMetrics:
        losses = [p.loss for p in self.points if p.loss is not None]
        evals = [p.eval_loss for p in self.points if p.eval_loss is not None]
        tokens = [p.tokens for p in self.points if p.tokens is not None]
        return FinalMetrics(
            state=self.job.state.value,
            steps=self.points[-1].step if self.points else None,
            tokens=tokens[-1] if tokens else None,
            last_loss=losses[-1] if losses else None,
            best_eval_loss=min(evals) if evals else None,
            last_eval_loss=evals[-1] if evals else None,
            runtime=self._runtime(time.time() if now is None else now),
        )

    def _runtime(self, now: float) -> float | None:
        """Seconds the jobs ran, summed over a resume; else the elapsed time the log kept."""
        if all(job.started_at for job in self.jobs):
            return sum(
                (job.ended_at or (now if not job.state.is_final else job.started_at))
                - job.started_at
                for job in self.jobs
            )
        elapsed = [p.elapsed for p in self.points if p.elapsed is not None]
        return elapsed[-1] if elapsed else None

    def to_dict(self, by: str = BY_STEP) -> dict[str, Any]:
        job = self.job
        return {
            "label": self.label,
            "ids": list(self.ids),
            "name": job.name,
            "host": job.host,
            "origin": job.origin,
            "output_dir": job.output_dir,
            "group": job.group,
            "group_index": job.group_index,
            "config_kept": self.config is not None,
            "has_tokens": self.has_tokens,
            "problem": self.problem,
            "final": self.final().to_dict(),
            "series": {m: [list(xy) for xy in self.curve(m, by)] for m in METRICS},
        }


@dataclass(frozen=True)
class ConfigDiff:
    """The config keys whose values differ between runs; `values[i][j]` is key i of run j
    (NOT_KEPT where run j kept no config)."""

    keys: tuple[str, ...]
    values: tuple[tuple[Any, ...], ...]
    same: int = 0  # keys every run that kept a config agrees on

    def rows(self) -> list[tuple[str, tuple[Any, ...]]]:
        return list(zip(self.keys, self.values, strict=True))

    def to_dict(self) -> dict[str, Any]:
        return {
            "keys": [{"key": k, "values": list(v)} for k, v in self.rows()],
            "same": self.same,
        }


@dataclass(frozen=True)
class Comparison:
    """Two or more runs: their series, the config keys that differ, and notes for the reader."""

    runs: tuple[ComparedRun, ...]
    diff: ConfigDiff
    group: str | None = None  # the sweep named, when one was
    notes: tuple[str, ...] = field(default=())

    def without_tokens(self) -> list[ComparedRun]:
        """The runs whose log counts no tokens seen: by tokens they have no curve."""
        return [run for run in self.runs if not run.has_tokens]

    def notes_for(self, by: str = BY_STEP) -> list[str]:
        """What a reader should know, aligned `by` step or tokens (a run with no tokens seen)."""
        return list(self.notes) + _axis_notes(self, by)

    def to_dict(self, by: str = BY_STEP) -> dict[str, Any]:
        return {
            "by": by,
            "group": self.group,
            "runs": [run.to_dict(by) for run in self.runs],
            "config_diff": self.diff.to_dict(),
            "notes": self.notes_for(by),
        }


# -- the one call both faces make --------------------------------------------------------------


def compare_runs(refs: Sequence[str], pool: BackendPool) -> Comparison:
    """Compare the runs named by `refs` (job ids or unique prefixes, or a sweep's group id),
    their states refreshed and their points read through `pool`."""
    jobs = pool.backend(LOCAL_HOST).registry.list()
    chains, group = resolve_runs(refs, jobs)
    fresh = {job.id: job for job in pool.refresh([j for c in chains for j in c]).jobs}
    chains = [tuple(fresh[job.id] for job in chain) for chain in chains]
    return build_comparison(chains, pool.metrics, group=group)


def resolve_runs(
    refs: Sequence[str], jobs: Sequence[Job]
) -> tuple[list[tuple[Job, ...]], str | None]:
    """The runs `refs` name, each as its jobs oldest first (a resume chain), and the sweep named
    (None when none). A group id stands for its members; a lone sweep member for its sweep."""
    if not refs:
        raise UsageError("name two or more runs to compare (job ids, or a sweep's group id)")
    picked: list[Job] = []
    group = None
    for ref in refs:
        members = group_members(ref, jobs) or _group_by_prefix(ref, jobs)
        if members:
            picked.extend(members)
            group = members[0].group
        else:
            picked.append(_job_by_prefix(ref, jobs))
    if len(refs) == 1 and len(picked) == 1 and picked[0].group:
        group = picked[0].group
        picked = group_members(group, jobs)
    chains: list[tuple[Job, ...]] = []
    for job in picked:
        chain = resume_chain(job, jobs)
        if chain not in chains:
            chains.append(chain)
    if len(chains) < 2:
        named = " ".join(refs)
        raise JobError(
            f"'{named}' names one run: compare needs two or more",
            hint="name more job ids, or a sweep's group id (`tunedeck runs` lists them)",
        )
    return chains, group


def group_members(ref: str, jobs: Sequence[Job]) -> list[Job]:
    """The jobs of sweep `ref` (its group id, exactly), in their sweep order."""
    members = [job for job in jobs if job.group is not None and job.group == ref]
    return sorted(members, key=_sweep_order)


def resume_chain(job: Job, jobs: Sequence[Job]) -> tuple[Job, ...]:
    """`job` and the jobs on its host that wrote its output dir one after another (a resume):
    each started after the one before it ended. Oldest first."""
    if not job.output_dir:
        return (job,)
    same_dir = sorted(
        (j for j in jobs if j.host == job.host and j.output_dir == job.output_dir),
        key=lambda j: j.created_at,
    )
    chain: list[Job] = []
    for candidate in same_dir:
        if chain and not _ended_before(chain[-1], candidate):
            if job in chain:
                break
            chain = []
        chain.append(candidate)
    return tuple(chain) if job in chain else (job,)


def build_comparison(
    chains: Sequence[tuple[Job, ...]],
    read_points: Callable[[Job], list[MetricPoint]],
    group: str | None = None,
) -> Comparison:
    """Read each run's points (`read_points` per job), join a resume into one series, and diff
    the configs."""
    runs = []
    notes = []
    labels = _labels(chains)
    for chain, label in zip(chains, labels, strict=True):
        segments, problem = [], None
        for job in chain:
            try:
                segments.append(read_points(job))
            except TunedeckError as error:  # a host away: the others are still compared
                problem = f"{job.id}: {error.message}"
                notes.append(f"{label}: points not read ({problem})")
        config = _config_of(chain[-1])
        runs.append(ComparedRun(chain, tuple(join_series(segments)), config, label, problem))
        if len(chain) > 1:
            notes.append(
                f"{label}: one run resumed {len(chain) - 1} time(s) ({'+'.join(j.id for j in chain)})"
            )
    for run in runs:
        if run.config is None:
            notes.append(
                f"{run.label}: no config kept ({run.job.origin} run): its keys are not known"
            )
    return Comparison(tuple(runs), diff_configs([r.config for r in runs]), group, tuple(notes))


def join_series(segments: Sequence[Sequence[MetricPoint]]) -> list[MetricPoint]:
    """One series from points in the order they were written: a point at the last step joins it
    (an eval line after its training line); one at a step already passed (a resume from a
    checkpoint, a log read again) replaces everything from that step on."""
    series: list[MetricPoint] = []
    for points in segments:
        for point in points:
            if series and point.step == series[-1].step:
                known = {k: v for k, v in point.to_dict().items() if v is not None}
                series[-1] = replace(series[-1], **known)
                continue
            while series and series[-1].step >= point.step:
                series.pop()
            series.append(point)
    return series


def diff_configs(configs: Sequence[dict[str, Any] | None]) -> ConfigDiff:
    """The keys whose values differ between the configs that were kept; where some run kept
    none, every key a kept one holds (what is known)."""
    defaults = _defaults()
    order = {key: index for index, key in enumerate(defaults)}
    kept = [c for c in configs if c is not None]
    keys = sorted(
        dict.fromkeys(k for c in kept for k in c), key=lambda k: (order.get(k, len(order)), k)
    )
    some_unknown = len(kept) < len(configs)
    rows, values = [], []
    for key in keys:
        known = [c.get(key, defaults.get(key)) for c in kept]
        if some_unknown or any(value != known[0] for value in known):
            rows.append(key)
            values.append(
                tuple(NOT_KEPT if c is None else c.get(key, defaults.get(key)) for c in configs)
            )
    return ConfigDiff(tuple(rows), tuple(values), len(keys) - len(rows))


# -- helpers -------------------------------------------------------------------------------------


def _axis_notes(comparison: Comparison, by: str) -> list[str]:
    if by != BY_TOKENS:
        return []
    return [
        f"{run.label}: its log counts no tokens seen (num_input_tokens_seen): no curve by tokens"
        for run in comparison.without_tokens()
    ]


def _group_by_prefix(ref: str, jobs: Sequence[Job]) -> list[Job]:
    """The members of the one sweep whose group id starts with `ref`, when no job id does."""
    prefix = ref.strip().lower()
    if not prefix or any(job.id.startswith(prefix) for job in jobs):
        return []
    groups = {job.group for job in jobs if job.group and job.group.startswith(prefix)}
    if len(groups) > 1:
        names = ", ".join(sorted(groups)[:8])
        raise JobError(f"'{ref}' matches several sweeps: {names}", hint="type more characters")
    return group_members(groups.pop(), jobs) if groups else []


def _job_by_prefix(ref: str, jobs: Sequence[Job]) -> Job:
    prefix = ref.strip().lower()
    found = [job for job in jobs if prefix and job.id.startswith(prefix)]
    if not found:
        raise JobError(
            f"no job or sweep matches '{ref}'",
            hint="list runs and their sweeps with `tunedeck runs`",
        )
    if len(found) > 1:
        ids = ", ".join(job.id for job in found[:8])
        raise JobError(f"'{ref}' matches several jobs: {ids}", hint="type more characters")
    return found[0]


def _sweep_order(job: Job) -> tuple:
    return (job.group_index if job.group_index is not None else 1 << 30, job.created_at)


def _ended_before(earlier: Job, later: Job) -> bool:
    """Whether `later` started after `earlier` was over (not two runs writing at once)."""
    if not earlier.state.is_final:
        return False
    return earlier.ended_at is None or earlier.ended_at <= later.created_at


def _labels(chains: Sequence[tuple[Job, ...]]) -> list[str]:
    """The name each run goes by; a name two runs share gets the job id beside it."""
    names = [chain[-1].name for chain in chains]
    return [
        f"{name} {chain[-1].id}" if names.count(name) > 1 else name
        for name, chain in zip(names, chains, strict=True)
    ]


def _config_of(job: Job) -> dict[str, Any] | None:
    """The config the job kept (its YAML), as a dict; None when it kept none or it is unreadable."""
    if not job.config:
        return None
    try:
        doc = yaml.safe_load(job.config)
    except yaml.YAMLError:
        return None
    return doc if isinstance(doc, dict) else None


def _defaults() -> dict[str, Any]:
    """Every run-config key and its default: a key a config leaves out has this value."""
    from tunedeck.core.config import RunConfig

    return RunConfig().to_dict()
