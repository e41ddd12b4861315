"""Load a run config (YAML or JSON, plus `key=value` overrides) and check it before any heavy import.

Every problem names its key and, for a file, the line it is on; nothing here imports torch.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from tunedeck.core.config.schema import IGNORED_KEYS, KEY_RULES, KNOWN_KEYS, RunConfig
from tunedeck.core.errors import ConfigError, Location, Severity, UsageError, shorten

COMMAND_LINE = "command line"
PURPOSES = ("train", "export")
# A LLaMA-Factory config is a few KB; these bounds keep a hostile file cheap to check.
MAX_CONFIG_BYTES = 1 << 20
MAX_VALUE_ITEMS = 10_000  # scalars, lists and mappings one key's value expands to (aliases too)
MAX_DOCUMENT_ITEMS = 100_000
SHOWN_PROBLEMS = 50  # what `config check` lists unless told otherwise
HINTED_UNKNOWN_KEYS = 200  # unknown keys that get a "did you mean" (difflib is slow)


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong (or doubtful, severity warning) with a config, located at its key."""

    key: str | None
    message: str
    location: Location
    hint: str | None = None
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        where = str(self.location)
        return f"{where}: {self.message}" if where else self.message

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "key": self.key,
            "message": self.message,
            "file": self.location.file,
            "line": self.location.line,
            "column": self.location.column,
            "hint": self.hint,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConfigProblem:
        location = Location(file=data.get("file"), line=data.get("line"), column=data.get("column"))
        return cls(
            data.get("key"),
            data["message"],
            location,
            data.get("hint"),
            Severity(data.get("severity", Severity.ERROR)),
        )


