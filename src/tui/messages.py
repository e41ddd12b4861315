"""The app's own messages, in one place: widgets and screens talk upward with these."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual.message import Message


@dataclass
class OpenDatasetRow(Message):
    """Show one row of a dataset (from an issue or a row browser)."""

    dataset: str
    row: int


@dataclass
class PreviewDataset(Message):
    """Open the Preview screen on a dataset (posted upward; the app hands it to Preview)."""

    dataset: str


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
