"""A config checked for its engine: the built-in runner's keys and rules, or LLaMA-Factory's own.

With `engine: llamafactory` every key of the host's LLaMA-Factory (read from its argument
dataclasses) is known, and its own argument parsing gives the verdict; with the built-in engine a
LLaMA-Factory key it does not serve is named as such; `auto` picks between them and says so.
"""

from __future__ import annotations

import difflib
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from tunedeck.core.config import loader
from tunedeck.core.config.loader import COMMAND_LINE, ConfigCheck, ConfigProblem
from tunedeck.core.config.schema import KNOWN_KEYS, RunConfig
from tunedeck.core.engines import AUTO, BUILTIN, ENGINES, LLAMAFACTORY
from tunedeck.core.errors import Location, Severity

# Keys the built-in engine reads but drops ("not supported" in schema.IGNORED_KEYS): auto takes
# LLaMA-Factory for them when set. report_to, deepspeed, neat_packing, enable_liger_kernel, ...
# reach the built-in trainer now and are not among them.
FEATURE_KEYS = ("use_unsloth", "upcast_layernorm", "do_predict")
_OFF = (None, False, "none", [], "", ["none"])
INSTALL_HINT = (
    "install it on the host (`tunedeck hosts setup HOST --extras llamafactory`) or point "
    "TUNEDECK_LLAMAFACTORY at its venv"
)


def check_for_engine(
    entries: list, file: Path | None, purpose: str, check_files: bool, pending=None
):
    """The check of the engine the entries name (`engine`, last one wins; builtin by default).

    `pending` (a list): LLaMA-Factory's own parsing is not run but queued there (check_configs
    runs it once for many files)."""
    engine, location = _engine_of(entries)
    not_config = _not_a_config(entries, file, purpose)
    if not_config is not None:
        return not_config
    if engine == LLAMAFACTORY:
        return check_llamafactory(entries, file, purpose, check_files, pending)
    builtin = loader.check_builtin(entries, file, purpose, check_files)
    if engine == AUTO:
        return _auto(entries, file, purpose, check_files, builtin, location, pending)
    return _name_missing_features(builtin)


def check_configs(
    paths: Iterable[str | Path],
    overrides: Iterable[str] = (),
    *,
    purpose: str | None = None,
    check_files: bool = True,
) -> list[ConfigCheck]:
    """check_config on many files, LLaMA-Factory's parsing in one process for all of them."""
    overrides = list(overrides)
    pending: list[tuple[int, Any]] = []
    checks: list[ConfigCheck] = []
    for path in paths:
        file = Path(path)
        entries = loader._read_file(file)
        for key, value in loader.parse_overrides(overrides):
            entries.append(loader._Entry(key, value, Location(file=COMMAND_LINE, column=key)))
        chosen = purpose or loader.config_purpose(entry.key for entry in entries)
        queued: list = []
        checks.append(check_for_engine(entries, file, chosen, check_files, queued))
        pending += [(len(checks) - 1, item) for item in queued]
    for purpose_now in ("train", "export"):
        batch = [(index, item) for index, item in pending if item.purpose == purpose_now]
        if batch:
            _run_verdicts(checks, batch)
    return checks