@dataclass(frozen=True)
class ConfigCheck:
    """The outcome of checking a config: the resolved RunConfig (None when invalid) and problems."""

    config: RunConfig | None
    problems: tuple[ConfigProblem, ...]
    path: Path | None = None
    purpose: str = "train"  # or "export": what the config was checked as

    @property
    def errors(self) -> tuple[ConfigProblem, ...]:
        return tuple(p for p in self.problems if p.severity == Severity.ERROR)

    @property
    def warnings(self) -> tuple[ConfigProblem, ...]:
        return tuple(p for p in self.problems if p.severity == Severity.WARNING)

    @property
    def ok(self) -> bool:
        return not self.errors

    def shown(self, limit: int | None = None) -> tuple[ConfigProblem, ...]:
        """Errors first, then warnings; at most `limit` of them (None: all)."""
        ordered = (*self.errors, *self.warnings)
        return ordered if limit is None else ordered[:limit]

    def to_dict(self, limit: int | None = None) -> dict[str, Any]:
        """What `tunedeck config check --json` prints; `limit` caps the problems listed
        (errors first), `problem_count` is always the full count."""
        whole = limit is None or len(self.problems) <= limit
        problems = self.problems if whole else self.shown(limit)
        return {
            "path": str(self.path) if self.path is not None else None,
            "ok": self.ok,
            "problems": [problem.to_dict() for problem in problems],
            "problem_count": len(self.problems),
            "config": self.config.to_dict() if self.config is not None else None,
            "purpose": self.purpose,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConfigCheck:
        config = data.get("config")
        path = data.get("path")
        return cls(
            RunConfig.from_dict(config) if config is not None else None,
            tuple(ConfigProblem.from_dict(problem) for problem in data.get("problems", ())),
            Path(path) if path is not None else None,
            data.get("purpose", "train"),
        )


class ConfigInvalid(ConfigError):
    """A config with one or more errors; `problems` holds them all, the message the first."""

    def __init__(self, problems: Sequence[ConfigProblem]):
        first = problems[0]
        more = len(problems) - 1
        message = first.message + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")
        super().__init__(message, location=first.location, hint=first.hint)
        self.problems = tuple(problems)


def load_config(
    path: str | Path | None,
    overrides: Iterable[str] = (),
    *,
    purpose: str = "train",
    check_files: bool = True,
) -> RunConfig:
    """Read, override and check a config; raise ConfigInvalid listing every error."""
    check = check_config(path, overrides, purpose=purpose, check_files=check_files)
    if not check.ok:
        raise ConfigInvalid(check.errors)
    assert check.config is not None
    return check.config


def check_config(
    path: str | Path | None,
    overrides: Iterable[str] = (),
    *,
    purpose: str | None = "train",
    check_files: bool = True,
) -> ConfigCheck:
    """Read a config file (or none) plus `key=value` overrides and report every problem.

    purpose 'train' needs dataset/output_dir, 'export' needs export_dir; None tells them apart
    (an export config has export_dir and no output_dir, dataset or do_train). check_files=False
    skips the checks that look at the disk (dataset_info.json, templates, output_dir). The
    `engine` key (builtin, llamafactory, auto) chooses whose keys and rules apply.
    """
    if purpose is not None and purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {PURPOSES}")
    entries: list[_Entry] = []
    file = Path(path) if path is not None else None
    if file is not None:
        entries += _read_file(file)
    for key, value in parse_overrides(overrides):
        entries.append(_Entry(key, value, Location(file=COMMAND_LINE, column=key)))
    purpose = purpose or config_purpose(entry.key for entry in entries)
    from tunedeck.core.config.engine_check import check_for_engine

    return check_for_engine(entries, file, purpose, check_files)


def config_purpose(keys: Iterable[str]) -> str:
    """'export' for a config with export_dir and no output_dir, dataset or do_train; else 'train'."""
    present = set(keys)
    if "export_dir" in present and not present & {"output_dir", "dataset", "do_train"}:
        return "export"
    return "train"


def check_builtin(
    entries: list[_Entry], file: Path | None, purpose: str, check_files: bool
) -> ConfigCheck:
    """The built-in engine's check: tunedeck's own keys, types, ranges and files."""
    problems: list[ConfigProblem] = []
    values, where = _merge(entries, problems)
    config = _build(values, where, problems)
    if config is not None:
        _check_combinations(config, where, problems, purpose)
        if check_files:
            from tunedeck.core.config.checks import check_on_disk

            problems += check_on_disk(config, where, purpose)
    has_errors = any(p.severity == Severity.ERROR for p in problems)
    config = None if has_errors else config
    return ConfigCheck(config=config, problems=tuple(problems), path=file, purpose=purpose)


def parse_overrides(items: Iterable[str]) -> list[tuple[str, Any]]:
    """`key=value` strings to (key, value); the value is read as YAML (`true`, `1e-4`, `null`)."""
    pairs = []
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().lstrip("-").replace("-", "_") if key.startswith("--") else key.strip()
        if not sep or not key:
            raise UsageError(
                f"override '{item}' is not key=value",
                hint="write overrides like learning_rate=1e-4 after the config file",
            )
        pairs.append((key, _parse_scalar(key, text)))
    return pairs


def dump_config(config: RunConfig, path: str | Path, *, only_changed: bool = True) -> Path:
    """Write a config as YAML that load_config reads back to the same RunConfig."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    document = config.changed() if only_changed else config.to_dict()
    out.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return out


@dataclass(frozen=True)
class _Entry:
    key: str
    value: Any
    location: Location


def _parse_scalar(key: str, text: str) -> Any:
    if text == "":
        return None
    try:
        node = yaml.compose(text, Loader=_YAML_LOADER)
    except (yaml.YAMLError, RecursionError):
        return text
    if node is None:
        return None
    items = _expanded(node, {})
    if items == _CYCLE or items > MAX_VALUE_ITEMS:
        raise UsageError(
            f"override '{key}' expands YAML aliases to more than {MAX_VALUE_ITEMS:,} values",
            location=Location(file=COMMAND_LINE, column=key),
            hint="write the value out without aliases",
        )
    try:
        return yaml.SafeLoader("").construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError):
        return text


def _read_file(path: Path) -> list[_Entry]:
    text = _read_text(path)
    try:
        root = yaml.compose(text, Loader=_YAML_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(
            f"not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc.problem or exc}",
            location=Location(file=str(path), line=line),
        ) from None
    except yaml.YAMLError:
        return _read_json_without_lines(path, text)
    except RecursionError:
        raise ConfigError(
            "nested too deeply to be a config", location=Location(file=str(path))
        ) from None
    if root is None:
        return []
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(
            "a config must be a mapping of key: value",
            location=Location(file=str(path), line=root.start_mark.line + 1),
        )
    _check_expansion(path, text, root)
    loader = yaml.SafeLoader("")
    entries = []
    for key_node, value_node in root.value:
        try:
            key = str(loader.construct_object(key_node, deep=True))
            value = loader.construct_object(value_node, deep=True)
        except (yaml.YAMLError, ValueError) as exc:
            raise ConfigError(
                f"cannot read this value: {_unreadable(exc)}",
                location=_key_location(path, key_node),
            ) from None
        entries.append(_Entry(key, value, _node_location(path, key, key_node)))
    return entries


# libyaml's composer when PyYAML has it: a config of MAX_CONFIG_BYTES composes in well under 1 s.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise ConfigError(
            "config file not found", location=Location(file=str(path)), hint="check the path"
        )
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"is {size / (1 << 20):.1f} MiB; a run config may be at most {MAX_CONFIG_BYTES >> 20} MiB",
            location=Location(file=str(path)),
            hint="a LLaMA-Factory config is a few KB of key: value lines; is this the right file?",
        )
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"not valid UTF-8: byte 0x{data[exc.start]:02x} at byte offset {exc.start}",
            location=Location(file=str(path), line=line),
            hint="save the config as UTF-8",
        ) from None


def _unreadable(exc: Exception) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if "integer string conversion" in text:
        return "a whole number with thousands of digits"
    return text if len(text) <= 120 else text[:117] + "..."


def _key_location(path: Path, key_node: yaml.Node) -> Location:
    key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
    return Location(file=str(path), line=key_node.start_mark.line + 1, column=key)


def _check_expansion(path: Path, text: str, root: yaml.MappingNode) -> None:
    """Refuse values whose aliases expand past MAX_VALUE_ITEMS (a 'billion laughs' file),
    located at the key, before anything is constructed or shown."""
    sizes: dict[int, int] = {}
    total = 0
    for key_node, value_node in root.value:
        parts = (_expanded(key_node, sizes), _expanded(value_node, sizes))
        cyclic = _CYCLE in parts
        items = sum(parts)
        total += items
        if not cyclic and items <= MAX_VALUE_ITEMS and total <= MAX_DOCUMENT_ITEMS:
            continue
        where = _key_location(path, key_node)
        if cyclic:
            message = "refers to itself through a YAML alias"
        elif items > MAX_VALUE_ITEMS:
            message = f"expands YAML aliases to more than {MAX_VALUE_ITEMS:,} values"
        else:
            message = f"brings the YAML aliases of this file past {MAX_DOCUMENT_ITEMS:,} values"
        raise ConfigError(
            message + _alias_note(text, key_node, value_node, sizes),
            location=where,
            hint="a config value is a number, a word or a short list; write it out without aliases",
        )


_CYCLE = -1  # the size of a node that contains itself


def _expanded(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many nodes `node` expands to, aliases counted every time they are used; capped
    just past MAX_DOCUMENT_ITEMS, _CYCLE when it contains itself. Iterative, so a deep value
    cannot exhaust the stack."""
    cap = MAX_DOCUMENT_ITEMS + 1
    stack: list[tuple[yaml.Node, bool]] = [(node, False)]
    open_nodes: set[int] = set()
    while stack:
        current, finished = stack.pop()
        ident = id(current)
        if finished:
            open_nodes.discard(ident)
            sizes[ident] = min(cap, 1 + sum(sizes[id(child)] for child in _children(current)))
            continue
        if ident in sizes:
            continue
        open_nodes.add(ident)
        stack.append((current, True))
        for child in _children(current):
            if id(child) in open_nodes:
                sizes[id(node)] = _CYCLE
                return _CYCLE
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(node)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


_ANCHOR = re.compile(r"&([^\s\[\]{},]+)")


def _alias_note(text: str, key_node: yaml.Node, node: yaml.Node, sizes: dict[int, int]) -> str:
    """' (the alias *d, anchored on line 4, used 9 times here)': the heaviest aliased node
    under `node`, found by walking down the heaviest child."""
    lines = text.splitlines()
    parent: yaml.Node | None = None
    for _step in range(64):
        mark = node.start_mark
        anchor = _ANCHOR.match(lines[mark.line] if mark.line < len(lines) else "", mark.column)
        defined_here = parent is None and mark.line == key_node.start_mark.line
        if anchor and not defined_here:
            uses = sum(child is node for child in _children(parent)) if parent else 1
            times = f", used {uses} times here" if uses > 1 else ""
            return f" (the alias *{anchor.group(1)}, anchored on line {mark.line + 1}{times})"
        children = _children(node)
        if not children:
            return ""
        parent, node = node, max(children, key=lambda child: sizes.get(id(child), 0))
    return ""


def _read_json_without_lines(path: Path, text: str) -> list[_Entry]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"not valid JSON: {exc.msg}", location=Location(file=str(path), line=exc.lineno)
        ) from None
    if not isinstance(document, dict):
        raise ConfigError("a config must be an object of key: value", location=Location(str(path)))
    return [_Entry(str(k), v, Location(file=str(path), column=str(k))) for k, v in document.items()]


