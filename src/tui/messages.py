"""The app's own messages, in one place: widgets and screens talk upward with these."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from tunedeck.core.datasets import DatasetInfo, DatasetReport, DatasetStats, RowView
    from tunedeck.core.errors import TunedeckError
    from tunedeck.core.jobs.pull import PullPlan, PullResult
    from tunedeck.core.jobs.transfer import Progress
    from tunedeck.tui.sidecar import EntryFailed, Sample, SampleRequest, ValidationProgress


@dataclass
class OpenDatasetRow(Message):
    """Show one row of a dataset (from an issue or a row browser)."""

    dataset: str
    row: int


@dataclass
class PreviewDataset(Message):
    """Open the Preview screen on a dataset (posted upward; the app hands it to Preview); the
    Launch screen's datasets check names a row and the template, tokenizer and cutoff_len."""

    dataset: str
    row: int = 0
    template: str | None = None
    tokenizer: str | None = None
    cutoff_len: int | None = None


@dataclass
class SelectJob(Message):
    """Show one job on the Runs screen (the app hands it over after a submit)."""

    job_id: str


@dataclass
class JobSubmitted(Message):
    """A job was submitted from the Launch screen."""

    job_id: str


@dataclass
class JobStateChanged(Message):
    """A job moved to a new state (running, done, failed, cancelled)."""

    job_id: str
    name: str
    state: str


@dataclass
class RunNoticed(Message):
    """A run that ended or stalled out of sight was announced: how (`sent`: what the terminal
    was sent, the bell and/or an OSC 9 desktop notification)."""

    job_id: str
    state: str
    popup: bool
    sent: str


@dataclass
class LogAppended(Message):
    """New bytes arrived in a followed log; stale ones are dropped (coalesced)."""

    path: Path
    size: int

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, LogAppended) and message.path == self.path


@dataclass
class JobsListed(Message):
    """Fresh job states from the pool (newest first), and the hosts that did not answer."""

    jobs: tuple
    unreachable: dict[str, str]
    total: int = 0  # jobs in the registry, listed or not

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, JobsListed)


@dataclass
class MetricsLoaded(Message):
    """One job's own loss and eval_loss series (MinMaxSeries), built by a worker."""

    job_id: str
    key: tuple | None
    loss: object
    eval_loss: object


@dataclass
class JobCancelled(Message):
    """A cancel ended: the core CancelResult."""

    result: object


@dataclass
class HostsListed(Message):
    """The hosts to show (hosts.toml as it is now), by name and target."""

    targets: dict[str, str]


@dataclass
class HostProbed(Message):
    """One host answered (or not): the core HostProbe."""

    probe: object


@dataclass
class DatasetInfoLoaded(Message):
    """A worker read dataset_info.json: the core DatasetInfo."""

    info: DatasetInfo


@dataclass
class ValidationProgressed(Message):
    """Validation moved on within an entry (a sidecar ValidationProgress); stale ones drop."""

    progress: ValidationProgress

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ValidationProgressed)


@dataclass
class ReportsReady(Message):
    """Entries validated since the last batch: core DatasetReports (one table redraw)."""

    reports: tuple[DatasetReport, ...]


@dataclass
class ValidationFinished(Message):
    """Validation walked every entry; `failed` holds the entries that crashed."""

    failed: tuple[EntryFailed, ...] = ()


@dataclass
class StatsLoaded(Message):
    """One entry's core DatasetStats."""

    dataset: str
    stats: DatasetStats | TunedeckError  # the error when the stats could not be read


@dataclass
class RowLoaded(Message):
    """One row of an entry: the core RowView."""

    dataset: str
    view: RowView


@dataclass
class PreviewChoicesLoaded(Message):
    """What Preview can choose from: the DatasetInfo and the template names."""

    info: DatasetInfo
    templates: tuple[str, ...]


@dataclass
class SampleRendered(Message):
    """One row rendered for Preview (a sidecar Sample), with the entry's row count."""

    request: SampleRequest
    sample: Sample
    total: int


@dataclass
class LengthsMeasured(Message):
    """Lengths of an entry's rows for the histogram, in `unit` (tokens or chars)."""

    request: SampleRequest
    lengths: list[int]
    unit: str


@dataclass
class PullProgressed(Message):
    """How far the Runs screen's pull of a run is; stale ones are dropped (coalesced)."""

    job_id: str
    progress: Progress | None  # None: the fetch is starting

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, PullProgressed) and message.job_id == self.job_id


@dataclass
class PullNeedsConsent(Message):
    """A pull would replace local files newer than the host's copy: the user is asked first."""

    plan: PullPlan


@dataclass
class RunPulled(Message):
    """A run's output dir was brought back (or was already up to date)."""

    result: PullResult
