"""Per-dataset statistics: rows, rows with issues, roles seen, text lengths, media counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunedeck.core.datasets.conversation import RowLocation
from tunedeck.core.datasets.convert import converter_for
from tunedeck.core.datasets.issues import ERROR, Issue
from tunedeck.core.datasets.readers import data_files, read_file_rows
from tunedeck.core.datasets.spec import DatasetSpec, dataset_kind


@dataclass(frozen=True)
class Summary:
    """min / median / 95th percentile / max of a list of lengths (all 0 when empty)."""

    min: int = 0
    median: int = 0
    p95: int = 0
    max: int = 0

    @classmethod
    def of(cls, values: list[int]) -> Summary:
        if not values:
            return cls()
        ordered = sorted(values)
        last = len(ordered) - 1
        return cls(
            ordered[0],
            ordered[last // 2]
            if len(ordered) % 2
            else (ordered[last // 2] + ordered[last // 2 + 1]) // 2,
            ordered[min(last, round(0.95 * last))],
            ordered[-1],
        )

    def to_dict(self) -> dict[str, int]:
        return {"min": self.min, "median": self.median, "p95": self.p95, "max": self.max}

    @classmethod
    def from_dict(cls, data: dict[str, int]) -> Summary:
        return cls(data["min"], data["median"], data["p95"], data["max"])


@dataclass(frozen=True)
class DatasetStats:
    name: str
    rows: int
    rows_with_issues: int
    formatting: str
    kind: str
    roles: dict[str, int] = field(default_factory=dict)
    prompt_chars: Summary = Summary()
    response_chars: Summary = Summary()
    turns: Summary = Summary()
    images: int = 0
    videos: int = 0
    audios: int = 0
    rows_with_media: int = 0
    with_system: int = 0
    with_tools: int = 0
    usable_rows: int = 0  # rows that became a conversation (what training would use)
    first_issue: Issue | None = None  # where the first row with an issue is, and why

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rows": self.rows,
            "rows_with_issues": self.rows_with_issues,
            "formatting": self.formatting,
            "kind": self.kind,
            "roles": dict(self.roles),
            "prompt_chars": self.prompt_chars.to_dict(),
            "response_chars": self.response_chars.to_dict(),
            "turns": self.turns.to_dict(),
            "multimodal": {
                "images": self.images,
                "videos": self.videos,
                "audios": self.audios,
                "rows_with_media": self.rows_with_media,
            },
            "with_system": self.with_system,
            "with_tools": self.with_tools,
            "usable_rows": self.usable_rows,
            "first_issue": self.first_issue.to_dict() if self.first_issue else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetStats:
        media = data.get("multimodal", {})
        return cls(
            name=data["name"],
            rows=data["rows"],
            rows_with_issues=data["rows_with_issues"],
            formatting=data["formatting"],
            kind=data["kind"],
            roles=dict(data.get("roles", {})),
            prompt_chars=Summary.from_dict(data["prompt_chars"]),
            response_chars=Summary.from_dict(data["response_chars"]),
            turns=Summary.from_dict(data["turns"]),
            images=media.get("images", 0),
            videos=media.get("videos", 0),
            audios=media.get("audios", 0),
            rows_with_media=media.get("rows_with_media", 0),
            with_system=data.get("with_system", 0),
            with_tools=data.get("with_tools", 0),
            usable_rows=data.get("usable_rows", 0),
            first_issue=Issue.from_dict(data["first_issue"]) if data.get("first_issue") else None,
        )


def dataset_stats(spec: DatasetSpec, data_dir: str | Path) -> DatasetStats:
    """Walk a local entry once and summarise it (prompt = every turn before the answer)."""
    files, kind = data_files(spec, data_dir)
    converter = converter_for(spec, data_dir)
    rows = bad = 0
    roles: dict[str, int] = {}
    prompt_chars: list[int] = []
    response_chars: list[int] = []
    turns: list[int] = []
    media = {"images": 0, "videos": 0, "audios": 0}
    with_media = with_system = with_tools = 0
    first: Issue | None = None
    for path in files:
        for row, line, value, error in read_file_rows(path, kind):
            rows += 1
            if error is not None:
                bad += 1
                if first is None:
                    first = Issue(
                        ERROR, "row_unreadable", error, str(path), row, None, line, spec.name
                    )
                continue
            conversation, problems = converter.convert(value, RowLocation(str(path), row))
            if problems:
                bad += 1
                if first is None:
                    p = problems[0]
                    first = Issue(
                        p.severity, p.code, p.message, str(path), row, p.column, line, spec.name
                    )
            if conversation is None:
                continue
            for message in conversation.prompt + conversation.response:
                roles[message.role.value] = roles.get(message.role.value, 0) + 1
            if conversation.system:
                roles["system"] = roles.get("system", 0) + 1
                with_system += 1
            if conversation.tools:
                with_tools += 1
            prompt_chars.append(sum(len(message.content) for message in conversation.prompt))
            answers = [message.content for message in conversation.response if message.content]
            response_chars.append(max((len(text) for text in answers), default=0))
            turns.append(len(conversation.prompt) + min(1, len(conversation.response)))
            counts = (len(conversation.images), len(conversation.videos), len(conversation.audios))
            for name, count in zip(("images", "videos", "audios"), counts, strict=True):
                media[name] += count
            if any(counts):
                with_media += 1
    return DatasetStats(
        spec.name,
        rows,
        bad,
        spec.formatting,
        dataset_kind(spec),
        dict(sorted(roles.items())),
        Summary.of(prompt_chars),
        Summary.of(response_chars),
        Summary.of(turns),
        media["images"],
        media["videos"],
        media["audios"],
        with_media,
        with_system,
        with_tools,
        len(turns),
        first,
    )