def _node_location(path: Path, key: str, node: yaml.Node) -> Location:
    return Location(file=str(path), line=node.start_mark.line + 1, column=key)


def _merge(
    entries: list[_Entry], problems: list[ConfigProblem]
) -> tuple[dict[str, Any], dict[str, Location]]:
    values: dict[str, Any] = {}
    where: dict[str, Location] = {}
    unknown = 0
    for entry in entries:
        key = entry.key
        if key in IGNORED_KEYS:
            problems.append(
                ConfigProblem(
                    key,
                    f"has no effect in tunedeck: {IGNORED_KEYS[key]}",
                    entry.location,
                    severity=Severity.WARNING,
                )
            )
            continue
        if key not in KNOWN_KEYS:
            unknown += 1
            hint = _did_you_mean(key) if unknown <= HINTED_UNKNOWN_KEYS else _SEE_KEYS
            problems.append(ConfigProblem(key, "unknown key", entry.location, hint=hint))
            continue
        previous = where.get(key)
        if previous is not None and previous.file == entry.location.file != COMMAND_LINE:
            problems.append(
                ConfigProblem(key, f"given twice (first on line {previous.line})", entry.location)
            )
        values[key] = entry.value
        where[key] = entry.location
    return values, where


_SEE_KEYS = "see `tunedeck config keys` for every key"


