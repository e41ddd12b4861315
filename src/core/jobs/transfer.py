"""Moving files to and from a host: the one transfer mechanism of tunedeck.

rsync over the host's ControlMaster connection where both ends have rsync, else a tar stream
over the same ssh. Files land whole or not at all: rsync writes each file under a temporary
name and renames it when complete; the tar stream is unpacked into a staging folder and linked
into place only after the stream ended cleanly. A dropped connection raises TransferError and
leaves no half file under a final name (a later call resumes by sending what is missing).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tunedeck.core.errors import HostError
from tunedeck.core.jobs.hosts import Host

PARTIAL_DIR = ".tunedeck-partial"
STAGING_PREFIX = ".tunedeck-incoming-"
CHUNK = 1 << 20


class TransferError(HostError):
    """A transfer to or from a host failed part-way; nothing half-written is in use."""


@dataclass(frozen=True)
class Progress:
    """How far a transfer has come."""

    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    rate: float  # bytes per second so far

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate, when it can be told."""
        if self.rate <= 0 or self.bytes_total <= 0:
            return None
        return max(self.bytes_total - self.bytes_done, 0) / self.rate


@dataclass(frozen=True)
class TransferResult:
    """What a transfer moved: files and data bytes (file contents, not protocol overhead)."""

    files: int
    bytes_sent: int
    method: str  # "rsync", "tar" or "none"
    seconds: float


OnProgress = Callable[[Progress], None]

_rsync_cache: dict[str, bool] = {}


def remote_path(host: Host, path: str) -> str:
    """`path` on the host: relative paths are under the host's workdir when it has one."""
    if path.startswith("/") or path.startswith("~") or not host.workdir:
        return path
    return str(PurePosixPath(host.workdir) / path)


def has_rsync(host: Host) -> bool:
    """Both ends have rsync (asked once per host and process)."""
    if shutil.which("rsync") is None:
        return False
    key = repr(host)  # the whole entry: the same name may reach another box (env, ssh options)
    if key not in _rsync_cache:
        done = _ssh_run(host, "command -v rsync >/dev/null 2>&1", timeout=30)
        _rsync_cache[key] = done.returncode == 0
    return _rsync_cache[key]


def push_files(
    host: Host,
    files: Mapping[str, Path],
    remote_dir: str,
    on_progress: OnProgress | None = None,
    method: str | None = None,
    bwlimit: int | None = None,
) -> TransferResult:
    """Send local files to `remote_dir` on the host, each under its relative name (the key);
    `bwlimit` caps the rate in bytes per second."""
    started = time.monotonic()
    if not files:
        return TransferResult(0, 0, "none", 0.0)
    names = {_safe_name(name): Path(path) for name, path in files.items()}
    total = sum(path.stat().st_size for path in names.values())
    method = method or ("rsync" if has_rsync(host) else "tar")
    target = remote_path(host, remote_dir)
    meter = _Meter(len(names), total, on_progress)
    if method == "rsync":
        _rsync_push(host, names, target, meter, bwlimit)
    else:
        _tar_push(host, names, target, meter, bwlimit)
    meter.finish()
    return TransferResult(len(names), total, method, time.monotonic() - started)


def pull_dir(
    host: Host,
    remote_dir: str,
    local_dir: Path,
    exclude: Iterable[str] = (),
    on_progress: OnProgress | None = None,
    method: str | None = None,
) -> TransferResult:
    """Bring `remote_dir` on the host into `local_dir` (made if missing); `exclude` takes rsync
    patterns matched against names (e.g. "checkpoint-*")."""
    started = time.monotonic()
    local_dir = Path(local_dir)
    local_dir.mkdir(parents=True, exist_ok=True)
    method = method or ("rsync" if has_rsync(host) else "tar")
    source = remote_path(host, remote_dir)
    exclude = list(exclude)
    if method == "rsync":
        files, size = _rsync_pull(host, source, local_dir, exclude, on_progress)
    else:
        files, size = _tar_pull(host, source, local_dir, exclude, on_progress)
    return TransferResult(files, size, method, time.monotonic() - started)


# --- rsync -------------------------------------------------------------------------------


def _rsync_shell(host: Host) -> str:
    from tunedeck.core.jobs.ssh import ssh_argv

    return shlex.join(ssh_argv(host)[:-1])


def _rsync_base(host: Host) -> list[str]:
    return [
        "rsync",
        "-rtL",
        "--protect-args",
        f"--partial-dir={PARTIAL_DIR}",
        "--info=progress2,stats2",
        "--no-inc-recursive",
        "-e",
        _rsync_shell(host),
    ]


