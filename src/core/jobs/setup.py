"""`tunedeck hosts setup`: put this tunedeck on a box over ssh, in a venv of its own.

Every step is checked before it is done (a Python, the venv, the installed version), so a
second run changes nothing and a run after a dropped connection carries on where it stopped.
Remote commands are argument lists joined with shlex.join: tunedeck is not on the box yet.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from tunedeck.core import __version__
from tunedeck.core.errors import DiskFullError, HostError, Location
from tunedeck.core.jobs import transfer
from tunedeck.core.jobs.hosts import Host, add_host, load_hosts
from tunedeck.core.jobs.ssh import ssh_argv
from tunedeck.core.locations import ensure, state_dir

PYTHONS = ("python3.13", "python3.12", "python3.11", "python3.10", "python3")
MIN_PYTHON = (3, 10)
DEFAULT_EXTRAS = ("train",)
MARKER = "tunedeck-setup.json"
LLAMAFACTORY_EXTRA = "llamafactory"  # not a tunedeck extra: LLaMA-Factory in its own venv
LLAMAFACTORY_VERSION = "0.9.5"
WHEEL_CACHE_ENV = "TUNEDECK_WHEEL_CACHE"
INDEX_PROBE_TIMEOUT = 20
# What an online install roughly downloads, for the disk check before it starts (bytes).
ONLINE_ESTIMATE = {"": 150 << 20, "train": 6 << 30, "gptq": 1 << 30}
# torch builds by the CUDA version they need, newest first; a driver runs builds up to its own.
TORCH_CUDA_TAGS = ((13, 0), (12, 9), (12, 8), (12, 6), (12, 4), (12, 1), (11, 8))
TORCH_INDEX = "https://download.pytorch.org/whl/{tag}"

_PROBE = (
    "import json, os, platform, sys, sysconfig; print(json.dumps({"
    "'executable': sys.executable, 'version': list(sys.version_info[:2]),"
    "'implementation': sys.implementation.name, 'machine': platform.machine(),"
    "'system': platform.system(), 'libc': list(platform.libc_ver()),"
    "'platform': sysconfig.get_platform(), 'home': os.path.expanduser('~')}))"
)


class SetupError(HostError):
    """A box cannot be set up; the message names the host and what to do."""


class NoPythonError(SetupError):
    """The box has no Python >= 3.10 on its PATH."""


class NoWritePermissionError(SetupError):
    """The box's tunedeck data dir cannot be written."""


class NoSpaceError(SetupError, DiskFullError):
    """The disk under the data dir has too little room for the install."""


class NoWheelError(SetupError):
    """No index reachable and no wheel of a package for the box's platform."""


@dataclass(frozen=True)
class SetupOptions:
    """What to install: the extras, a torch build or requirement, and whether to push wheels."""

    extras: tuple[str, ...] = DEFAULT_EXTRAS
    torch: str | None = None  # a build tag (cu128, cpu) or a requirement (torch==2.6.0)
    offline: bool = False
    wheel_cache: Path | None = None  # default: state_dir()/setup/wheels
    wheel: Path | None = None  # a tunedeck wheel to install instead of one built from source


@dataclass(frozen=True)
class Progress:
    """One step of a setup: what it does, on which package, how many bytes of how many."""

    step: str
    package: str = ""
    done_bytes: int = 0
    total_bytes: int = 0
    eta_s: float | None = None

    def line(self) -> str:
        """'step: package 1.0 MB/2.0 MB ETA 3s', leaving out what is not known."""
        text = f"{self.step}: {self.package}" if self.package else self.step
        if self.total_bytes:
            text += f" {_size(self.done_bytes)}/{_size(self.total_bytes)}"
        if self.eta_s is not None:
            text += f" ETA {self.eta_s:.0f}s"
        return text