def _did_you_mean(key: str) -> str | None:
    close = difflib.get_close_matches(key, list(KNOWN_KEYS) + list(IGNORED_KEYS), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else _SEE_KEYS


_TYPES = {f.name: f.type for f in fields(RunConfig)}
_LIST_KEYS = {
    "dataset",
    "eval_dataset",
    "lora_target",
    "additional_target",
    "freeze_trainable_modules",
    "report_to",
}


def _build(
    values: dict[str, Any], where: dict[str, Location], problems: list[ConfigProblem]
) -> RunConfig | None:
    coerced = {}
    for key, value in values.items():
        try:
            coerced[key] = _check_range(key, _coerce(key, value))
        except ValueError as exc:
            problems.append(ConfigProblem(key, str(exc), where[key]))
    if any(p.severity == Severity.ERROR for p in problems):
        return None
    return RunConfig(**coerced)


def _coerce(key: str, value: Any) -> Any:
    """Turn a YAML/override value into the key's type, the way HfArgumentParser would accept it."""
    kinds = [k.strip() for k in str(_TYPES[key]).split("|")]
    if value is None:
        if "None" in kinds:
            return None
        raise ValueError("needs a value")
    if key in _LIST_KEYS and isinstance(value, list):
        value = ",".join(str(v) for v in value)
    if "dict" in kinds and isinstance(value, dict):
        return value
    if isinstance(value, bool):
        if "bool" in kinds:
            return value
    elif "bool" in kinds and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if "int" in kinds and not isinstance(value, bool):
        number = _as_number(value)
        if number is not None and float(number).is_integer():
            return int(number)
    if "float" in kinds and not isinstance(value, bool):
        number = _as_number(value)
        if number is not None:
            return float(number)
    if "str" in kinds and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"expected {_describe(kinds)}, got {shorten(value)}")


