"""What a run would do to its datasets, checked before launch: rows dropped and rows truncated.

Each local dataset the config names goes through the datasets' own validation (rows
LLaMA-Factory drops: unreadable or invalid) and, with a tokenizer, through the one token-length
path (templates.lengths) to count the rows longer than cutoff_len. Each count comes with the
0-based index of its first row, for a row browser to open. Without a tokenizer no truncation
is counted (characters are not tokens).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tunedeck.core.errors import TunedeckError

# progress(stage "validate" | "lengths", dataset, done, total): bytes while validating, rows
# while measuring (total 0 when unknown)
LaunchProgress = Callable[[str, str, int, int], None]
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


@dataclass(frozen=True)
class DatasetLaunchCheck:
    """One dataset: its rows, how many are dropped or truncated, and the first of each."""

    dataset: str
    rows: int | None
    dropped: int = 0
    truncated: int | None = None  # None: not counted (no tokenizer)
    longest: int | None = None
    first_dropped: int | None = None
    first_truncated: int | None = None
    error: str = ""  # the dataset could not be checked at all

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> DatasetLaunchCheck:
        return cls(**doc)


@dataclass(frozen=True)
class LaunchDataCheck:
    """Every dataset of a run, at this cutoff_len, measured with this tokenizer (or none)."""

    datasets: tuple[DatasetLaunchCheck, ...]
    cutoff_len: int
    template: str | None = None
    tokenizer: str | None = None

    @property
    def dropped(self) -> int:
        return sum(d.dropped for d in self.datasets)

    @property
    def truncated(self) -> int | None:
        counted = [d.truncated for d in self.datasets if d.truncated is not None]
        return sum(counted) if counted else None

    @property
    def problems(self) -> bool:
        return bool(self.dropped or self.truncated or any(d.error for d in self.datasets))

    def first_row(self) -> tuple[str, int, str] | None:
        """(dataset, 0-based row, "dropped" | "truncated") of the first row worth a look."""
        for check in self.datasets:
            if check.first_dropped is not None:
                return check.dataset, check.first_dropped, "dropped"
        for check in self.datasets:
            if check.first_truncated is not None:
                return check.dataset, check.first_truncated, "truncated"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "cutoff_len": self.cutoff_len,
            "template": self.template,
            "tokenizer": self.tokenizer,
            "dropped": self.dropped,
            "truncated": self.truncated,
            "datasets": [d.to_dict() for d in self.datasets],
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> LaunchDataCheck:
        return cls(
            tuple(DatasetLaunchCheck.from_dict(d) for d in doc["datasets"]),
            doc["cutoff_len"],
            doc.get("template"),
            doc.get("tokenizer"),
        )


def check_launch_data(
    config,
    *,
    tokenizer: str | Path | None = None,
    progress: LaunchProgress | None = None,
) -> LaunchDataCheck:
    """Check the datasets of a RunConfig; the tokenizer is `tokenizer`, else the model folder
    when it holds one (loaded through transformers: run this off the app's process)."""
    from tunedeck.core.datasets import load_dataset_info

    folder = tokenizer_folder(tokenizer or config.model_name_or_path)
    info = load_dataset_info(config.dataset_dir)
    tok = None
    if folder is not None:
        from tunedeck.core.templates import load_tokenizer

        tok = load_tokenizer(folder, config.template)
    checks = tuple(
        _check_one(info, name, config, tok, progress) for name in dict.fromkeys(config.datasets)
    )
    return LaunchDataCheck(
        checks, config.cutoff_len, config.template, str(folder) if folder else None
    )


def tokenizer_folder(path: str | Path | None) -> Path | None:
    """`path` when it is a local folder holding tokenizer files, else None."""
    if not path:
        return None
    folder = Path(path).expanduser()
    if folder.is_dir() and any((folder / name).is_file() for name in TOKENIZER_FILES):
        return folder
    return None


# --- helpers -----------------------------------------------------------------------------------


def _check_one(info, name: str, config, tok, progress) -> DatasetLaunchCheck:
    from tunedeck.core.datasets import validate_entry

    spec = info.specs.get(name)
    if spec is None or not spec.is_local:
        why = "not in dataset_info.json" if spec is None else "not a local file"
        return DatasetLaunchCheck(name, None, error=why)

    def validating(dataset: str, _file: str, done: int, total: int) -> None:
        if progress is not None:
            progress("validate", dataset, done, total)

    try:
        report = validate_entry(info, name, progress=validating)
    except TunedeckError as error:
        return DatasetLaunchCheck(name, None, error=error.message)
    first_dropped = _first_dropped(report, spec, info.data_dir)
    if tok is None:
        return DatasetLaunchCheck(name, report.rows, report.error_rows, first_dropped=first_dropped)
    truncated, longest, first = _truncation(spec, info.data_dir, config, tok, name, progress)
    return DatasetLaunchCheck(
        name, report.rows, report.error_rows, truncated, longest, first_dropped, first
    )


def _first_dropped(report, spec, data_dir) -> int | None:
    rows = [i for i in report.issues if i.is_error and i.row is not None]
    if not rows and report.error_rows == 0:
        return None
    if not rows:
        return None
    first = min(rows, key=lambda i: (_file_offset(spec, data_dir, i.file), i.row))
    return _file_offset(spec, data_dir, first.file) + first.row - 1


def _truncation(spec, data_dir, config, tok, name, progress) -> tuple[int, int | None, int | None]:
    """(rows over cutoff_len, the longest row, the first such row's 0-based index)."""
    from tunedeck.core.datasets import iter_conversations
    from tunedeck.core.templates import token_lengths

    seen: list = []

    def recording() -> Iterator:
        for conversation in iter_conversations(spec, data_dir):
            seen.append(conversation.location)
            yield conversation

    over, longest, first = 0, None, None
    lengths = token_lengths(
        recording(), config.template, tok, mask_history=bool(getattr(config, "mask_history", 0))
    )
    for position, length in enumerate(lengths):
        longest = length if longest is None else max(longest, length)
        if length > config.cutoff_len:
            over += 1
            if first is None:
                first = _index_of(spec, data_dir, seen[position])
        if progress is not None and position % 1000 == 0:
            progress("lengths", name, position, 0)
    return over, longest, first


def _index_of(spec, data_dir, location) -> int | None:
    if location is None:
        return None
    return _file_offset(spec, data_dir, location.file) + location.row - 1


def _file_offset(spec, data_dir, file: str | None) -> int:
    """Rows in the entry's files before `file` (0 for a one-file entry)."""
    from tunedeck.core.datasets.readers import data_files
    from tunedeck.core.datasets.rows import _file_row_count

    files, kind = data_files(spec, data_dir)
    if len(files) < 2 or file is None:
        return 0
    offset = 0
    for path in files:
        if str(path) == str(file):
            return offset
        offset += _file_row_count(path, kind)
    return 0
