"""Which dataset row each example of a run's first batches comes from, for a row browser.

The batches themselves are `preview_batches`' (the engine's order, padding and labels, from the
runner's prepared data); this module adds their provenance, which the prepared data records: the
run's row order less the rows its build dropped. Packed runs mix rows into each example, so their
rows have no single source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunedeck.core.config import RunConfig
from tunedeck.core.runners.batches import Batch, prepared_batches


@dataclass(frozen=True)
class RowSource:
    """A dataset entry's row (0-based over its files, as the row browsers count)."""

    dataset: str
    row: int


@dataclass(frozen=True)
class BatchPreview:
    """A run config's first batches, each example's source row (None when packed), and the
    template, tokenizer and cutoff_len its rows were encoded with."""

    batches: tuple[Batch, ...]
    sources: tuple[RowSource | None, ...]  # by example index; empty for a packed run
    packed: bool
    template: str | None
    tokenizer: str
    cutoff_len: int
    dataset_dir: str

    def source(self, example: int) -> RowSource | None:
        """The row an example was encoded from (None when packed or unknown)."""
        return self.sources[example] if 0 <= example < len(self.sources) else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "batches": [b.to_json() for b in self.batches],
            "sources": [None if s is None else [s.dataset, s.row] for s in self.sources],
            "packed": self.packed,
            "template": self.template,
            "tokenizer": self.tokenizer,
            "cutoff_len": self.cutoff_len,
            "dataset_dir": self.dataset_dir,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> BatchPreview:
        return cls(
            batches=tuple(_batch_from_json(b) for b in doc["batches"]),
            sources=tuple(None if s is None else RowSource(*s) for s in doc["sources"]),
            packed=bool(doc["packed"]),
            template=doc.get("template"),
            tokenizer=doc["tokenizer"],
            cutoff_len=int(doc["cutoff_len"]),
            dataset_dir=doc["dataset_dir"],
        )


def batch_preview(config: RunConfig, count: int, status=None) -> BatchPreview:
    """The first `count` batches of a run config with the dataset row of each example."""
    from tunedeck.core.runners.encode import data_cutoff

    batches, prepared = prepared_batches(config, count, status)
    rows = prepared.example_rows(config)
    return BatchPreview(
        batches=tuple(batches),
        sources=() if rows is None else tuple(RowSource(*row) for row in rows),
        packed=rows is None,
        template=config.template,
        tokenizer=str(config.model_name_or_path),  # the runner's load_tokenizer reads it there
        cutoff_len=data_cutoff(config),
        dataset_dir=str(config.dataset_dir),
    )


def example_sources(config: RunConfig) -> list[RowSource]:
    """For an unpacked run, the source row of each training example, in example order."""
    from tunedeck.core.runners.prepared import prepare_dataset
    from tunedeck.core.runners.train import load_tokenizer

    rows = prepare_dataset(config, load_tokenizer(config)).example_rows(config)
    return [RowSource(*row) for row in rows or ()]


def _batch_from_json(doc: dict[str, Any]) -> Batch:
    from tunedeck.core.runners.batches import BatchRow

    rows = tuple(BatchRow(**row) for row in doc["rows"])
    features = {k: v for k, v in doc.items() if k not in ("step", "rows")}
    return Batch(step=int(doc["step"]), rows=rows, features=features)
