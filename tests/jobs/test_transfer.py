"""core.jobs.transfer against the loopback sshd: rsync and tar, push and pull, progress, faults."""

import hashlib
import os
import signal
import threading
from pathlib import Path

import pytest
from jobs_helpers import alive, wait_for

from tunedeck.core.jobs.ssh import master_pid
from tunedeck.core.jobs.transfer import (
    STAGING_PREFIX,
    TransferError,
    has_rsync,
    pull_dir,
    push_files,
    remote_path,
)

pytestmark = pytest.mark.slow


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a.json").write_text('{"a": 1}\n')
    (folder / "sub").mkdir(exist_ok=True)
    (folder / "sub" / "b.bin").write_bytes(os.urandom(300_000))
    return {"a.json": folder / "a.json", "deep/er/b.bin": folder / "sub" / "b.bin"}


@pytest.mark.parametrize("method", ["rsync", "tar"])
def test_push_lands_each_file_under_its_name_and_pull_brings_the_folder_back(
    remote_box, tmp_path, method
):
    files = _files(tmp_path / "local")
    seen = []
    result = push_files(remote_box, files, "incoming", on_progress=seen.append, method=method)
    assert (result.files, result.method) == (2, method)
    assert result.bytes_sent == sum(p.stat().st_size for p in files.values())
    landed = Path(remote_path(remote_box, "incoming"))
    for name, path in files.items():
        assert _digest(landed / name) == _digest(path)
    assert not [p for p in landed.iterdir() if p.name.startswith(STAGING_PREFIX)]
    assert seen[-1].files_done == 2 and seen[-1].bytes_done >= result.bytes_sent

    back = tmp_path / "back"
    pulled = pull_dir(remote_box, "incoming", back, method=method)
    assert pulled.files == 2 and pulled.bytes_sent == result.bytes_sent
    assert _digest(back / "deep/er/b.bin") == _digest(files["deep/er/b.bin"])
    assert not [p for p in back.iterdir() if p.name.startswith(STAGING_PREFIX)]


@pytest.mark.parametrize("method", ["rsync", "tar"])
def test_pull_leaves_out_excluded_names(remote_box, tmp_path, method):
    folder = tmp_path / "out"
    (folder / "checkpoint-5").mkdir(parents=True)
    (folder / "checkpoint-5" / "w.bin").write_bytes(b"w")
    (folder / "adapter.bin").write_bytes(b"adapter")
    files = {
        "checkpoint-5/w.bin": folder / "checkpoint-5/w.bin",
        "adapter.bin": folder / "adapter.bin",
    }
    push_files(remote_box, files, "run", method=method)
    back = tmp_path / "back"
    pulled = pull_dir(remote_box, "run", back, exclude=["checkpoint-*"], method=method)
    assert pulled.files == 1
    assert (back / "adapter.bin").read_bytes() == b"adapter"
    assert not (back / "checkpoint-5").exists()


def test_both_ends_have_rsync_on_the_loopback_box(remote_box):
    assert has_rsync(remote_box)


@pytest.mark.parametrize("method", ["rsync", "tar"])
def test_master_killed_mid_push_raises_and_leaves_no_half_file_under_its_name(
    remote_box, tmp_path, method
):
    big = tmp_path / "big.bin"
    with open(big, "wb") as handle:
        for _ in range(64):
            handle.write(os.urandom(1 << 20))
    started = threading.Event()

    def kill_when_moving(progress):
        if progress.bytes_done > (4 << 20) and not started.is_set():
            started.set()
            pid = master_pid(remote_box)
            if pid:
                os.kill(pid, signal.SIGKILL)
                wait_for(lambda: not alive(pid), what="the master to die")

    with pytest.raises(TransferError):
        push_files(
            remote_box,
            {"big.bin": big},
            "drop",
            on_progress=kill_when_moving,
            method=method,
            bwlimit=16 << 20,
        )
    assert started.is_set()
    landed = Path(remote_path(remote_box, "drop"))
    assert not (landed / "big.bin").exists()

    again = push_files(remote_box, {"big.bin": big}, "drop", method=method)
    assert again.files == 1
    assert _digest(landed / "big.bin") == _digest(big)


def test_a_name_leaving_the_folder_is_refused(remote_box, tmp_path):
    (tmp_path / "x").write_text("x")
    with pytest.raises(ValueError):
        push_files(remote_box, {"../x": tmp_path / "x"}, "incoming")