@dataclass(frozen=True)
class RemotePython:
    """What the box's Python says about itself."""

    executable: str
    version: tuple[int, int]
    machine: str
    libc: tuple[str, str]
    home: str
    implementation: str = "cpython"

    @property
    def tag(self) -> str:
        return f"cp{self.version[0]}{self.version[1]}"

    def platforms(self) -> list[str]:
        """pip --platform tags this interpreter accepts, most specific first."""
        arch = self.machine
        platforms = []
        if self.libc[0] == "glibc" and self.libc[1]:
            major, minor = (int(x) for x in self.libc[1].split(".")[:2])
            platforms += [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 16, -1)]
            legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
            platforms += [f"{tag}_{arch}" for m, tag in legacy.items() if minor >= m]
        return platforms + [f"linux_{arch}"]


@dataclass(frozen=True)
class SetupResult:
    """What a setup did: where tunedeck is on the box and whether anything changed."""

    host: str
    version: str
    venv: str
    command: str
    changed: bool
    source: str  # "index", "pushed wheels" or "" when nothing was installed
    log: str
    steps: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return {
            "host": self.host,
            "version": self.version,
            "venv": self.venv,
            "command": self.command,
            "changed": self.changed,
            "source": self.source,
            "log": self.log,
            "steps": list(self.steps),
        }


ProgressFn = Callable[[Progress], None]


def setup_host(
    host: Host, options: SetupOptions = SetupOptions(), progress: ProgressFn | None = None
) -> SetupResult:
    """Install this tunedeck on `host` (or confirm it is there) and record its command."""
    run = SetupRun(host, options, progress or (lambda p: None))
    try:
        return run.go()
    finally:
        run.log.close()


