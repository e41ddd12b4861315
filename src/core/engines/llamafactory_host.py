"""LLaMA-Factory as a training engine: where it is installed on this host, what it knows, its argv.

Nothing here imports llamafactory: its own python runs probe.py and answers in JSON. The keys a
version knows are read from its argument dataclasses once per install and kept in the cache.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tunedeck.core.config.schema import SLURM_KEYS
from tunedeck.core.locations import cache_dir, ensure

INSTALL_ENV = "TUNEDECK_LLAMAFACTORY"  # a venv folder or a llamafactory-cli path
CLI = "llamafactory-cli"
DEFAULT_VENVS = "~/.cache/tunedeck"  # `hosts setup --extras llamafactory` installs lf-VERSION here
PROBE = Path(__file__).with_name("probe.py")
PROBE_TIMEOUT = 600
# Keys tunedeck reads itself and takes out of the YAML LLaMA-Factory gets.
TUNEDECK_KEYS = ("engine", "nproc_per_node", *SLURM_KEYS)
EXPORT_SKIPS = ("TrainingArguments",)  # get_infer_args parses the other four
COMMANDS = {"train": "train", "quantize": "export"}  # tunedeck's run kind -> llamafactory-cli


@dataclass(frozen=True)
class Install:
    """One LLaMA-Factory install: its CLI, its python and its version (read from its metadata)."""

    cli: str
    python: str
    version: str


@dataclass(frozen=True)
class Verdict:
    """LLaMA-Factory's own argument parsing on one config: ok, or its exception and message."""

    path: str
    ok: bool
    error: str | None = None
    message: str | None = None

    @property
    def missing_package(self) -> bool:
        text = self.message or ""
        missing = ("ImportError", "ModuleNotFoundError", "PackageNotFoundError")
        return self.error in missing or "pip install" in text or "was not found" in text

    @property
    def needs_gpu(self) -> bool:
        text = (self.message or "").lower()
        return any(word in text for word in ("gpu", "cuda", "npu", "device does not support"))

    @property
    def package(self) -> str | None:
        """The distribution LLaMA-Factory asked for ('badam>=1.2.1' -> 'badam'), if any."""
        found = re.search(r"[Tt]he '([A-Za-z0-9_.\-]+)", self.message or "")
        return re.split(r"[<>=!~ ]", found.group(1))[0] if found else None


def find_install() -> Install | None:
    """This host's LLaMA-Factory: $TUNEDECK_LLAMAFACTORY, llamafactory-cli on PATH, or the
    newest venv under ~/.cache/tunedeck (lf-*); None when there is none."""
    for cli in _candidate_clis():
        python = cli.parent / "python"
        version = installed_version(cli.parent.parent)
        if cli.is_file() and python.exists() and version:
            return Install(str(cli), str(python), version)
    return None


def installed_version(venv: str | Path) -> str | None:
    """The llamafactory version of a venv, from its dist-info (no import: milliseconds)."""
    for meta in Path(venv).glob("lib/python*/site-packages/llamafactory-*.dist-info/METADATA"):
        for line in meta.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("Version:"):
                return line.split(":", 1)[1].strip()
    return None


def known_keys(install: Install, probe: bool = True) -> dict[str, tuple[str, ...]]:
    """Every key of the install's argument dataclasses, by class (cached per install).
    probe=False: only what is cached ({} when its python was never asked)."""
    if install in _KEYS_SEEN:
        return _KEYS_SEEN[install]
    cached = _keys_cache(install)
    if cached.is_file():
        keys = json.loads(cached.read_text("utf-8"))
    elif not probe:
        return {}
    else:
        keys = _run_probe(install, ["keys"])["keys"]
        cached.write_text(json.dumps(keys), encoding="utf-8")
    _KEYS_SEEN[install] = {k: tuple(v) for k, v in keys.items()}
    return _KEYS_SEEN[install]


_KEYS_SEEN: dict[Install, dict[str, tuple[str, ...]]] = {}  # this process's answers


def all_keys(install: Install, purpose: str | None = None, probe: bool = True) -> frozenset[str]:
    """Every key the install reads; for 'export' those of `llamafactory-cli export` only."""
    groups = known_keys(install, probe)
    skipped = EXPORT_SKIPS if purpose == "export" else ()
    return frozenset(key for name, keys in groups.items() if name not in skipped for key in keys)


def check_files(install: Install, purpose: str, paths: list[str], cwd: str | None = None):
    """LLaMA-Factory's verdict on each config file, as `llamafactory-cli train|export` parses it."""
    answer = _run_probe(install, ["check", purpose, *paths], cwd=cwd)
    return [Verdict(**item) for item in answer]


def engine_argv(install_cli: str, kind: str, config_file: str) -> list[str]:
    """`llamafactory-cli train|export CFG`."""
    return [install_cli, COMMANDS[kind], config_file]


def engine_env(nproc_per_node: int | None, nodes: int = 1) -> dict[str, str]:
    """The variables llamafactory-cli reads to start torchrun itself (more than one process)."""
    if (nproc_per_node or 1) <= 1 and nodes <= 1:
        return {}
    env = {"FORCE_TORCHRUN": "1", "NPROC_PER_NODE": str(nproc_per_node or 1)}
    if nodes > 1:
        env["NNODES"] = str(nodes)
    return env


def path_with(cli: str, path: str | None = None) -> str:
    """PATH with the CLI's own bin folder first: its launcher runs `torchrun` from the PATH."""
    rest = path if path is not None else os.environ.get("PATH", "")
    return os.pathsep.join(part for part in (str(Path(cli).parent), rest) if part)


def engine_document(values: dict) -> dict:
    """The YAML mapping LLaMA-Factory gets: the user's keys without tunedeck's own."""
    return {key: value for key, value in values.items() if key not in TUNEDECK_KEYS}


def _candidate_clis():
    given = os.environ.get(INSTALL_ENV)
    if given:
        path = Path(given).expanduser()
        yield path if path.is_file() else path / "bin" / CLI
        return
    on_path = shutil.which(CLI)
    if on_path:
        yield Path(on_path)
    venvs = sorted(Path(DEFAULT_VENVS).expanduser().glob("lf-*"), key=_version_order, reverse=True)
    for venv in venvs:
        yield venv / "bin" / CLI


def _version_order(venv: Path) -> tuple:
    parts = venv.name.removeprefix("lf-").split(".")
    return tuple(int(p) if p.isdigit() else -1 for p in parts)


def _keys_cache(install: Install) -> Path:
    name = install.cli.strip("/").replace("/", "_")
    return ensure(cache_dir() / "llamafactory") / f"keys-{install.version}-{name}.json"


def _run_probe(install: Install, args: list[str], cwd: str | None = None):
    env = {**os.environ, "DISABLE_VERSION_CHECK": "1", "TRANSFORMERS_VERBOSITY": "error"}
    done = subprocess.run(
        [install.python, "-P", str(PROBE), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=PROBE_TIMEOUT,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        from tunedeck.core.errors import HostError

        raise HostError(
            f"LLaMA-Factory {install.version} at {install.cli} did not answer: {tail}",
            hint="check that its venv imports (`llamafactory-cli version`)",
        )
    return json.loads(lines[-1])
