"""Validation: the loader's walk over dataset_info.json and every row, as located Issues.

LLaMA-Factory drops broken rows silently and later stops with "Cannot find valid samples";
here each such row is named with its file, row and cause. Hub entries are reported as
remote: nothing is fetched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunedeck.core.datasets.convert import converter_for
from tunedeck.core.datasets.fast_checks import batch_check, row_check
from tunedeck.core.datasets.issues import ERROR, WARNING, Issue
from tunedeck.core.datasets.readers import DataFileError, data_files, read_file_batches
from tunedeck.core.datasets.spec import DatasetInfo, DatasetSpec, dataset_kind, load_dataset_info
from tunedeck.core.errors import DatasetError

# progress(dataset name, file, bytes read in that file, that file's size)
ProgressCallback = Callable[[str, str, int, int], None]


@dataclass
class DatasetReport:
    """The outcome for one entry: status ok|warning|error|remote, rows read, issues kept."""

    name: str
    status: str
    rows: int | None
    issues: list[Issue] = field(default_factory=list)
    kind: str = ""
    formatting: str = ""
    source: str = ""
    issue_count: int = 0  # including those beyond max_issues
    error_rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "rows": self.rows,
            "kind": self.kind,
            "formatting": self.formatting,
            "source": self.source,
            "issue_count": self.issue_count,
            "error_rows": self.error_rows,
            "issues": [issue.to_dict() for issue in self.issues],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetReport:
        return cls(
            data["name"],
            data["status"],
            data.get("rows"),
            [Issue.from_dict(issue) for issue in data.get("issues", ())],
            kind=data.get("kind", ""),
            formatting=data.get("formatting", ""),
            source=data.get("source", ""),
            issue_count=data.get("issue_count", 0),
            error_rows=data.get("error_rows", 0),
        )


@dataclass
class ValidationReport:
    """All entries of one dataset_info.json, plus the problems of the file itself."""

    path: str
    datasets: list[DatasetReport]
    issues: list[Issue] = field(default_factory=list)

    @property
    def has_errors(self) -> bool:
        return any(issue.severity == ERROR for issue in self.issues) or any(
            report.status == "error" for report in self.datasets
        )

    @property
    def summary(self) -> dict[str, Any]:
        counts = {"ok": 0, "warning": 0, "error": 0, "remote": 0}
        for report in self.datasets:
            counts[report.status] += 1
        every = self.issues + [issue for report in self.datasets for issue in report.issues]
        return {
            "datasets": len(self.datasets),
            **counts,
            "local": len(self.datasets) - counts["remote"],
            "rows": sum(report.rows or 0 for report in self.datasets),
            "errors": sum(1 for issue in every if issue.severity == ERROR)
            + sum(max(0, r.issue_count - len(r.issues)) for r in self.datasets),
            "warnings": sum(1 for issue in every if issue.severity == WARNING),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "datasets": [report.to_dict() for report in self.datasets],
            "issues": [issue.to_dict() for issue in self.issues],
            "summary": self.summary,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationReport:
        """The inverse of to_dict; the summary is computed again, not read."""
        return cls(
            data["path"],
            [DatasetReport.from_dict(report) for report in data.get("datasets", ())],
            [Issue.from_dict(issue) for issue in data.get("issues", ())],
        )


def validate(
    path: str | Path,
    names: list[str] | None = None,
    max_issues: int = 50,
    progress: ProgressCallback | None = None,
) -> ValidationReport:
    """Validate a data dir (or a dataset_info.json): every entry, or only `names`.

    A missing dataset_info.json or an unknown name raises DatasetError; everything wrong
    inside the files becomes an Issue.
    """
    path = Path(path)
    try:
        info = load_dataset_info(path)
    except DatasetError as error:
        location = error.location
        if location is None or "no dataset_info.json" in error.message:
            raise
        code = "info_invalid_json" if "not valid JSON" in error.message else "info_not_object"
        line = location.line
        column = location.column
        issue = Issue(ERROR, code, error.message, location.file, None, column, line)
        return ValidationReport(str(path), [], [issue])
    selected = list(info.names) if not names else names
    for name in selected:
        if name not in info.names:
            info.get(name)  # raises with a did-you-mean hint
    reports = [validate_entry(info, name, max_issues, progress) for name in dict.fromkeys(selected)]
    return ValidationReport(str(info.path), reports)


def validate_dataset(
    spec: DatasetSpec,
    data_dir: str | Path,
    max_issues: int = 50,
    progress: ProgressCallback | None = None,
) -> DatasetReport:
    """Read every row of one local entry and report what would break or be dropped."""
    report = DatasetReport(
        spec.name,
        "ok",
        None,
        kind=dataset_kind(spec),
        formatting=spec.formatting,
        source=spec.source,
    )
    if not spec.is_local:
        report.status = "remote"
        return report
    keep = _Collector(report, max_issues, spec.name)
    try:
        files, kind = data_files(spec, data_dir)
    except DataFileError as error:
        keep.add(Issue(ERROR, error.code, error.message, error.location.file, dataset=spec.name))
        report.status = "error"
        return report
    converter = converter_for(spec, data_dir)
    problems = converter.problems
    rows = 0
    for file in files:
        name = str(file)
        on_bytes = None
        if progress is not None:
            size = file.stat().st_size

            def on_bytes(done: int, name: str = name, size: int = size) -> None:
                progress(spec.name, name, done, size)

        def slow(row: int, line: int | None, value: Any, error: str | None, name: str = name):
            if error is not None:
                keep.row(Issue(ERROR, "row_unreadable", error, name, row, None, line, spec.name))
                return
            bad = False
            for problem in problems(value):
                keep.add(
                    Issue(
                        problem.severity,
                        problem.code,
                        problem.message,
                        name,
                        row,
                        problem.column,
                        line,
                        spec.name,
                    )
                )
                bad = bad or problem.severity == ERROR
            if bad:
                report.error_rows += 1

        rows += _check_file(file, kind, spec, slow, on_bytes)
        if progress is not None:
            progress(spec.name, name, file.stat().st_size, file.stat().st_size)
    report.rows = rows
    report.error_rows += keep.unreadable
    if rows == 0:
        keep.add(
            Issue(
                ERROR,
                "no_rows",
                "no rows to train on: the data is empty",
                str(files[0]),
                dataset=spec.name,
            )
        )
    elif report.error_rows >= rows:
        keep.add(
            Issue(
                ERROR,
                "no_valid_rows",
                f"none of the {rows} rows is usable; LLaMA-Factory would stop with "
                "'Cannot find valid samples'",
                str(files[0]),
                dataset=spec.name,
            )
        )
    report.status = _status(report)
    return report


def _check_file(path: Path, kind: str, spec: DatasetSpec, slow: Any, progress: Any) -> int:
    """Read one file a batch at a time; rows the fast checks do not pass go to `slow`.

    The fast checks pass the common clean row at little more than the cost of parsing
    it; the full walk (`slow`) runs only for the rest. Returns the number of rows.
    """
    clean_rows, clean_row = batch_check(spec), row_check(spec)
    rows = 0
    for batch in read_file_batches(path, kind, progress):
        values = batch.values
        rows += len(values)
        if batch.error is not None:
            slow(batch.row, batch.line(0), None, batch.error)
            continue
        if clean_rows is None:
            suspects: Iterable[int] = range(len(values))
        elif clean_rows(values):
            continue
        else:
            suspects = _suspects(values, clean_rows, clean_row)
        for index in suspects:
            slow(batch.row + index, batch.line(index), values[index], None)
    return rows


def _suspects(values: list[Any], clean_rows: Any, clean_row: Any, offset: int = 0) -> list[int]:
    """Indexes of the rows that fail clean_row, found by halving a batch that failed."""
    if len(values) <= 64:
        return [offset + index for index, ok in enumerate(map(clean_row, values)) if not ok]
    half = len(values) // 2
    found = []
    for start, part in ((0, values[:half]), (half, values[half:])):
        if not clean_rows(part):
            found += _suspects(part, clean_rows, clean_row, offset + start)
    return found


def validate_entry(
    info: DatasetInfo,
    name: str,
    max_issues: int = 50,
    progress: ProgressCallback | None = None,
) -> DatasetReport:
    """One entry of a loaded dataset_info.json: its spec problems, then its rows."""
    entry_issues = [issue for issue in info.issues if issue.dataset == name]
    spec = info.specs.get(name)
    if spec is None:
        report = DatasetReport(name, "error", None, issues=entry_issues[:max_issues])
        report.issue_count = len(entry_issues)
        return report
    report = validate_dataset(spec, info.data_dir, max_issues, progress)
    if entry_issues:
        report.issues = (entry_issues + report.issues)[:max_issues]
        report.issue_count += len(entry_issues)
        if report.status != "remote":
            report.status = _status(report)
        elif any(issue.severity == ERROR for issue in entry_issues):
            report.status = "error"
    return report


def _status(report: DatasetReport) -> str:
    if any(issue.severity == ERROR for issue in report.issues) or report.error_rows:
        return "error"
    if report.issues:
        return "warning"
    return "ok"


class _Collector:
    """Keeps the first max_issues issues of a dataset, counts the rest."""

    def __init__(self, report: DatasetReport, limit: int, dataset: str):
        self.report = report
        self.limit = max(0, limit)
        self.dataset = dataset
        self.unreadable = 0

    def add(self, issue: Issue) -> None:
        self.report.issue_count += 1
        if len(self.report.issues) < self.limit:
            self.report.issues.append(issue)

    def row(self, issue: Issue) -> None:
        self.unreadable += 1
        self.add(issue)
