"""A problem found in dataset_info.json or a data file, located well enough to act on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunedeck.core.errors import Location

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Issue:
    """severity: error|warning; code: a stable snake_case name; row and line are 1-based."""

    severity: str
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "file": self.file,
            "row": self.row,
            "column": self.column,
            "line": self.line,
        }
