"""Sending what a run reads to a host (remote_box: an account apart), and the host's own check."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tunedeck.core.config import load_config
from tunedeck.core.errors import HostError
from tunedeck.core.jobs import JobRegistry, get_backend
from tunedeck.core.jobs.ssh import master_pid
from tunedeck.core.jobs.store import STORE_DIR, file_sha256
from tunedeck.core.jobs.transfer import TransferError
from tunedeck.core.runners.inputs import SyncOptions, run_inputs
from tunedeck.core.runners.launch import launch_run

pytestmark = pytest.mark.slow

SYNCED = re.compile(
    r"synced: (\d+) files?, ([\d.]+ [KMG]?B)(?: \((\d+) files? already on (\w+)\))?"
)
JOB_STARTED = re.compile(r"job (\w+) started")


@pytest.fixture
def laptop(tmp_path, tiny_model) -> Path:
    """A 'laptop' folder: a data folder (two entries, one with images) and a YAML naming one."""
    root = tmp_path / "laptop"
    data = root / "data"
    (data / "pics").mkdir(parents=True)
    rows = [{"instruction": "Say the colour of the sky.", "input": "", "output": "blue"}] * 8
    (data / "sky.json").write_text(json.dumps(rows))
    (data / "other.json").write_text(json.dumps(rows))
    info = {"sky": {"file_name": "sky.json"}, "other": {"file_name": "other.json"}}
    (data / "dataset_info.json").write_text(json.dumps(info))
    config = {
        "model_name_or_path": str(tiny_model),
        "stage": "sft",
        "finetuning_type": "lora",
        "dataset": "sky",
        "dataset_dir": "data",
        "template": "default",
        "cutoff_len": 64,
        "output_dir": "out/run1",
        "max_steps": 1,
        "logging_steps": 1,
        "per_device_train_batch_size": 2,
    }
    (root / "run.yaml").write_text(yaml.safe_dump(config))
    return root


def tunedeck(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tunedeck.tui", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def synced(stderr: str) -> tuple[int, str, int]:
    found = SYNCED.search(stderr)
    assert found, stderr[-2000:]
    return int(found.group(1)), found.group(2), int(found.group(3) or 0)


def jobs_here() -> list:
    registry = JobRegistry()
    try:
        return registry.list()
    finally:
        registry.close()


def test_a_run_reads_only_the_named_entries_and_the_model(laptop, tiny_model, monkeypatch):
    monkeypatch.chdir(laptop)
    config = load_config("run.yaml", check_files=False)
    inputs = run_inputs("train", config)
    names = set(inputs.files)
    assert {"data/dataset_info.json", "data/sky.json"} <= names
    assert "data/other.json" not in names
    assert "model/config.json" in names
    assert inputs.settings == {"dataset_dir": "data", "model_name_or_path": "model"}
    assert run_inputs("train", config, {str(tiny_model)}).settings == {"dataset_dir": "data"}


def test_media_of_a_named_entry_travel_with_it(laptop, monkeypatch):
    data = laptop / "data"
    (data / "pics" / "a.png").write_bytes(b"png")
    (data / "pics" / "unused.png").write_bytes(b"png")
    rows = [{"instruction": "what?", "input": "", "output": "a", "images": ["pics/a.png"]}]
    (data / "pics.json").write_text(json.dumps(rows))
    info = json.loads((data / "dataset_info.json").read_text())
    info["pics"] = {"file_name": "pics.json", "columns": {"images": "images"}}
    (data / "dataset_info.json").write_text(json.dumps(info))
    monkeypatch.chdir(laptop)
    config = load_config("run.yaml", ["dataset=pics"], check_files=False)
    names = set(run_inputs("train", config).files)
    assert "data/pics/a.png" in names and "data/pics/unused.png" not in names


def test_train_on_a_box_syncs_runs_there_then_sends_nothing_again_and_a_change_alone(
    remote_box, laptop
):
    first = tunedeck(laptop, "train", "run.yaml", "--host", remote_box.name)
    assert first.returncode == 0, first.stderr[-3000:]
    files, size, present = synced(first.stderr)
    assert files >= 3 and present == 0
    assert re.search(r"job \w+ succeeded \(exit 0\)", first.stderr), first.stderr[-2000:]
    output = Path(remote_box.workdir) / "out/run1"
    assert (output / "adapter_model.safetensors").is_file()

    again = tunedeck(
        laptop, "train", "run.yaml", "output_dir=out/run2", "--host", remote_box.name, "--detach"
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert synced(again.stderr) == (0, "0 B", files)
    assert f"synced: 0 files, 0 B ({files} files already on box)" in again.stderr

    rows = [{"instruction": "Say the colour of grass.", "input": "", "output": "green"}] * 8
    (laptop / "data" / "sky.json").write_text(json.dumps(rows))
    changed = tunedeck(
        laptop, "train", "run.yaml", "output_dir=out/run3", "--host", remote_box.name, "--detach"
    )
    assert changed.returncode == 0, changed.stderr[-3000:]
    sent, size, present = synced(changed.stderr)
    assert (sent, present) == (1, files - 1)
    assert size == f"{(laptop / 'data' / 'sky.json').stat().st_size} B"


def test_master_killed_mid_sync_then_the_launch_again_completes_with_equal_data(
    remote_box, laptop, monkeypatch
):
    big = laptop / "data" / "big.jsonl"
    row = json.dumps({"instruction": "x" * 1000, "input": "", "output": "y"}) + "\n"
    with open(big, "w") as handle:
        handle.write(row * 48_000)  # about 48 MB
    info = json.loads((laptop / "data" / "dataset_info.json").read_text())
    info["big"] = {"file_name": "big.jsonl"}
    (laptop / "data" / "dataset_info.json").write_text(json.dumps(info))
    monkeypatch.chdir(laptop)  # undone after the test: later tests keep their own cwd
    config = load_config("run.yaml", ["dataset=big", "output_dir=out/big"], check_files=False)
    killed = []

    def kill_master(progress):
        if progress.bytes_done > (4 << 20) and not killed:
            pid = master_pid(remote_box)
            killed.append(pid)
            os.kill(pid, signal.SIGKILL)

    backend = get_backend(remote_box.name)
    try:
        options = SyncOptions(on_progress=kill_master, bwlimit=12 << 20)
        with pytest.raises((TransferError, HostError)):
            launch_run("train", config, host=remote_box.name, backend=backend, sync=options)
        assert killed and killed[0]
        assert jobs_here() == []
        report = []
        job = launch_run(
            "train",
            config,
            host=remote_box.name,
            backend=backend,
            sync=SyncOptions(report=report.append),
        )
    finally:
        backend.close()
    assert job.host == "box"
    assert report and report[0].startswith("synced: ")
    tree = _tree_of(job.argv)
    assert file_sha256(tree / "big.jsonl") == file_sha256(big)
    assert file_sha256(tree / "dataset_info.json") == file_sha256(
        laptop / "data" / "dataset_info.json"
    )
    store = Path(remote_box.workdir) / STORE_DIR / "sha256"
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    assert file_sha256(store / digest[:2] / digest) == digest


def test_a_read_only_workdir_is_a_located_error_and_no_job(remote_box, laptop):
    workdir = Path(remote_box.workdir)
    workdir.chmod(0o555)
    try:
        done = tunedeck(laptop, "train", "run.yaml", "--host", remote_box.name)
    finally:
        workdir.chmod(0o755)
    assert done.returncode != 0
    assert "box" in done.stderr and "cannot write the store" in done.stderr, done.stderr
    assert str(workdir) in done.stderr
    assert "Traceback" not in done.stderr
    assert jobs_here() == []


def test_a_config_error_found_on_the_host_is_located_there_and_creates_no_job(remote_box, laptop):
    done = tunedeck(laptop, "train", "run.yaml", "template=no_such_template", "--host", "box")
    assert done.returncode != 0
    assert "on box: unknown template 'no_such_template'" in done.stderr, done.stderr
    assert "box" in done.stderr.split("on box")[0] or "'template'" in done.stderr
    assert "Traceback" not in done.stderr
    assert jobs_here() == []


def test_the_data_a_box_run_prepared_is_listed_and_cleared_from_here(remote_box, laptop):
    done = tunedeck(laptop, "train", "run.yaml", "--host", "box")
    assert done.returncode == 0, done.stderr[-3000:]
    here = json.loads(tunedeck(laptop, "data", "prepared", "--json").stdout)
    assert here["prepared"] == []  # prepared on the box, in the box's cache

    listed = json.loads(tunedeck(laptop, "data", "prepared", "--host", "box", "--json").stdout)
    assert listed["host"] == "box"
    assert listed["folder"].startswith(remote_box.env["TUNEDECK_HOME"])
    sky = [e for e in listed["prepared"] if e["about"]["datasets"] == ["sky"]]
    assert len(sky) == 1 and sky[0]["examples"] == 8
    assert sky[0]["about"]["model"].startswith(remote_box.workdir)  # the store's copy there

    cleared = tunedeck(laptop, "data", "prepared", "--host", "box", "--clear")
    assert cleared.returncode == 0, cleared.stderr
    assert "prepared data folder(s) from box:" in cleared.stdout
    left = json.loads(tunedeck(laptop, "data", "prepared", "--host", "box", "--json").stdout)
    assert left["prepared"] == []


def test_an_output_dir_the_box_cannot_write_is_located_at_its_key_and_no_job(remote_box, laptop):
    private = laptop / "private"  # this account's: the box's account cannot enter it
    private.mkdir(mode=0o700)
    done = tunedeck(laptop, "train", "run.yaml", f"output_dir={private}/out", "--host", "box")
    assert done.returncode != 0
    assert f"on box: cannot write {private}/out" in done.stderr, done.stderr
    assert (
        "'output_dir'" in done.stderr and "relative one is under the host's workdir" in done.stderr
    )
    assert "Traceback" not in done.stderr
    assert jobs_here() == []


def test_no_sync_sends_nothing_and_the_host_says_its_paths_are_missing(remote_box, laptop):
    done = tunedeck(laptop, "train", "run.yaml", "--host", "box", "--no-sync")
    assert done.returncode != 0
    assert "synced:" not in done.stderr
    assert "on box:" in done.stderr, done.stderr
    assert "dataset_info.json" in done.stderr or "cannot read" in done.stderr, done.stderr
    assert jobs_here() == []
    assert not (Path(remote_box.workdir) / STORE_DIR).exists()


def test_a_big_model_without_a_terminal_is_refused_naming_yes(remote_box, laptop, tmp_path):
    model = tmp_path / "bigmodel"
    model.mkdir()
    (model / "config.json").write_text("{}")
    with open(model / "weights.bin", "wb") as handle:
        handle.truncate((1 << 30) + 1)  # sparse: big, yet cheap to make
    done = tunedeck(laptop, "train", "run.yaml", f"model_name_or_path={model}", "--host", "box")
    assert done.returncode != 0
    assert "--yes" in done.stderr and str(model) in done.stderr, done.stderr
    assert jobs_here() == []


def _tree_of(argv) -> Path:
    for item in argv:
        if item.startswith("dataset_dir="):
            return Path(json.loads(item.split("=", 1)[1]))
    raise AssertionError(f"no dataset_dir in {argv}")


def test_a_quantize_run_sends_its_calibration_file_and_its_adapter(laptop, tiny_model, tmp_path):
    calibration = tmp_path / "calib.txt"
    calibration.write_text("some text to calibrate on\n")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    config = load_config(
        None,
        [
            f"model_name_or_path={tiny_model}",
            f"adapter_name_or_path={adapter}",
            f"export_dir={tmp_path / 'export'}",
            "export_quantization_bit=4",
            f"export_quantization_dataset={calibration}",
        ],
        purpose="export",
        check_files=False,
    )
    inputs = run_inputs("quantize", config)
    assert inputs.files["calibration/calib.txt"] == calibration
    assert inputs.files["adapter-0/adapter_config.json"] == adapter / "adapter_config.json"
    assert inputs.settings == {
        "model_name_or_path": "model",
        "adapter_name_or_path": "adapter-0",
        "export_quantization_dataset": "calibration/calib.txt",
    }


def test_a_big_model_on_a_terminal_asks_naming_its_size_and_host_and_no_sends_nothing(
    remote_box, laptop, tmp_path
):
    import pty
    import select

    model = tmp_path / "bigmodel"
    model.mkdir()
    (model / "config.json").write_text("{}")
    with open(model / "weights.bin", "wb") as handle:
        handle.truncate((1 << 30) + 1)
    main, child = pty.openpty()
    cli = subprocess.Popen(
        [sys.executable, "-m", "tunedeck.tui", "train", "run.yaml"]
        + [f"model_name_or_path={model}", "--host", "box"],
        cwd=laptop,
        stdin=child,
        stdout=child,
        stderr=child,
        start_new_session=True,
    )
    os.close(child)
    seen = b""
    try:
        while b"[y/N]" not in seen:
            ready, _, _ = select.select([main], [], [], 120)
            assert ready, seen.decode(errors="replace")
            seen += os.read(main, 4096)
        os.write(main, b"n\n")
        assert cli.wait(timeout=120) != 0
        while select.select([main], [], [], 0.5)[0]:
            try:
                seen += os.read(main, 4096)
            except OSError:
                break
    finally:
        os.close(main)
        if cli.poll() is None:
            cli.kill()
    text = seen.decode(errors="replace")
    assert f"send the model {model} (1.1 GB) to box?" in text, text
    assert "not sent" in text and "Traceback" not in text, text
    assert jobs_here() == []
    store = Path(remote_box.workdir) / STORE_DIR / "sha256"
    assert not any(p.is_file() for p in store.rglob("*"))
