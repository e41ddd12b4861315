"""`dataset_info.json` entries as `DatasetSpec`s, with LLaMA-Factory's keys and defaults.

An entry names one source (a local file or folder, or a hub/script/cloud reference), a
formatting (alpaca, sharegpt or openai), which columns of a row hold what, and for
message lists which keys and role names the messages use.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from tunedeck.core.datasets.issues import ERROR, WARNING, Issue
from tunedeck.core.errors import DatasetError, Location, Severity

DATA_CONFIG = "dataset_info.json"
FORMATTINGS = ("alpaca", "sharegpt", "openai")
# In LLaMA-Factory's order of precedence: a hub url wins over a script, a script over a cloud
# file, a cloud file over a local file.
SOURCE_KEYS = (
    "hf_hub_url",
    "ms_hub_url",
    "om_hub_url",
    "script_url",
    "cloud_file_name",
    "file_name",
)
ENTRY_KEYS = frozenset(
    SOURCE_KEYS
    + ("file_sha1", "formatting", "ranking", "subset", "split", "folder", "num_samples")
    + ("columns", "tags")
)


@dataclass(frozen=True)
class Columns:
    """Which column of a row holds what (None: the row has no such column)."""

    prompt: str | None = "instruction"
    query: str | None = "input"
    response: str | None = "output"
    history: str | None = None
    messages: str | None = "conversations"
    system: str | None = None
    tools: str | None = None
    images: str | None = None
    videos: str | None = None
    audios: str | None = None
    chosen: str | None = None
    rejected: str | None = None
    kto_tag: str | None = None


@dataclass(frozen=True)
class Tags:
    """The keys of a message and the role names it uses (sharegpt/openai formatting)."""

    role_tag: str | None = "from"
    content_tag: str | None = "value"
    user_tag: str | None = "human"
    assistant_tag: str | None = "gpt"
    observation_tag: str | None = "observation"
    function_tag: str | None = "function_call"
    system_tag: str | None = "system"


OPENAI_TAGS = Tags("role", "content", "user", "assistant", "tool", "function", "system")
COLUMN_NAMES = tuple(f.name for f in fields(Columns))
TAG_NAMES = tuple(f.name for f in fields(Tags))


@dataclass(frozen=True)
class DatasetSpec:
    """One entry of dataset_info.json, with every attribute LLaMA-Factory accepts."""

    name: str
    file_name: str | None = None
    hf_hub_url: str | None = None
    ms_hub_url: str | None = None
    om_hub_url: str | None = None
    script_url: str | None = None
    cloud_file_name: str | None = None
    formatting: str = "alpaca"
    ranking: bool = False
    subset: str | None = None
    split: str = "train"
    folder: str | None = None
    num_samples: int | None = None
    columns: Columns = field(default_factory=Columns)
    tags: Tags = field(default_factory=Tags)
    declared_columns: frozenset[str] = field(default=frozenset(), compare=False)

    @property
    def load_from(self) -> str:
        """Where LLaMA-Factory would load it from (hub urls first, as it does)."""
        if self.hf_hub_url or self.ms_hub_url or self.om_hub_url:
            if self.hf_hub_url:
                return "hf_hub"
            return "ms_hub" if self.ms_hub_url else "om_hub"
        if self.script_url:
            return "script"
        if self.cloud_file_name:
            return "cloud_file"
        return "file"

    @property
    def is_local(self) -> bool:
        return self.load_from == "file"

    @property
    def source(self) -> str:
        """The url, script folder or file name the entry loads from."""
        key = {
            "hf_hub": "hf_hub_url",
            "ms_hub": "ms_hub_url",
            "om_hub": "om_hub_url",
            "script": "script_url",
            "cloud_file": "cloud_file_name",
            "file": "file_name",
        }[self.load_from]
        return getattr(self, key) or ""


@dataclass(frozen=True)
class DatasetInfo:
    """A parsed dataset_info.json: its specs, and the problems found in its entries."""

    path: Path
    data_dir: Path
    specs: dict[str, DatasetSpec]
    issues: tuple[Issue, ...] = ()
    names: tuple[str, ...] = ()  # every entry name, in file order, including broken ones

    def get(self, name: str) -> DatasetSpec:
        """The spec called `name`, or a DatasetError that suggests the closest names."""
        spec = self.specs.get(name)
        if spec is not None:
            return spec
        if name in self.names:
            raise DatasetError(
                f"dataset '{name}' has a broken entry",
                location=Location(file=str(self.path), column=name),
                hint="run `tunedeck data validate` to see why",
            )
        close = difflib.get_close_matches(name, list(self.specs), n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "see `tunedeck data validate`"
        raise DatasetError(
            f"no dataset named '{name}'", location=Location(file=str(self.path)), hint=hint
        )

    def get_local(self, name: str) -> DatasetSpec:
        """Like `get`, for an entry whose rows must be read here: a hub entry is an error."""
        spec = self.get(name)
        if not spec.is_local:
            raise DatasetError(
                f"'{name}' is a remote dataset ({spec.load_from}: {spec.source}); "
                "only local files can be read offline",
                location=Location(file=str(self.path)),
            )
        return spec


def load_dataset_info(path: str | Path) -> DatasetInfo:
    """Read a dataset_info.json (or the one in a data dir) into specs plus entry issues."""
    import orjson

    path = Path(path)
    info_path = path / DATA_CONFIG if path.is_dir() else path
    if not info_path.is_file():
        raise DatasetError(
            f"no {DATA_CONFIG} here",
            location=Location(file=str(info_path)),
            hint="pass a data directory that holds dataset_info.json, or the file itself",
        )
    text = info_path.read_bytes()
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        line, column = _line_and_column(text, error.pos)
        raise DatasetError(
            f"not valid JSON: {error.msg} (line {line}, column {column})",
            location=Location(file=str(info_path), line=line, column=str(column)),
        ) from None
    if not isinstance(document, dict):
        raise DatasetError(
            f"expected a JSON object of dataset entries, found {_json_type(document)}",
            location=Location(file=str(info_path)),
        )
    specs: dict[str, DatasetSpec] = {}
    issues: list[Issue] = []
    for name, entry in document.items():
        spec, entry_issues = parse_entry(name, entry, str(info_path))
        issues.extend(entry_issues)
        if spec is not None:
            specs[name] = spec
    return DatasetInfo(info_path, info_path.parent, specs, tuple(issues), tuple(document))


def spec_from_entry(name: str, entry: Any) -> DatasetSpec:
    """Build one spec from a raw entry; a broken entry raises DatasetError."""
    spec, issues = parse_entry(name, entry, None)
    errors = [issue for issue in issues if issue.is_error]
    if spec is None or errors:
        first = errors[0] if errors else issues[0]
        raise DatasetError(first.message, location=Location(column=name))
    return spec


def parse_entry(name: str, entry: Any, file: str | None) -> tuple[DatasetSpec | None, list[Issue]]:
    """One entry -> (spec or None when unusable, issues). Unknown keys are warnings."""
    issues: list[Issue] = []

    def issue(
        code: str, message: str, severity: Severity = ERROR, column: str | None = None
    ) -> None:
        issues.append(Issue(severity, code, message, file, None, column or name, dataset=name))

    if not isinstance(entry, dict):
        issue("entry_not_object", f"entry '{name}' is {_json_type(entry)}, expected an object")
        return None, issues
    for key in entry:
        if key not in ENTRY_KEYS:
            issue("unknown_key", _unknown(key, ENTRY_KEYS, f"key in entry '{name}'"), WARNING)
    if not any(key in entry for key in SOURCE_KEYS):
        issue(
            "no_source",
            f"entry '{name}' names no source: give one of {', '.join(SOURCE_KEYS)}",
        )
        return None, issues

    values: dict[str, Any] = {}
    for key in SOURCE_KEYS + ("subset", "split", "folder"):
        if key in entry and entry[key] is not None:
            if not isinstance(entry[key], str) or not entry[key]:
                issue("bad_value", f"'{key}' must be a non-empty string", column=f"{name}.{key}")
                continue
            values[key] = entry[key]
    formatting = entry.get("formatting", "alpaca")
    if formatting not in FORMATTINGS:
        issue(
            "bad_value",
            f"formatting {formatting!r} is not one of {', '.join(FORMATTINGS)}",
            column=f"{name}.formatting",
        )
        formatting = "alpaca"
    values["formatting"] = formatting
    ranking = entry.get("ranking", False)
    if not isinstance(ranking, bool):
        issue("bad_value", "'ranking' must be true or false", column=f"{name}.ranking")
        ranking = bool(ranking)
    values["ranking"] = ranking
    num_samples = entry.get("num_samples")
    if num_samples is not None and (
        not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 0
    ):
        issue("bad_value", "'num_samples' must be a whole number", column=f"{name}.num_samples")
        num_samples = None
    values["num_samples"] = num_samples

    openai = formatting == "openai"
    columns = Columns(messages="messages") if openai else Columns()
    tags = OPENAI_TAGS if openai else Tags()
    declared: set[str] = set()
    for group, names in (("columns", COLUMN_NAMES), ("tags", TAG_NAMES)):
        raw = entry.get(group)
        if raw is None:
            continue
        if not isinstance(raw, dict):
            issue("bad_value", f"'{group}' must be an object", column=f"{name}.{group}")
            continue
        changes: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in names:
                issue("unknown_key", _unknown(key, names, f"{group[:-1]} in '{name}'"), WARNING)
                continue
            if value is not None and not isinstance(value, str):
                issue("bad_value", f"'{group}.{key}' must be a string", column=f"{name}.{key}")
                continue
            changes[key] = value
        # As LLaMA-Factory does: once an entry has "columns" (or "tags"), every column (tag)
        # it does not list is unset, not left at its default.
        if group == "columns":
            columns = Columns(**{key: changes.get(key) for key in COLUMN_NAMES})
            declared.update(changes)
        else:
            tags = Tags(**{key: changes.get(key) for key in TAG_NAMES})
    values["columns"] = columns
    values["tags"] = tags
    values["declared_columns"] = frozenset(declared)
    if values.get("file_name") is None and not any(values.get(key) for key in SOURCE_KEYS):
        return None, issues
    spec = DatasetSpec(name=name, **values)
    if not spec.is_local:
        return spec, issues  # the data cannot be seen offline: nothing more to check
    if ranking and (columns.chosen is None or columns.rejected is None) and formatting != "alpaca":
        issue(
            "ranking_columns",
            f"entry '{name}' is a ranking set but its columns name no "
            + " and no ".join(c for c in ("chosen", "rejected") if getattr(columns, c) is None)
            + " column",
        )
    elif ranking and (columns.chosen is None or columns.rejected is None):
        issue(
            "ranking_columns",
            f"entry '{name}' is a ranking set but its columns do not name both 'chosen' "
            "and 'rejected'",
        )
    return spec, issues


def dataset_kind(spec: DatasetSpec) -> str:
    """What the entry trains: sft, pretrain, ranking, kto or multimodal (for display)."""
    columns = spec.columns
    if spec.ranking:
        return "ranking"
    if columns.kto_tag:
        return "kto"
    if columns.images or columns.videos or columns.audios:
        return "multimodal"
    if spec.formatting == "alpaca" and (
        columns.response is None or (spec.file_name or "").endswith(".txt")
    ):
        return "pretrain"
    return "sft"


def _unknown(key: str, known: Any, what: str) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    suggestion = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown {what}: '{key}' is ignored{suggestion}"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _line_and_column(text: bytes, pos: int) -> tuple[int, int]:
    """1-based line and column of a byte offset (orjson reports character offsets; close)."""
    pos = max(0, min(pos, len(text)))
    line = text.count(b"\n", 0, pos) + 1
    start = text.rfind(b"\n", 0, pos) + 1
    return line, pos - start + 1
