"""Sync benchmark: sending a 1 GB dataset folder to a host, against `rsync -a` of the same folder
over the same ControlMaster connection in the same run; then an unchanged re-send and one
changed 10 MB file.

Starts a private sshd on 127.0.0.1 (needs openssh-server and rsync) and a temporary TUNEDECK_HOME.
Run: .venv/bin/python bench/sync_bench.py [--files 20] [--mb 50]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jobs_bench import start_sshd

ROUNDS = 3


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--mb", type=int, default=50)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tdsync-"))
    os.environ["TUNEDECK_HOME"] = str(work / "local")
    server, ssh_config = start_sshd(work / "sshd")
    host = None
    try:
        from tunedeck.core.jobs.hosts import Host, add_host

        host = add_host(
            Host(
                name="loop",
                target="loop",
                workdir=str(work / "remote-work"),
                command=f"{sys.executable} -m tunedeck.tui",
                env={"TUNEDECK_HOME": str(work / "remote")},
                ssh_options=("-F", str(ssh_config)),
            )
        )
        data = make_dataset(work / "laptop" / "data", args.files, args.mb)
        figures(host, data, work)
    finally:
        from tunedeck.core.jobs.ssh import stop_master

        if host is not None:
            stop_master(host)
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)
    return 0


def make_dataset(folder: Path, files: int, mb: int) -> Path:
    """`files` JSON Lines files of about `mb` MB each (distinct rows) and their dataset_info.json."""
    folder.mkdir(parents=True)
    info = {}
    for index in range(files):
        name = f"part{index:02d}"
        write_jsonl(folder / f"{name}.jsonl", mb << 20, seed=index)
        info[name] = {"file_name": f"{name}.jsonl"}
    (folder / "dataset_info.json").write_text(json.dumps(info))
    return folder


def write_jsonl(path: Path, size: int, seed: int) -> None:
    with open(path, "w") as handle:
        written = row = 0
        while written < size:
            text = os.urandom(384).hex()
            line = json.dumps({"instruction": f"{seed}-{row} {text}", "input": "", "output": text})
            handle.write(line + "\n")
            written += len(line) + 1
            row += 1


def figures(host, data: Path, work: Path) -> None:
    from tunedeck.core.config import RunConfig
    from tunedeck.core.jobs import get_backend
    from tunedeck.core.jobs.ssh import ssh_argv
    from tunedeck.core.runners.inputs import SyncOptions, send_inputs

    names = sorted(json.loads((data / "dataset_info.json").read_text()))
    config = RunConfig(
        model_name_or_path="hub-org/model",
        dataset=",".join(names),
        dataset_dir=str(data),
        output_dir="out",
    )
    total = sum(p.stat().st_size for p in data.iterdir())
    backend = get_backend(host.name)
    try:
        backend.check()  # the connection and the agent are up before any timing
        shell = shlex.join(ssh_argv(host)[:-1])
        store = Path(host.workdir) / ".tunedeck"

        def baseline(round_: int) -> float:
            os.sync()  # no earlier round's writes left to flush into this one
            started = time.perf_counter()
            target = f"{host.target}:{Path(host.workdir) / f'rsync-copy-{round_}'}/"
            subprocess.run(["rsync", "-a", "-e", shell, f"{data}/", target], check=True)
            return time.perf_counter() - started

        def send():
            os.sync()
            lines = []
            options = SyncOptions(report=lines.append)
            started = time.perf_counter()
            _, result = send_inputs(backend, host.name, "train", config, options)
            return time.perf_counter() - started, result, lines[0]

        def first_send():
            shutil.rmtree(store, ignore_errors=True)  # an empty store on the host
            for cache in Path(os.environ["TUNEDECK_HOME"]).rglob("hashes.sqlite"):
                cache.unlink()  # nothing hashed yet here either
            return send()

        rsyncs, firsts = [], []
        for round_ in range(ROUNDS):  # interleaved: the machine is shared, load comes and goes
            rsyncs.append(baseline(round_))
            shutil.rmtree(Path(host.workdir) / f"rsync-copy-{round_}", ignore_errors=True)
            took, result, line = first_send()
            firsts.append(took)
        first, base = statistics.median(firsts), statistics.median(rsyncs)
        print(f"dataset: {len(names)} files + dataset_info.json, {total / 1e6:.0f} MB")
        print(f"first send: median {first:.2f} s of {ROUNDS} ({line}; {result.method})")
        print(f"  rounds: {', '.join(f'{t:.2f}' for t in firsts)} s")
        print(
            f"  baseline `rsync -a` of the same folder, same connection: median {base:.2f} s "
            f"({', '.join(f'{t:.2f}' for t in rsyncs)} s)"
        )
        print(f"  ratio send/rsync: {first / base:.2f}x (goal <= 1.2x)")

        again, result, line = send()
        print(f"unchanged re-send: {again:.3f} s ({line}) (goal < 1 s)")

        write_jsonl(data / f"{names[min(7, len(names) - 1)]}.jsonl", 10 << 20, seed=1000)
        changed, result, line = send()
        print(
            f"one changed 10 MB file: {changed:.2f} s, sent {result.bytes_sent / 1e6:.1f} MB "
            f"in {result.files_sent} file ({line}) (goal: about 10 MB)"
        )
    finally:
        backend.close()


if __name__ == "__main__":
    sys.exit(main())