def _rsync_push(
    host: Host, names: dict[str, Path], target: str, meter: _Meter, bwlimit: int | None
) -> None:
    with tempfile.TemporaryDirectory(prefix="tunedeck-push-") as tmp:
        root = Path(tmp)
        for name, path in names.items():
            link = root / name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path.resolve())
        listing = root.parent / (root.name + ".list")
        listing.write_text("".join(f"{name}\n" for name in names))
        try:
            limit = [f"--bwlimit={max(bwlimit // 1024, 1)}"] if bwlimit else []
            argv = (
                _rsync_base(host)
                + limit
                + [
                    "--mkpath",
                    f"--files-from={listing}",
                    f"{root}/",
                    f"{host.target}:{target}/",
                ]
            )
            _run_rsync(argv, meter)
        finally:
            listing.unlink(missing_ok=True)


def _rsync_pull(
    host: Host, source: str, local_dir: Path, exclude: list[str], on_progress: OnProgress | None
) -> tuple[int, int]:
    argv = _rsync_base(host) + [f"--exclude={PARTIAL_DIR}"]
    argv += [f"--exclude={pattern}" for pattern in exclude]
    argv += [f"{host.target}:{source}/", f"{local_dir}/"]
    meter = _Meter(0, 0, on_progress)
    stats = _run_rsync(argv, meter)
    meter.finish()
    return stats.get("files", meter.files_done), stats.get("bytes", meter.bytes_done)


_PROGRESS = re.compile(r"^\s*([\d,]+)\s+\d+%\s+\S+\s+\S+(?:\s+\(xfr#(\d+), to-chk=(\d+)/(\d+)\))?")
_STAT_FILES = re.compile(r"Number of regular files transferred: ([\d,]+)")
_STAT_BYTES = re.compile(r"Total transferred file size: ([\d,]+)")


def _run_rsync(argv: list[str], meter: _Meter) -> dict[str, int]:
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    errors: list[bytes] = []
    reader = threading.Thread(target=lambda: errors.append(process.stderr.read()), daemon=True)
    reader.start()
    text = _read_progress(process.stdout, meter)
    code = process.wait()
    reader.join()
    if code != 0:
        detail = b"".join(errors).decode(errors="replace").strip().splitlines()
        raise TransferError(
            f"rsync failed (exit {code}): {detail[-1] if detail else 'no message'}",
            hint="run the command again: files already sent are kept, the rest is sent",
        )
    stats = {}
    if found := _STAT_FILES.search(text):
        stats["files"] = int(found.group(1).replace(",", ""))
    if found := _STAT_BYTES.search(text):
        stats["bytes"] = int(found.group(1).replace(",", ""))
    return stats


def _read_progress(stream, meter: _Meter) -> str:
    """Feed rsync's progress2 lines to the meter; returns the whole output."""
    seen = bytearray()
    pending = b""
    while chunk := stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536):
        seen += chunk
        pending += chunk
        *lines, pending = re.split(rb"[\r\n]", pending)
        for line in lines:
            found = _PROGRESS.match(line.decode(errors="replace"))
            if found:
                done = int(found.group(1).replace(",", ""))
                files = found.group(2)
                todo, total = found.group(3), found.group(4)
                meter.rsync(done, int(files) if files else None, todo, total)
    return seen.decode(errors="replace")


# --- tar ---------------------------------------------------------------------------------


def _tar_push(
    host: Host, names: dict[str, Path], target: str, meter: _Meter, bwlimit: int | None
) -> None:
    staging = f"{target}/{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
    q_target, q_staging = _remote_quote(target), _remote_quote(staging)
    script = (
        f"mkdir -p {q_staging} && tar -x -f - -C {q_staging} && "
        f"cp -Rlf {q_staging}/. {q_target}/ ; status=$?; rm -rf {q_staging}; exit $status"
    )
    process = _ssh_popen(host, script, stdin=subprocess.PIPE)
    errors: list[bytes] = []
    reader = threading.Thread(target=lambda: errors.append(process.stderr.read()), daemon=True)
    reader.start()
    try:
        with tarfile.open(
            fileobj=_MeteredWriter(process.stdin, meter, bwlimit), mode="w|"
        ) as archive:
            for name, path in names.items():
                info = archive.gettarinfo(str(path), arcname=name)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with open(path, "rb") as handle:
                    archive.addfile(info, handle)
                meter.file_done()
        process.stdin.close()
    except (BrokenPipeError, OSError):
        pass
    code = process.wait()
    reader.join()
    if code != 0:
        raise _failed("tar stream to the host", code, errors)


