"""A problem found in dataset_info.json or a data file, located well enough to act on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunedeck.core.errors import Location, Severity

ERROR = Severity.ERROR
WARNING = Severity.WARNING


@dataclass(frozen=True)
class Issue:
    """code: a stable snake_case name; row and line are 1-based.

    The converter reports an Issue with only its column; validation adds the file, row,
    line and dataset it found the row at.
    """

    severity: Severity
    code: str
    message: str
    file: str | None = None
    row: int | None = None
    column: str | None = None
    line: int | None = None
    dataset: str | None = None

    @property
    def where(self) -> str:
        """`file, line 3, row 2, 'column'` for humans."""
        return str(Location(file=self.file, row=self.row, line=self.line, column=self.column))

    @property
    def is_error(self) -> bool:
        return self.severity == Severity.ERROR

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "file": self.file,
            "row": self.row,
            "column": self.column,
            "line": self.line,
            "dataset": self.dataset,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Issue:
        return cls(
            Severity(data["severity"]),
            data["code"],
            data["message"],
            data.get("file"),
            data.get("row"),
            data.get("column"),
            data.get("line"),
            data.get("dataset"),
        )
