"""Bring a run's results back: its output dir from the host it ran on into a local folder.

A pull is planned first (what the host has, what is here, what differs), then fetched: files
already here with the host's size and mtime are skipped, so a second pull, or one after an
interruption, fetches only what is missing or different. A local file that is newer than the
host's and differs from it is never replaced unless the caller says so (`overwrite_newer`).
Checkpoint folders (`checkpoint-*`) are left out unless asked for.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tunedeck.core.errors import HostError, JobError
from tunedeck.core.jobs.hosts import Host
from tunedeck.core.jobs.model import Job
from tunedeck.core.jobs.registry import JobRegistry
from tunedeck.core.jobs.transfer import Progress, TransferResult, has_rsync, pull_dir, remote_path

CHECKPOINT = re.compile(r"^checkpoint-[^/]*$")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class SourceFile:
    """One file of the output dir as the source lists it (path relative, '/'-separated)."""

    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Conflict:
    """A local file newer than the host's copy and different from it."""

    file: SourceFile
    local_mtime_ns: int

    @property
    def path(self) -> str:
        return self.file.path


@dataclass(frozen=True)
class PullPlan:
    """What a pull of one job into `dest` would do."""

    job: Job
    source: str  # where the output dir is, as a user reads it: "box:/path" or a local path
    dest: Path
    fetch: tuple[SourceFile, ...]
    same: tuple[SourceFile, ...]
    conflicts: tuple[Conflict, ...]
    checkpoints: bool
    checkpoints_left_out: int  # checkpoint folders not pulled (no --checkpoints)

    @property
    def fetch_bytes(self) -> int:
        return sum(f.size for f in self.fetch)


@dataclass(frozen=True)
class PullResult:
    """How a pull ended: where to, what was fetched, what was already there."""

    job: Job
    source: str
    dest: Path
    fetched: int
    fetched_bytes: int
    unchanged: int
    method: str
    overwritten_newer: tuple[str, ...] = ()
    checkpoints_left_out: int = 0

    def summary(self) -> str:
        """One line for the user: what came back from where, or that nothing had to."""
        if not self.fetched:
            return f"{self.dest}: already up to date ({self.unchanged} files, nothing fetched)"
        return (
            f"pulled {_files(self.fetched)} ({size_text(self.fetched_bytes)}) from {self.source}"
            f" into {self.dest}; {self.unchanged} already there"
        )

    def to_dict(self) -> dict:
        return {
            "id": self.job.id,
            "host": self.job.host,
            "source": self.source,
            "dest": str(self.dest),
            "fetched": self.fetched,
            "fetched_bytes": self.fetched_bytes,
            "unchanged": self.unchanged,
            "method": self.method,
            "overwritten_newer": list(self.overwritten_newer),
            "checkpoints_left_out": self.checkpoints_left_out,
        }


OnProgress = Callable[[Progress], None]


class PullConflictError(JobError):
    """Local files are newer than the host's and differ: replacing them needs consent."""


def default_dest(job: Job, cwd: Path | None = None) -> Path:
    """./<run name>, or ./<id> when the name gives no usable folder name."""
    name = _UNSAFE_NAME.sub("-", job.name or "").strip("-.")
    return (cwd or Path.cwd()) / (name or job.id)


def size_text(size: int) -> str:
    """Bytes as a person reads them: 512 B, 3.4 MB, 1.2 GB."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def plan_pull(job: Job, dest: Path | str | None = None, checkpoints: bool = False) -> PullPlan:
    """Compare the job's output dir on its host with `dest` (default: ./<run name>)."""
    if not job.output_dir:
        raise JobError(
            f"job {job.id} has no output dir to pull",
            hint="only runs started with an output dir (train, quantize, run --output-dir) have one",
        )
    target = Path(dest).expanduser().absolute() if dest is not None else default_dest(job)
    if target.exists() and not target.is_dir():
        raise JobError(f"cannot pull into {target}: it is a file, not a folder")
    if job.is_local:
        _refuse_pulling_onto_itself(job, dest, target)
    source = source_for(job)
    listed = source.list()
    kept = [f for f in listed if checkpoints or not is_checkpoint(f.path)]
    fetch, same, conflicts = _compare(kept, target, source)
    return PullPlan(
        job=job,
        source=source.where,
        dest=target,
        fetch=tuple(fetch),
        same=tuple(same),
        conflicts=tuple(conflicts),
        checkpoints=checkpoints,
        checkpoints_left_out=len({_top(f) for f in listed} - {_top(f) for f in kept}),
    )