def _tar_pull(
    host: Host, source: str, local_dir: Path, exclude: list[str], on_progress: OnProgress | None
) -> tuple[int, int]:
    excludes = " ".join(f"--exclude={_remote_quote(pattern)}" for pattern in exclude)
    script = f"cd {_remote_quote(source)} && tar -c -f - {excludes} ."
    process = _ssh_popen(host, script, stdout=subprocess.PIPE)
    errors: list[bytes] = []
    reader = threading.Thread(target=lambda: errors.append(process.stderr.read()), daemon=True)
    reader.start()
    meter = _Meter(0, 0, on_progress)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=local_dir))
    try:
        files, size = _unpack(process.stdout, staging, meter)
        code = process.wait()
        reader.join()
        if code != 0:
            raise _failed("tar stream from the host", code, errors)
        _move_into(staging, local_dir)
    except tarfile.TarError as error:
        process.kill()
        raise TransferError(f"the tar stream from {host.name} broke off: {error}") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    meter.finish()
    return files, size


def _unpack(stream, staging: Path, meter: _Meter) -> tuple[int, int]:
    files = size = 0
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        for member in archive:
            if member.isfile():
                archive.extract(member, staging, filter="data")
                files += 1
                size += member.size
                meter.add(member.size)
                meter.file_done()
            elif member.isdir():
                archive.extract(member, staging, filter="data")
    return files, size


def _move_into(staging: Path, local_dir: Path) -> None:
    for path in sorted(staging.rglob("*")):
        if path.is_file():
            destination = local_dir / path.relative_to(staging)
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, destination)


# --- helpers -----------------------------------------------------------------------------


class _Meter:
    """Counts files and bytes and reports Progress at most ten times a second."""

    def __init__(self, files_total: int, bytes_total: int, on_progress: OnProgress | None):
        self.files_total, self.bytes_total = files_total, bytes_total
        self.files_done = self.bytes_done = 0
        self.on_progress = on_progress
        self.started = time.monotonic()
        self.last = 0.0

    def add(self, size: int) -> None:
        self.bytes_done += size
        self._report()

    def file_done(self) -> None:
        self.files_done += 1
        self._report()

    def rsync(self, done: int, files: int | None, todo: str | None, total: str | None) -> None:
        self.bytes_done = max(self.bytes_done, done)
        if files is not None:
            self.files_done = files
        if total is not None and not self.files_total:
            self.files_total = int(total)
        self._report()

    def finish(self) -> None:
        self.files_done = max(self.files_done, self.files_total)
        self.bytes_done = max(self.bytes_done, self.bytes_total)
        self._report(force=True)

    def _report(self, force: bool = False) -> None:
        if self.on_progress is None:
            return
        now = time.monotonic()
        if not force and now - self.last < 0.1:
            return
        self.last = now
        elapsed = max(now - self.started, 1e-6)
        total = max(self.bytes_total, self.bytes_done)
        self.on_progress(
            Progress(
                self.files_done,
                max(self.files_total, self.files_done),
                self.bytes_done,
                total,
                self.bytes_done / elapsed,
            )
        )


class _MeteredWriter:
    """A write-only file that counts file-content bytes into a meter as they go."""

    def __init__(self, raw, meter: _Meter, bwlimit: int | None):
        self.raw, self.meter, self.bwlimit = raw, meter, bwlimit
        self.started, self.written = time.monotonic(), 0

    def write(self, data: bytes) -> int:
        self.raw.write(data)
        self.written += len(data)
        self.meter.add(len(data))
        if self.bwlimit:
            ahead = self.written / self.bwlimit - (time.monotonic() - self.started)
            if ahead > 0:
                time.sleep(ahead)
        return len(data)


def _safe_name(name: str) -> str:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ValueError(f"not a relative name inside the target folder: {name!r}")
    return str(path)


def _remote_quote(path: str) -> str:
    """Quote for the remote shell, keeping a leading ~/ expandable."""
    if path == "~" or path.startswith("~/"):
        return "~/" + shlex.quote(path[2:] or ".")
    return shlex.quote(path)


def _ssh_run(host: Host, script: str, timeout: float) -> subprocess.CompletedProcess:
    from tunedeck.core.jobs.ssh import ssh_argv

    try:
        return subprocess.run(ssh_argv(host, script), capture_output=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise TransferError(f"cannot reach {host.name}: {error}") from error


def _ssh_popen(host: Host, script: str, **streams) -> subprocess.Popen:
    from tunedeck.core.jobs.ssh import ssh_argv

    streams.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.Popen(ssh_argv(host, script), stderr=subprocess.PIPE, **streams)


def _failed(what: str, code: int, errors: list[bytes]) -> TransferError:
    detail = b"".join(errors).decode(errors="replace").strip().splitlines()
    return TransferError(
        f"{what} failed (exit {code}): {detail[-1] if detail else 'connection closed'}",
        hint="run the command again: files already sent are kept, the rest is sent",
    )