def _as_number(value: Any) -> float | int | None:
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _describe(kinds: list[str]) -> str:
    words = {"bool": "true or false", "int": "a whole number", "float": "a number", "str": "text"}
    named = [words[k] for k in kinds if k in words]
    if "None" in kinds:
        named.append("null")
    if "int" in kinds and "float" in kinds:
        named.remove("a whole number")
    return " or ".join(named)


def _check_range(key: str, value: Any) -> Any:
    rule = KEY_RULES.get(key)
    if rule is None or value is None or isinstance(value, bool):
        return value
    if rule.choices is not None and value not in rule.choices:
        options = ", ".join(str(c) for c in rule.choices)
        raise ValueError(f"must be one of {options}, got {shorten(value)}")
    if isinstance(value, (int, float)):
        low, high = rule.minimum, rule.maximum
        if low is not None and (value <= low if rule.exclusive_minimum else value < low):
            raise ValueError(
                f"must be {'>' if rule.exclusive_minimum else '>='} {low}, got {shorten(value)}"
            )
        if high is not None and (value >= high if rule.exclusive_maximum else value > high):
            raise ValueError(
                f"must be {'<' if rule.exclusive_maximum else '<='} {high}, got {shorten(value)}"
            )
    return value


def _check_combinations(
    config: RunConfig, where: dict[str, Location], problems: list[ConfigProblem], purpose: str
) -> None:
    def problem(key: str, message: str, hint: str | None = None) -> None:
        problems.append(ConfigProblem(key, message, where.get(key, Location(column=key)), hint))

    if not config.model_name_or_path:
        problem("model_name_or_path", "is required", "a local model folder or a hub id")
    if purpose == "export":
        if not config.export_dir:
            problem("export_dir", "is required to export", "the folder to write the model to")
        if config.export_quantization_bit and not config.export_quantization_dataset:
            problem(
                "export_quantization_dataset",
                "is required when export_quantization_bit is set",
                "a dataset_info.json name or a data file for calibration",
            )
        return
    if not config.datasets:
        problem(
            "dataset",
            "is required to train",
            "one or more dataset_info.json names, comma separated",
        )
    if not config.output_dir:
        problem("output_dir", "is required to train")
    if config.stage in ("sft", "dpo", "kto", "rm") and not config.template:
        problem("template", f"is required for stage {config.stage}", "for example template: llama3")
    if config.bf16 and config.fp16:
        problem("fp16", "bf16 and fp16 cannot both be true")
    if config.quantization_bit is not None and config.finetuning_type != "lora":
        problem(
            "quantization_bit",
            f"quantized training needs finetuning_type: lora, not {config.finetuning_type}",
        )
    if config.max_steps == 0:
        problem("max_steps", "must be -1 (use num_train_epochs) or a positive number of steps")
    if config.stage == "kto" and config.per_device_train_batch_size < 2:
        problem(
            "per_device_train_batch_size",
            "must be at least 2 for stage kto",
            "KTO's KL term pairs each prompt with another example's answer in the same batch",
        )