def pull(
    plan: PullPlan,
    overwrite_newer: bool = False,
    on_progress: OnProgress | None = None,
    registry: JobRegistry | None = None,
    method: str | None = None,
) -> PullResult:
    """Fetch what the plan says is missing or different, then record where the run went;
    `method` ("rsync" or "tar") picks the transfer from a host (default: rsync if both have it)."""
    if plan.conflicts and not overwrite_newer:
        raise conflict_error(plan)
    fetch = [*plan.fetch, *(c.file for c in plan.conflicts)]
    plan.dest.mkdir(parents=True, exist_ok=True)
    report = _counted(fetch, on_progress) if on_progress else None
    moved = source_for(plan.job).fetch(plan, fetch, report, method)
    for file in fetch:  # the host's mtime: the next plan sees the file as unchanged
        local = plan.dest / file.path
        if local.is_file():
            os.utime(local, ns=(file.mtime_ns, file.mtime_ns))
    job = _record(plan, registry)
    return PullResult(
        job=job,
        source=plan.source,
        dest=plan.dest,
        fetched=moved.files,
        fetched_bytes=moved.bytes_sent,
        unchanged=len(plan.same),
        method=moved.method,
        overwritten_newer=tuple(c.path for c in plan.conflicts),
        checkpoints_left_out=plan.checkpoints_left_out,
    )


def conflict_error(plan: PullPlan) -> PullConflictError:
    """The typed refusal to replace newer local files, naming them and `--yes`."""
    names = ", ".join(c.path for c in plan.conflicts[:5])
    more = f" and {len(plan.conflicts) - 5} more" if len(plan.conflicts) > 5 else ""
    return PullConflictError(
        f"{len(plan.conflicts)} file(s) in {plan.dest} are newer than the host's copy and"
        f" differ from it: {names}{more}",
        hint="pass --yes to replace them with the host's copy, or pull into another folder",
    )


def is_checkpoint(path: str) -> bool:
    """Whether `path` lies in a top-level checkpoint-* folder of the output dir."""
    parts = PurePosixPath(path).parts
    return len(parts) > 1 and bool(CHECKPOINT.match(parts[0]))


def source_for(job: Job) -> LocalSource | RemoteSource:
    """Where the job's output dir is read from: this box, or its host over ssh."""
    if job.is_local:
        return LocalSource(Path(job.output_dir))
    from tunedeck.core.jobs.hosts import get_host

    return RemoteSource(get_host(job.host), job.output_dir)


class LocalSource:
    """An output dir on this box (a local run), copied file by file."""

    def __init__(self, root: Path):
        self.root = root
        self.where = str(root)

    def list(self) -> list[SourceFile]:
        if not self.root.is_dir():
            raise JobError(f"the output dir {self.root} does not exist (yet)")
        files = []
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                info = path.stat()
                relative = path.relative_to(self.root).as_posix()
                files.append(SourceFile(relative, info.st_size, info.st_mtime_ns))
        return files

    def hashes(self, paths: Iterable[str]) -> dict[str, str]:
        return {path: file_sha256(self.root / path) for path in paths}

    def fetch(
        self,
        plan: PullPlan,
        files: list[SourceFile],
        on_progress: OnProgress | None,
        method: str | None = None,
    ) -> TransferResult:
        """Copy each file under a temporary name, then rename it into place."""
        started = time.monotonic()
        total = sum(f.size for f in files)
        done = 0
        for count, file in enumerate(files, 1):
            target = plan.dest / file.path
            target.parent.mkdir(parents=True, exist_ok=True)
            part = target.with_name(f".{target.name}.tunedeck-part")
            shutil.copyfile(self.root / file.path, part)
            os.replace(part, target)
            done += file.size
            if on_progress:
                rate = done / max(time.monotonic() - started, 1e-6)
                on_progress(Progress(count, len(files), done, total, rate))
        return TransferResult(len(files), total, "copy", time.monotonic() - started)