def read_settings(path: str | Path | None, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """The file's keys and values with the overrides applied, as written (any engine's keys)."""
    values: dict[str, Any] = {}
    if path is not None:
        values.update((entry.key, entry.value) for entry in loader._read_file(Path(path)))
    values.update(loader.parse_overrides(overrides))
    return values


def check_llamafactory(
    entries: list, file: Path | None, purpose: str, check_files: bool, pending=None
):
    """Every key against the host's LLaMA-Factory, then its own argument parsing on the config."""
    from tunedeck.core.engines.llamafactory_host import TUNEDECK_KEYS, all_keys, find_install

    install = find_install()
    at_engine = _location_of(entries, "engine")
    if install is None:
        problem = ConfigProblem(
            "engine",
            "engine llamafactory: LLaMA-Factory is not installed on this host",
            at_engine,
            hint=INSTALL_HINT,
        )
        return ConfigCheck(None, (problem,), file, purpose)
    known = all_keys(install, purpose) | set(TUNEDECK_KEYS)
    problems: list[ConfigProblem] = []
    values, where = _collect(entries, known, install.version, problems)
    config = _summary(values)
    if not config.model_name_or_path:
        problems.append(
            ConfigProblem(
                "model_name_or_path", "is required", where.get("model_name_or_path", at_engine)
            )
        )
    if check_files and not _has_errors(problems):
        from tunedeck.core.config.checks import check_engine_paths

        problems += check_engine_paths(config, where, purpose)
    run_parse = check_files and not _has_errors(problems)
    if run_parse and pending is None:
        problems += _llamafactory_verdict(install, values, where, file, purpose)
    check = ConfigCheck(None if _has_errors(problems) else config, tuple(problems), file, purpose)
    if run_parse and pending is not None:
        pending.append(_Pending(install, values, where, file, purpose, config))
    return check


@dataclass(frozen=True)
class _Pending:
    install: Any
    values: dict
    where: dict
    file: Path | None
    purpose: str
    config: RunConfig


def _run_verdicts(checks: list[ConfigCheck], batch: list[tuple[int, _Pending]]) -> None:
    from tunedeck.core.engines.llamafactory_host import check_files, engine_document

    first = batch[0][1]
    with tempfile.TemporaryDirectory(prefix="tunedeck-lf-") as folder:
        snapshots = []
        for number, (_, item) in enumerate(batch):
            snapshot = Path(folder) / f"config-{number}.yaml"
            snapshot.write_text(yaml.safe_dump(engine_document(item.values)), encoding="utf-8")
            snapshots.append(str(snapshot))
        verdicts = check_files(first.install, first.purpose, snapshots)
    for (index, item), verdict in zip(batch, verdicts, strict=True):
        refusal = _refusal(item.install, verdict, item.where, item.file)
        if not refusal:
            continue
        check = checks[index]
        checks[index] = replace(check, config=None, problems=(*check.problems, *refusal))


def _not_a_config(entries: list, file: Path | None, purpose: str) -> ConfigCheck | None:
    """One error for a file none of whose keys any engine knows (a token list, a DeepSpeed
    JSON), instead of one 'unknown key' per line."""
    from tunedeck.core.config.schema import IGNORED_KEYS
    from tunedeck.core.engines.llamafactory_host import all_keys, find_install

    keys = [entry.key for entry in entries if entry.location.file != COMMAND_LINE]
    if len(keys) < 2 or any(key in KNOWN_KEYS or key in IGNORED_KEYS for key in keys):
        return None
    if all(_NAME.match(key) for key in keys):
        return None  # names like keys: each gets its own 'unknown key' and did-you-mean
    install = find_install()
    if install is not None and any(key in all_keys(install, probe=False) for key in keys):
        return None
    engines = f"tunedeck or LLaMA-Factory {install.version}" if install else "tunedeck"
    problem = ConfigProblem(
        None,
        f"not a run config: none of its {len(keys)} keys is a key of {engines}",
        Location(file=str(file) if file else None, line=entries[0].location.line),
        hint="give a training or export config (model_name_or_path, dataset, output_dir, ...)",
    )
    return ConfigCheck(None, (problem,), file, purpose)


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def _engine_of(entries: list) -> tuple[str, Location]:
    chosen, location = BUILTIN, Location(column="engine")
    for entry in entries:
        if entry.key == "engine" and entry.value in ENGINES:
            chosen, location = entry.value, entry.location
    return chosen, location


def _location_of(entries: list, key: str) -> Location:
    found = [entry.location for entry in entries if entry.key == key]
    return found[-1] if found else Location(column=key)


def _collect(entries, known, version, problems):
    values: dict[str, Any] = {}
    where: dict[str, Location] = {}
    for entry in entries:
        key = entry.key
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else "see LLaMA-Factory's argument docs"
            message = (
                f"not a key of LLaMA-Factory {version} on this host (engine llamafactory): "
                "its argument parser refuses the config"
            )
            problems.append(ConfigProblem(key, message, entry.location, hint=hint))
            continue
        previous = where.get(key)
        if previous is not None and previous.file == entry.location.file != COMMAND_LINE:
            problems.append(
                ConfigProblem(key, f"given twice (first on line {previous.line})", entry.location)
            )
        values[key] = entry.value
        where[key] = entry.location
    return values, where


def _summary(values: dict[str, Any]) -> RunConfig:
    """The keys tunedeck also reads (paths, names, sizes), leniently: LLaMA-Factory judges them."""
    coerced = {}
    for key, value in values.items():
        if key not in KNOWN_KEYS:
            continue
        try:
            coerced[key] = loader._coerce(key, value)
        except ValueError:
            continue
    coerced["engine"] = LLAMAFACTORY
    return RunConfig(**coerced)


def _llamafactory_verdict(install, values, where, file, purpose) -> list[ConfigProblem]:
    from tunedeck.core.engines.llamafactory_host import check_files, engine_document

    with tempfile.TemporaryDirectory(prefix="tunedeck-lf-") as folder:
        snapshot = Path(folder) / "config.yaml"
        snapshot.write_text(yaml.safe_dump(engine_document(values)), encoding="utf-8")
        (verdict,) = check_files(install, purpose, [str(snapshot)])
    return _refusal(install, verdict, where, file)


def _refusal(install, verdict, where, file) -> list[ConfigProblem]:
    """LLaMA-Factory's refusal as one problem at the key its message names (or the file)."""
    if verdict.ok:
        return []
    key = _key_named_in(verdict.message or "", where) or _key_needing(verdict.package, where)
    location = where.get(key) if key else Location(file=str(file) if file else None)
    reason = (verdict.message or verdict.error or "").splitlines()[0]
    if verdict.missing_package:
        hint = f"a package LLaMA-Factory needs for this is missing on this host: install it into {Path(install.python).parent.parent}"
    elif verdict.needs_gpu:
        hint = "a GPU-only option on a host without a GPU: run it on a GPU host or turn it off here"
    else:
        hint = None
    message = f"LLaMA-Factory {install.version} refuses it ({verdict.error}): {reason}"
    return [ConfigProblem(key, message, location or Location(column=key), hint=hint)]


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# The keys that make LLaMA-Factory ask for a package whose name the key does not contain.
_PACKAGE_KEYS = {
    "jieba": "predict_with_generate",
    "nltk": "predict_with_generate",
    "rouge_chinese": "predict_with_generate",
    "matplotlib": "plot_loss",
    "liger-kernel": "enable_liger_kernel",
    "mixture-of-depth": "mixture_of_depths",
    "galore_torch": "use_galore",
    "apollo_torch": "use_apollo",
    "adam-mini": "use_adam_mini",
}


def _key_needing(package: str | None, where: dict[str, Location]) -> str | None:
    """The config key that asked for `package` (use_badam for badam)."""
    if not package:
        return None
    named = _PACKAGE_KEYS.get(package)
    if named in where:
        return named
    plain = package.replace("-", "_").lower()
    return next((key for key in where if plain in key), None)


def _key_named_in(message: str, where: dict[str, Location]) -> str | None:
    """The first config key the message names (`bf16`, `export_dir`, ...), if any."""
    for word in _WORD.findall(message):
        if word in where:
            return word
    return None


def _has_errors(problems) -> bool:
    return any(p.severity == Severity.ERROR for p in problems)


def _missing_features(check: ConfigCheck, lf_keys: frozenset[str]) -> list[str]:
    """Keys of this config the built-in engine does not serve."""
    missing = []
    for problem in check.problems:
        key = problem.key
        if key is None or key in missing:
            continue
        if problem.severity == Severity.ERROR and (
            (problem.message.startswith("unknown key") and key in lf_keys)
            or problem.message.startswith("must be one of")
        ):
            missing.append(key)
        elif problem.severity == Severity.WARNING and key in FEATURE_KEYS:
            missing.append(key)
    return missing


def _feature_warnings_matter(check: ConfigCheck, entries: list) -> list[str]:
    values = {entry.key: entry.value for entry in entries}
    return [key for key in FEATURE_KEYS if key in values and values[key] not in _OFF]


def _auto(
    entries, file, purpose, check_files, builtin: ConfigCheck, location: Location, pending=None
):
    from tunedeck.core.engines.llamafactory_host import all_keys, find_install

    install = find_install()
    lf_keys = all_keys(install) if install is not None else frozenset()
    needs = [
        key
        for key in _missing_features(builtin, lf_keys)
        if key not in FEATURE_KEYS or key in _feature_warnings_matter(builtin, entries)
    ]
    if not needs:
        config = replace(builtin.config, engine=BUILTIN) if builtin.config else None
        return replace(_name_missing_features(builtin), config=config)
    if install is None:
        note = ConfigProblem(
            "engine",
            f"engine auto: the built-in engine, though it lacks {', '.join(needs)}; "
            "LLaMA-Factory is not installed on this host",
            location,
            hint=INSTALL_HINT,
            severity=Severity.WARNING,
        )
        checked = _name_missing_features(builtin)
        return replace(checked, problems=(note, *checked.problems))
    chosen = check_llamafactory(entries, file, purpose, check_files, pending)
    note = ConfigProblem(
        "engine",
        f"engine auto: llamafactory (LLaMA-Factory {install.version}), for {', '.join(needs)}",
        location,
        severity=Severity.WARNING,
    )
    return replace(chosen, problems=(note, *chosen.problems))


def _name_missing_features(check: ConfigCheck) -> ConfigCheck:
    """Built-in engine errors that LLaMA-Factory would serve say so, and how to run them."""
    if check.ok:
        return check
    from tunedeck.core.engines.llamafactory_host import all_keys, find_install

    install = find_install()  # its keys as far as known: the built-in check never waits on it
    lf_keys = all_keys(install, probe=False) if install is not None else frozenset()
    named = tuple(_named(problem, install, lf_keys) for problem in check.problems)
    return replace(check, problems=named)


def _named(problem: ConfigProblem, install, lf_keys: frozenset[str]) -> ConfigProblem:
    if problem.severity != Severity.ERROR or problem.key is None:
        return problem
    where = f"LLaMA-Factory {install.version} on this host" if install else "LLaMA-Factory"
    if problem.message.startswith("unknown key"):
        if problem.key in lf_keys:
            return replace(
                problem,
                message="a LLaMA-Factory key the built-in engine does not serve",
                hint=f"run it with engine: llamafactory ({where} knows it)",
            )
        if lf_keys:
            return replace(
                problem,
                message=f"unknown key: neither the built-in engine nor {where} knows it",
            )
        return problem  # LLaMA-Factory's keys not read yet: `--engine llamafactory` reads them
    if problem.message.startswith("must be one of"):
        return replace(
            problem,
            message=f"{problem.message} (the built-in engine lacks it)",
            hint=problem.hint or f"engine: llamafactory runs LLaMA-Factory's own ({where})",
        )
    return problem