class SetupRun:
    """One setup of one host: the remote calls, the log and the progress reports."""

    def __init__(self, host: Host, options: SetupOptions, progress: ProgressFn):
        self.host = host
        self.options = options
        self.progress = progress
        self.log_path = ensure(state_dir() / "setup") / f"{host.name}.log"
        self.log = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115 - closed by setup_host
        self.steps: list[str] = []
        self._torch: str | None = None

    # -- the steps ---------------------------------------------------------------------------

    def go(self) -> SetupResult:
        self._note(f"== setup {self.host.name} ({self.host.target}) at {time.ctime()}")
        self._step("finding Python")
        python = self.find_python()
        venv = self.venv_dir(python)
        command = f"{venv}/bin/tunedeck"
        wheel = self.options.wheel or self._step_value(
            "building the tunedeck wheel", lambda: local_wheel(self.cache)
        )
        wanted = self.marker(wheel)
        if self.installed_marker(venv) == wanted:
            recorded = self.record_command(command)
            return self._result(venv, command, changed=recorded, source="")
        self.check_writable(venv)
        self._step("creating the venv")
        self.make_venv(python, venv)
        online = not self.options.offline and self.reaches_index(venv)
        source = "index" if online else "pushed wheels"
        if online:
            self.check_space(venv, self.online_estimate() + wheel.stat().st_size)
            self.install_online(venv, wheel)
        else:
            self.install_offline(python, venv, wheel)
        self.verify(venv)
        if LLAMAFACTORY_EXTRA in self.options.extras:
            self.install_llamafactory(python, online)
        self.write_marker(venv, wanted)
        self.record_command(command)
        return self._result(venv, command, changed=True, source=source)

    def find_python(self) -> RemotePython:
        """The newest python3.13..python3.10 (then python3) on the box that is >= 3.10."""
        checks = [
            f"command -v {name} >/dev/null 2>&1 && {name} -c {shlex.quote(_PROBE)} && exit 0"
            for name in PYTHONS
        ]
        done = self.remote("; ".join(checks) + "; exit 3", check=False)
        for line in done.stdout.splitlines():
            if line.startswith("{"):
                found = _python(json.loads(line))
                if found.version >= MIN_PYTHON:
                    return found
        raise NoPythonError(
            f"{self.host.name}: no Python >= 3.10 on the host (looked for {', '.join(PYTHONS)})",
            location=self._where("PATH"),
            hint="install python3.10 or newer there (e.g. apt-get install python3 python3-venv)"
            " or put it on the PATH of the host's env in hosts.toml",
        )

    def venv_dir(self, python: RemotePython) -> str:
        """TUNEDECK_HOME/venv when the host entry sets one, else ~/.local/share/tunedeck/venv."""
        home = self.host.env.get("TUNEDECK_HOME")
        if home:
            base = home.replace("~", python.home, 1) if home.startswith("~") else home
            return f"{base.rstrip('/')}/venv"
        return f"{python.home}/.local/share/tunedeck/venv"

    def installed_marker(self, venv: str) -> dict | None:
        """What the last finished setup wrote in the venv, if its tunedeck still runs."""
        script = (
            f"{shlex.join([f'{venv}/bin/tunedeck', '--help'])} >/dev/null 2>&1"
            f" && cat {shlex.quote(f'{venv}/{MARKER}')}"
        )
        done = self.remote(script, check=False)
        try:
            return json.loads(done.stdout) if done.returncode == 0 else None
        except json.JSONDecodeError:
            return None

    def check_writable(self, venv: str) -> None:
        """The data dir (the venv's parent) exists or can be made, and can be written."""
        parent = venv.rsplit("/", 1)[0]
        probe = f"{parent}/.tunedeck-write-probe"
        script = (
            f"mkdir -p {shlex.quote(parent)} 2>&1 && touch {shlex.quote(probe)} 2>&1"
            f" && rm -f {shlex.quote(probe)}"
        )
        done = self.remote(script, check=False)
        if done.returncode != 0:
            raise NoWritePermissionError(
                f"{self.host.name}: cannot write the tunedeck data dir: "
                f"{_last(done.stdout + done.stderr)}",
                location=self._where(parent),
                hint="make it writable by the ssh user, or set TUNEDECK_HOME in the host's env "
                "to a folder that is (tunedeck hosts add NAME TARGET -e TUNEDECK_HOME=DIR)",
            )

    def make_venv(self, python: RemotePython, venv: str) -> None:
        """python -m venv, unless a working venv with pip is already there."""
        pip_works = shlex.join([f"{venv}/bin/python", "-m", "pip", "--version"])
        if self.remote(f"{pip_works} >/dev/null 2>&1", check=False).returncode == 0:
            self._note(f"venv {venv} is there")
            return
        done = self.remote(shlex.join([python.executable, "-m", "venv", "--clear", venv]), False)
        if done.returncode != 0:
            raise SetupError(
                f"{self.host.name}: {python.executable} could not make a venv: "
                f"{_last(done.stdout + done.stderr)}",
                location=self._where(venv),
                hint="install the venv module there (e.g. apt-get install python3-venv)",
            )

    def reaches_index(self, venv: str) -> bool:
        """Whether the box's pip reaches a package index (a short probe)."""
        argv = [f"{venv}/bin/python", "-m", "pip", "index", "versions", "pip"]
        argv += ["--timeout", "5", "--retries", "0", "--disable-pip-version-check"]
        self._step("probing the package index")
        try:
            done = self.remote(shlex.join(argv), check=False, timeout=INDEX_PROBE_TIMEOUT)
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0

    def install_online(self, venv: str, wheel: Path) -> None:
        """Send our wheel, then pip install it with its extras from the box's index."""
        remote_wheels = f"{venv}/wheels"
        self.push([wheel], remote_wheels)
        requirement = f"{remote_wheels}/{wheel.name}{self.extras_suffix()}"
        argv = [f"{venv}/bin/python", "-m", "pip", "install", "--progress-bar", "off"]
        argv += [*self.torch_args(), requirement, *self.torch_requirement()]
        self._step("installing from the index")
        self.pip(argv)

    def install_offline(self, python: RemotePython, venv: str, wheel: Path) -> None:
        """Build a wheelhouse here for the box's platform, push it, install with --no-index."""
        house = self._step_value(
            "downloading wheels for the host", lambda: self.wheelhouse(python, wheel)
        )
        files = sorted(house.glob("*.whl"))
        self.check_space(venv, sum(f.stat().st_size for f in files))
        remote_house = f"{venv}/wheelhouse"
        self.push(files, remote_house)
        argv = [f"{venv}/bin/python", "-m", "pip", "install", "--progress-bar", "off"]
        argv += ["--no-index", "--find-links", remote_house]
        argv += [f"tunedeck{self.extras_suffix()}=={__version__}", *self.torch_requirement()]
        self._step("installing pushed wheels")
        self.pip(argv)

    def wheelhouse(self, python: RemotePython, wheel: Path) -> Path:
        """Every wheel the install needs for the box's platform and Python, cached here."""
        key = _digest([wheel.name, python.tag, *python.platforms(), *self.options.extras])
        house = self.cache / "wheelhouse" / f"{python.tag}-{python.machine}-{key[:12]}"
        if (house / ".complete").exists():
            return house
        ensure(house)
        argv = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "-d", str(house)]
        for platform in python.platforms():
            argv += ["--platform", platform]
        argv += ["--python-version", f"{python.version[0]}.{python.version[1]}"]
        argv += ["--implementation", "cp", "--abi", python.tag]
        argv += [*self.torch_args(), f"{wheel}{self.extras_suffix()}", *self.torch_requirement()]
        done = self.local(argv)
        if done.returncode != 0:
            raise self.no_wheel(done.stdout + done.stderr, python)
        shutil.copy2(wheel, house / wheel.name)
        (house / ".complete").write_text("")
        return house

    def verify(self, venv: str) -> None:
        """The venv's tunedeck runs and is our version."""
        argv = [f"{venv}/bin/python", "-c", "import tunedeck.core as t; print(t.__version__)"]
        done = self.remote(shlex.join(argv), check=False)
        if done.returncode != 0 or done.stdout.strip() != __version__:
            raise SetupError(
                f"{self.host.name}: the installed tunedeck does not run: "
                f"{_last(done.stdout + done.stderr)}",
                location=self._where(venv),
                hint=f"see the log: {self.log_path}",
            )

    def check_space(self, venv: str, need_bytes: int) -> None:
        """Room for ~3x what is installed (wheels, unpacked files, pip's temporary copy)."""
        parent = venv.rsplit("/", 1)[0]
        nearest = (  # the folder may not be there yet: the disk it will be made on
            f'd={shlex.quote(parent)}; while [ ! -e "$d" ]; do d=$(dirname "$d"); done; df -Pk "$d"'
        )
        done = self.remote(nearest, check=False)
        rows = done.stdout.strip().splitlines()
        if done.returncode != 0 or len(rows) < 2:
            self._note(f"df {parent} did not answer: {done.stderr.strip()}")
            return
        fields = rows[-1].split()
        free = int(fields[3]) * 1024
        if free < 3 * need_bytes:
            raise NoSpaceError(
                f"{self.host.name}: {_size(free)} free on {fields[5]}, the install needs about "
                f"{_size(3 * need_bytes)}",
                location=self._where(parent),
                hint="free space there, or set TUNEDECK_HOME in the host's env to a bigger disk",
            )

    def record_command(self, command: str) -> bool:
        """Write the host's command in hosts.toml; True if it changed."""
        known = load_hosts().get(self.host.name)
        if known is not None and known.command == command:
            return False
        add_host(replace(known or self.host, command=command))
        self._note(f"hosts.toml: {self.host.name} command = {command}")
        return True

    def write_marker(self, venv: str, marker: dict) -> None:
        text = json.dumps(marker, sort_keys=True)
        script = f"printf %s {shlex.quote(text)} > {shlex.quote(f'{venv}/{MARKER}')}"
        self.remote(script)

    # -- what is asked for ---------------------------------------------------------------------

    @property
    def cache(self) -> Path:
        """Where built wheels and wheelhouses are kept: the option, $TUNEDECK_WHEEL_CACHE,
        else state_dir()/setup/wheels."""
        chosen = self.options.wheel_cache or os.environ.get(WHEEL_CACHE_ENV)
        return Path(chosen) if chosen else state_dir() / "setup" / "wheels"

    def marker(self, wheel: Path) -> dict:
        return {
            "version": __version__,
            "wheel": wheel.name,
            "sha256": _file_digest(wheel),
            "extras": sorted(self.options.extras),
            "torch": self.options.torch if self.wants_torch() else None,
        }

    def install_llamafactory(self, python: RemotePython, online: bool) -> None:
        """LLaMA-Factory in a venv of its own (it pins torch and transformers), where the
        llamafactory engine looks: ~/.cache/tunedeck/lf-VERSION."""
        if not online:
            raise SetupError(
                f"{self.host.name}: LLaMA-Factory installs from the host's package index",
                location=self._where(LLAMAFACTORY_EXTRA),
                hint="give the host an index (or a proxy) or drop llamafactory from --extras",
            )
        venv = f"{python.home}/.cache/tunedeck/lf-{LLAMAFACTORY_VERSION}"
        self._step(f"installing LLaMA-Factory {LLAMAFACTORY_VERSION} into {venv}")
        self.make_venv(python, venv)
        requirement = f"llamafactory=={LLAMAFACTORY_VERSION}"
        self.pip(
            [f"{venv}/bin/python", "-m", "pip", "install", "--progress-bar", "off", requirement]
        )

    def extras_suffix(self) -> str:
        extras = [e for e in self.options.extras if e and e != LLAMAFACTORY_EXTRA]
        return f"[{','.join(extras)}]" if extras else ""

    def wants_torch(self) -> bool:
        return any(e in ("train", "gptq") for e in self.options.extras)

    def torch_spec(self) -> str:
        """The torch build for the box: --torch, else its driver's CUDA (cpu without one)."""
        if self.options.torch:
            return self.options.torch
        if self._torch is None:
            done = self.remote("nvidia-smi 2>/dev/null", check=False)
            self._torch = torch_tag(cuda_version(done.stdout) if done.returncode == 0 else None)
        return self._torch

    def torch_args(self) -> list[str]:
        """pip's --extra-index-url of the torch build, when torch is installed."""
        if not self.wants_torch():
            return []
        tag, _ = split_torch_spec(self.torch_spec())
        return ["--extra-index-url", TORCH_INDEX.format(tag=tag)] if tag else []

    def torch_requirement(self) -> list[str]:
        if not self.wants_torch():
            return []
        _, requirement = split_torch_spec(self.torch_spec())
        return [requirement] if requirement else []

    def online_estimate(self) -> int:
        extras = [e for e in self.options.extras if e]
        return ONLINE_ESTIMATE[""] + sum(ONLINE_ESTIMATE.get(e, 0) for e in extras)

    def no_wheel(self, output: str, python: RemotePython) -> NoWheelError:
        found = re.search(r"No matching distribution found for ([^\s]+)", output)
        package = found.group(1) if found else _last(output)
        platform = f"{python.tag}-{python.platforms()[0]}"
        return NoWheelError(
            f"{self.host.name}: no package index on the host and no wheel of {package} "
            f"for {platform}",
            location=self._where(package),
            hint="give the host an index (a proxy or a mirror in its pip.conf), leave out the "
            "extra that needs it, or pick another build with --torch",
        )

    # -- the channel -----------------------------------------------------------------------

    def remote(
        self, script: str, check: bool = True, timeout: float | None = 600
    ) -> subprocess.CompletedProcess:
        """Run a shell line on the box with the host's env exported first; logged."""
        exports = "".join(f"export {k}={shlex.quote(v)}; " for k, v in self.host.env.items())
        self._note(f"$ {script}")
        done = subprocess.run(
            ssh_argv(self.host, exports + script),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        self._note_output(done)
        if done.returncode == 255:
            raise HostError(
                f"{self.host.name} ({self.host.target}): host unreachable: {_last(done.stderr)}",
                hint=f"check the name, port and network; try `ssh {self.host.target} true`",
            )
        if check and done.returncode != 0:
            raise SetupError(
                f"{self.host.name}: a setup step failed: {_last(done.stdout + done.stderr)}",
                hint=f"see the log: {self.log_path}",
            )
        return done

    def pip(self, argv: list[str]) -> None:
        """Run pip on the box, reporting each package it collects or downloads."""
        exports = "".join(f"export {k}={shlex.quote(v)}; " for k, v in self.host.env.items())
        script = exports + shlex.join(argv) + " 2>&1"
        self._note(f"$ {shlex.join(argv)}")
        proc = subprocess.Popen(
            ssh_argv(self.host, script),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        tail: list[str] = []
        for line in proc.stdout:
            self.log.write(line)
            tail = (tail + [line.rstrip()])[-40:]
            self._pip_progress(line)
        code = proc.wait()
        self.log.flush()
        if code != 0:
            text = "\n".join(tail)
            if "No matching distribution" in text:
                found = re.search(r"No matching distribution found for ([^\s]+)", text)
                raise NoWheelError(
                    f"{self.host.name}: pip found no {found.group(1) if found else 'package'} "
                    "for the host",
                    location=self._where(found.group(1) if found else ""),
                    hint=f"see the log: {self.log_path}",
                )
            raise SetupError(
                f"{self.host.name}: pip install failed: {_last(text)}",
                hint=f"see the log: {self.log_path}",
            )

    def push(self, files: list[Path], remote_dir: str) -> None:
        """Send the files remote_dir lacks (by name and size) with the one transfer mechanism;
        each lands whole, so a dropped connection leaves none half-written."""
        have = self._remote_sizes(remote_dir)
        missing = [f for f in files if have.get(f.name) != f.stat().st_size]
        if not missing:
            self._note(f"{remote_dir}: every wheel is there")
            return
        self._push_files(missing, remote_dir, sum(f.stat().st_size for f in missing))

    def _remote_sizes(self, remote_dir: str) -> dict[str, int]:
        script = f"cd {shlex.quote(remote_dir)} 2>/dev/null && wc -c -- *.whl 2>/dev/null"
        sizes = {}
        for line in self.remote(script, check=False).stdout.splitlines():
            size, _, name = line.strip().partition(" ")
            if size.isdigit() and name != "total":
                sizes[name] = int(size)
        return sizes

    def _push_files(self, files: list[Path], remote_dir: str, total: int) -> None:
        def report(p: transfer.Progress) -> None:
            self.progress(Progress("sending wheels", "", p.bytes_done, p.bytes_total, p.eta))

        self._note(f"sending {len(files)} file(s), {total} bytes, to {remote_dir}")
        sent = transfer.push_files(
            self.host, {f.name: f for f in files}, remote_dir, on_progress=report
        )
        self._note(f"sent {sent.files} file(s), {sent.bytes_sent} bytes by {sent.method}")

    def local(self, argv: list[str]) -> subprocess.CompletedProcess:
        self._note(f"(local) $ {shlex.join(argv)}")
        done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        self._note_output(done)
        return done

    # -- reporting -------------------------------------------------------------------------------

    def _pip_progress(self, line: str) -> None:
        found = re.match(r"\s*(Collecting|Downloading|Processing|Installing collected) (.*)", line)
        if not found:
            return
        what = found.group(2).strip()
        size = re.search(r"\(([\d.]+) ([kMG]?B)\)", what)
        total = int(float(size.group(1)) * _UNITS[size.group(2)]) if size else 0
        self.progress(Progress(found.group(1).lower(), what.split(" ")[0], 0, total))

    def _step(self, step: str) -> None:
        self.steps.append(step)
        self._note(f"-- {step}")
        self.progress(Progress(step))

    def _step_value(self, step: str, make):
        self._step(step)
        return make()

    def _note(self, text: str) -> None:
        self.log.write(text.rstrip("\n") + "\n")
        self.log.flush()

    def _note_output(self, done: subprocess.CompletedProcess) -> None:
        for text in (done.stdout, done.stderr):
            if text and text.strip():
                self._note(text if isinstance(text, str) else text.decode("utf-8", "replace"))
        self._note(f"[exit {done.returncode}]")

    def _where(self, what: str) -> Location:
        return Location(file=f"{self.host.name}:{what}" if what else self.host.name)

    def _result(self, venv: str, command: str, changed: bool, source: str) -> SetupResult:
        self._note(f"done: changed={changed} source={source or 'none'}")
        return SetupResult(
            self.host.name,
            __version__,
            venv,
            command,
            changed,
            source,
            str(self.log_path),
            tuple(self.steps),
        )


_UNITS = {"B": 1, "kB": 1000, "MB": 1000**2, "GB": 1000**3}


# -- the torch build ------------------------------------------------------------------------------


def cuda_version(nvidia_smi: str) -> tuple[int, int] | None:
    """The CUDA version in nvidia-smi's header ("CUDA Version: 12.8"), if any."""
    found = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", nvidia_smi)
    return (int(found.group(1)), int(found.group(2))) if found else None


def torch_tag(cuda: tuple[int, int] | None) -> str:
    """The newest torch build tag the driver runs (cu128 for 12.8+), cpu without CUDA."""
    if cuda is None:
        return "cpu"
    for version in TORCH_CUDA_TAGS:
        if cuda >= version:
            return f"cu{version[0]}{version[1]}"
    return "cpu"


def split_torch_spec(spec: str) -> tuple[str | None, str | None]:
    """--torch SPEC as (build tag, requirement): 'cu128' -> ('cu128', 'torch'),
    'torch==2.6.0' -> (None, 'torch==2.6.0'), 'cu126:torch==2.6.0' -> both."""
    tag, sep, requirement = spec.partition(":")
    if sep:
        return tag or None, requirement or "torch"
    if spec.startswith("torch"):
        return None, spec
    return spec, "torch"


# -- the local wheel ------------------------------------------------------------------------------


def project_root() -> Path:
    """The tunedeck source tree this package is installed from (its pyproject.toml)."""
    import tunedeck.core

    for parent in Path(tunedeck.core.__file__).resolve().parents:
        pyproject = parent / "pyproject.toml"
        if pyproject.is_file() and 'name = "tunedeck"' in pyproject.read_text(encoding="utf-8"):
            return parent
    raise SetupError(
        "cannot find the tunedeck source tree to build a wheel from",
        hint="install tunedeck from its source (pip install -e .) to set hosts up",
    )


SOURCE_PARTS = ("pyproject.toml", "README.md", "LICENSE", "src", "themes")


def source_files(root: Path) -> list[Path]:
    """The files a tunedeck wheel is built from, sorted."""
    files = []
    for part in SOURCE_PARTS:
        path = root / part
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files += [p for p in path.rglob("*") if p.is_file() and _is_source(p)]
    return sorted(files)


def source_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in source_files(root):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def local_wheel(cache: Path) -> Path:
    """A wheel of this tunedeck, built once per version and source hash (pip wheel)."""
    root = project_root()
    folder = cache / f"tunedeck-{__version__}-{source_hash(root)[:16]}"
    built = sorted(folder.glob("tunedeck-*.whl"))
    if built:
        return built[0]
    with tempfile.TemporaryDirectory(prefix="tunedeck-wheel-") as tmp:
        tree = Path(tmp) / "src-copy"  # builds leave build/ and egg-info behind: not in ours
        for path in source_files(root):
            target = tree / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        out = Path(tmp) / "out"
        argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
        done = subprocess.run(argv + ["-w", str(out), str(tree)], capture_output=True, text=True)
        if done.returncode != 0:
            raise SetupError(f"building the tunedeck wheel failed: {_last(done.stderr)}")
        wheel = next(out.glob("tunedeck-*.whl"))
        ensure(folder)
        shutil.move(str(wheel), folder / wheel.name)
    return folder / wheel.name


def _is_source(path: Path) -> bool:
    return "__pycache__" not in path.parts and not path.name.endswith((".pyc", ".egg-info"))


# -- small helpers --------------------------------------------------------------------------------


def _python(doc: dict) -> RemotePython:
    return RemotePython(
        executable=doc["executable"],
        version=tuple(doc["version"]),
        machine=doc["machine"],
        libc=tuple(doc.get("libc") or ("", "")),
        home=doc["home"],
        implementation=doc.get("implementation", "cpython"),
    )


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _digest(parts: Iterable[str]) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _last(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