class RemoteSource:
    """An output dir on a host: listed and hashed over its ssh, fetched by core.jobs.transfer."""

    def __init__(self, host: Host, output_dir: str):
        self.host = host
        self.root = remote_path(host, output_dir)
        self.where = f"{host.name}:{self.root}"

    def list(self) -> list[SourceFile]:
        script = f"cd -- {shlex.quote(self.root)} && find . -type f -printf '%s %T@ %P\\0'"
        done = self._run(script)
        if done.returncode != 0:
            raise JobError(
                f"{self.host.name}: cannot read the output dir {self.root}: {_last_line(done)}",
                hint="the run may not have written anything yet (see `tunedeck runs show ID`)",
            )
        return sorted(_listed(done.stdout), key=lambda f: f.path)

    def hashes(self, paths: Iterable[str]) -> dict[str, str]:
        names = list(paths)
        quoted = " ".join(shlex.quote("./" + name) for name in names)
        done = self._run(f"cd -- {shlex.quote(self.root)} && sha256sum -z -- {quoted}")
        if done.returncode != 0:
            raise JobError(
                f"{self.host.name}: cannot hash files in {self.root}: {_last_line(done)}"
            )
        found = {}
        for entry in done.stdout.split(b"\0"):
            if entry:
                digest, _, name = entry.decode("utf-8", "surrogateescape").partition("  ")
                found[name.removeprefix("./")] = digest
        return found

    def fetch(
        self,
        plan: PullPlan,
        files: list[SourceFile],
        on_progress: OnProgress | None,
        method: str | None = None,
    ) -> TransferResult:
        """pull_dir with every file the plan keeps out excluded (anchored at the output dir)."""
        if not files:
            return TransferResult(0, 0, "none", 0.0)
        method = method or ("rsync" if has_rsync(self.host) else "tar")
        anchor = "/" if method == "rsync" else "./"
        wanted = {f.path for f in files}
        skipped = [f.path for f in plan.same if f.path not in wanted]
        exclude = [anchor + _escaped(path) for path in skipped]
        if not plan.checkpoints:
            exclude.append(anchor + "checkpoint-*")
        return pull_dir(self.host, self.root, plan.dest, exclude, on_progress, method)

    def _run(self, script: str) -> subprocess.CompletedProcess:
        from tunedeck.core.jobs.ssh import ssh_argv

        try:
            return subprocess.run(ssh_argv(self.host, script), capture_output=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise HostError(f"cannot reach {self.host.name}: {error}") from error


def _files(count: int) -> str:
    return f"{count} file" if count == 1 else f"{count} files"


def _counted(files: list[SourceFile], on_progress: OnProgress) -> OnProgress:
    """Progress reported against what the plan fetches (the transfer may count folders too)."""
    files_total, bytes_total = len(files), sum(f.size for f in files)

    def report(progress: Progress) -> None:
        on_progress(
            Progress(
                min(progress.files_done, files_total),
                files_total,
                min(progress.bytes_done, bytes_total),
                bytes_total,
                progress.rate,
            )
        )

    return report


def _top(file: SourceFile) -> str:
    return PurePosixPath(file.path).parts[0]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(HASH_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _listed(output: bytes) -> list[SourceFile]:
    """SourceFiles from `find -printf '%s %T@ %P\\0'` (size, mtime in seconds.fraction, path)."""
    files = []
    for entry in output.split(b"\0"):
        if not entry:
            continue
        size, stamp, name = entry.split(b" ", 2)
        seconds, _, fraction = stamp.decode().partition(".")
        mtime_ns = int(seconds) * 1_000_000_000 + int((fraction + "000000000")[:9])
        files.append(SourceFile(name.decode("utf-8", "surrogateescape"), int(size), mtime_ns))
    return files


def _escaped(path: str) -> str:
    """A path as an exclude pattern matching only itself (wildcards escaped)."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", path)


def _last_line(done: subprocess.CompletedProcess) -> str:
    lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else f"exit {done.returncode}"


def _refuse_pulling_onto_itself(job: Job, dest, target: Path) -> None:
    here = Path(job.output_dir).absolute()
    if dest is None or target.resolve() == here.resolve():
        raise JobError(
            f"job {job.id} ran on this box: its output is already here: {here}",
            hint=f"give a folder to copy it to: tunedeck runs pull {job.id} DEST",
        )


def _compare(files: list[SourceFile], dest: Path, source) -> tuple[list, list, list]:
    """Split the source's files into to-fetch, already-here and newer-here-and-different."""
    fetch, same, unsure = [], [], []
    for file in files:
        local = dest / file.path
        if not local.is_file():
            fetch.append(file)
            continue
        info = local.stat()
        if info.st_size == file.size and info.st_mtime_ns == file.mtime_ns:
            same.append(file)
        else:
            unsure.append((file, info))
    theirs = source.hashes(f.path for f, _ in unsure) if unsure else {}
    conflicts = []
    for file, info in unsure:
        if file_sha256(dest / file.path) == theirs.get(file.path):
            same.append(file)
        elif info.st_mtime_ns > file.mtime_ns:
            conflicts.append(Conflict(file, info.st_mtime_ns))
        else:
            fetch.append(file)
    return fetch, same, conflicts


def _record(plan: PullPlan, registry: JobRegistry | None) -> Job:
    """Remember in the registry where the run was pulled to."""
    own = registry is None
    registry = registry or JobRegistry()
    try:
        return registry.set(plan.job.id, pulled_to=str(plan.dest))
    finally:
        if own:
            registry.close()
