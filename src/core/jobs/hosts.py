"""Remote hosts from hosts.toml in the config dir; any ssh config host name works as well."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from tunedeck.core.errors import HostError, Location, UsageError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from tunedeck.core.locations import PRIVATE_FILE, config_dir, tighten, toml_string, write_private

DEFAULT_COMMAND = "tunedeck"
SLURM = "slurm"
SCHEDULERS = (SLURM,)
THIS_MACHINE = "local"  # a target meaning "this machine": no ssh (a Slurm login node)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Host:
    """An ssh destination and how to run tunedeck there."""

    name: str
    target: str  # what `ssh` takes: user@host, or a Host from ~/.ssh/config
    workdir: str | None = None
    command: str = DEFAULT_COMMAND  # e.g. "/opt/venv/bin/tunedeck" or "python3 -m tunedeck.tui"
    env: dict[str, str] = field(default_factory=dict)
    ssh_options: tuple[str, ...] = ()  # extra ssh arguments, e.g. ("-p", "2222")
    # "slurm": the target is a cluster's login node; jobs are submitted with sbatch there,
    # asking for these defaults unless a run says otherwise.
    scheduler: str | None = None
    partition: str | None = None
    account: str | None = None
    qos: str | None = None

    @property
    def is_slurm(self) -> bool:
        return self.scheduler == SLURM

    @property
    def is_this_machine(self) -> bool:
        """The target `local`: tunedeck runs on this host itself (a Slurm login node)."""
        return self.target == THIS_MACHINE

    def to_dict(self) -> dict:
        doc = {
            "name": self.name,
            "target": self.target,
            "workdir": self.workdir,
            "command": self.command,
            "env": dict(self.env),
            "ssh_options": list(self.ssh_options),
        }
        if self.scheduler:
            doc.update(
                scheduler=self.scheduler,
                partition=self.partition,
                account=self.account,
                qos=self.qos,
            )
        return doc


def hosts_file() -> Path:
    return config_dir() / "hosts.toml"


def load_hosts() -> dict[str, Host]:
    """Hosts declared in hosts.toml, by name (empty when the file does not exist)."""
    path = hosts_file()
    if not path.is_file():
        return {}
    tighten(path, PRIVATE_FILE)  # host env may carry tokens
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise HostError(
            f"hosts.toml is not valid TOML: {error}", location=Location(str(path))
        ) from None
    hosts = {}
    for name, entry in (doc.get("hosts") or {}).items():
        if not isinstance(entry, dict) or not isinstance(entry.get("target"), str):
            raise HostError(
                f"host '{name}' needs a target", location=Location(str(path), column=name)
            )
        hosts[name] = Host(
            name=name,
            target=entry["target"],
            workdir=entry.get("workdir"),
            command=entry.get("command") or DEFAULT_COMMAND,
            env={str(k): str(v) for k, v in (entry.get("env") or {}).items()},
            ssh_options=tuple(str(o) for o in entry.get("ssh_options") or ()),
            scheduler=_scheduler(entry.get("scheduler"), path, name),
            partition=_optional(entry.get("partition")),
            account=_optional(entry.get("account")),
            qos=_optional(entry.get("qos")),
        )
    return hosts


def _scheduler(value, path: Path, name: str) -> str | None:
    if value in (None, ""):
        return None
    if value not in SCHEDULERS:
        raise HostError(
            f"host '{name}': unknown scheduler {value!r}",
            location=Location(str(path), column=f"{name}.scheduler"),
            hint=f"one of {', '.join(SCHEDULERS)}",
        )
    return str(value)


def _optional(value) -> str | None:
    return None if value in (None, "") else str(value)


def get_host(name: str) -> Host:
    """The host called `name` in hosts.toml, else `name` used as an ssh destination as is."""
    host = load_hosts().get(name)
    if host is not None:
        return host
    if not name or name.startswith("-") or any(c.isspace() for c in name):
        raise UsageError(f"'{name}' is not a host name", hint="see `tunedeck hosts`")
    return Host(name=name, target=name)


def add_host(host: Host) -> Host:
    """Add or replace a host in hosts.toml."""
    if not _NAME.match(host.name) or host.name == "local":
        raise UsageError(
            f"'{host.name}' cannot be a host name",
            hint="use letters, digits, '.', '_' or '-' (and not 'local')",
        )
    if not host.target or host.target.startswith("-"):
        raise UsageError(f"'{host.target}' is not an ssh destination")
    if host.is_this_machine and not host.is_slurm:
        raise UsageError(
            f"target '{THIS_MACHINE}' means this machine, which only a Slurm host can be",
            hint="add --slurm (tunedeck runs on the login node), or give an ssh destination",
        )
    hosts = load_hosts()
    hosts[host.name] = host
    _save(hosts)
    return host


def remove_host(name: str) -> None:
    hosts = load_hosts()
    if name not in hosts:
        raise HostError(f"no host '{name}' in {hosts_file()}")
    del hosts[name]
    _save(hosts)


def _save(hosts: dict[str, Host]) -> None:
    lines = ["# tunedeck hosts: `tunedeck hosts add NAME TARGET` writes this file.", ""]
    for host in hosts.values():
        lines.append(f"[hosts.{toml_string(host.name)}]")
        lines.append(f"target = {toml_string(host.target)}")
        if host.workdir:
            lines.append(f"workdir = {toml_string(host.workdir)}")
        lines.append(f"command = {toml_string(host.command)}")
        if host.ssh_options:
            lines.append(f"ssh_options = [{', '.join(toml_string(o) for o in host.ssh_options)}]")
        for key in ("scheduler", "partition", "account", "qos"):
            if getattr(host, key):
                lines.append(f"{key} = {toml_string(getattr(host, key))}")
        if host.env:
            pairs = ", ".join(f"{toml_string(k)} = {toml_string(v)}" for k, v in host.env.items())
            lines.append(f"env = {{ {pairs} }}")
        lines.append("")
    write_private(hosts_file(), "\n".join(lines))
