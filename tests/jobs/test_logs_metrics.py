import json
import os
import threading
import time

from jobs_helpers import wait_for

from tunedeck.core.jobs.gpus import parse_gpus, query_gpus
from tunedeck.core.jobs.logs import follow_file, read_log_file, tail_offset
from tunedeck.core.jobs.metrics import (
    parse_trainer_stdout,
    read_metrics_files,
    read_progress,
)


def test_reading_by_offset_resumes_exactly(tmp_path):
    log = tmp_path / "job.log"
    log.write_bytes(b"one\ntwo\nthree\n")
    first = read_log_file(log, 0, limit=5)
    second = read_log_file(log, first.next_offset)
    assert first.data + second.data == b"one\ntwo\nthree\n"
    assert second.next_offset == second.size == 14


def test_a_truncated_log_is_read_again_from_the_start_and_flagged(tmp_path):
    log = tmp_path / "job.log"
    log.write_bytes(b"short\n")
    chunk = read_log_file(log, 100)
    assert chunk.truncated and chunk.data == b"short\n"


def test_tail_offset_finds_the_last_lines(tmp_path):
    log = tmp_path / "job.log"
    log.write_bytes(b"".join(b"line %d\n" % i for i in range(100_000)))
    assert read_log_file(log, tail_offset(log, 2)).data == b"line 99998\nline 99999\n"
    log.write_bytes(b"no newline at the end")
    assert tail_offset(log, 1) == 0
    assert tail_offset(tmp_path / "missing.log", 5) == 0


def test_follow_delivers_appends_then_survives_truncation_and_rotation(tmp_path):
    log = tmp_path / "job.log"
    log.write_bytes(b"a\n")
    done = threading.Event()
    received: list[bytes] = []
    truncations = []

    def follow():
        for chunk in follow_file(log, 0, finished=done.is_set):
            received.append(chunk.data)
            truncations.append(chunk.truncated)

    reader = threading.Thread(target=follow)
    reader.start()
    wait_for(lambda: b"".join(received) == b"a\n", what="first line")
    with open(log, "ab") as f:
        f.write(b"b\n")
    wait_for(lambda: b"".join(received) == b"a\nb\n", what="appended line")
    log.write_bytes(b"c\n")  # truncated and rewritten
    wait_for(lambda: b"".join(received).endswith(b"c\n"), what="line after truncation")
    os.rename(log, tmp_path / "job.log.1")
    with open(tmp_path / "job.log.1", "ab") as f:
        f.write(b"d\n")  # written to the old file before the new one appears
    log.write_bytes(b"e\n")
    wait_for(lambda: b"".join(received).endswith(b"d\ne\n"), what="lines after rotation")
    done.set()
    reader.join(timeout=10)
    assert not reader.is_alive()
    assert b"".join(received) == b"a\nb\nc\nd\ne\n"
    assert any(truncations)


def test_trainer_log_jsonl_gives_the_series_and_progress(tmp_path):
    rows = [
        {
            "current_steps": 5,
            "total_steps": 20,
            "loss": 2.5,
            "lr": 1e-4,
            "epoch": 0.25,
            "percentage": 25.0,
            "throughput": 100.0,
        },
        {
            "current_steps": 10,
            "total_steps": 20,
            "eval_loss": 2.2,
            "epoch": 0.5,
            "percentage": 50.0,
        },
        {
            "current_steps": 10,
            "total_steps": 20,
            "loss": 2.0,
            "lr": 5e-5,
            "epoch": 0.5,
            "percentage": 50.0,
        },
    ]
    (tmp_path / "trainer_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    series = read_metrics_files(str(tmp_path), None)
    assert [(p.step, p.loss, p.eval_loss) for p in series] == [
        (5, 2.5, None),
        (10, None, 2.2),
        (10, 2.0, None),
    ]
    assert series[0].lr == 1e-4 and series[0].throughput == 100.0
    progress = read_progress(str(tmp_path), None)
    assert progress.fraction == 0.5 and progress.last_loss == 2.0


def test_hf_trainer_stdout_lines_become_a_series(tmp_path):
    text = (
        "Loading weights...\n"
        "{'loss': 2.3456, 'grad_norm': 1.5, 'learning_rate': 5e-05, 'epoch': 0.1}\n"
        " 10%|#         | 1/10 [00:01<00:09]{'loss': '2.1', 'learning_rate': '4e-05', 'epoch': '0.2'}\n"
        "{'eval_loss': 2.05, 'eval_runtime': 0.5, 'epoch': 0.2}\n"
        "{'train_runtime': 3.2, 'train_loss': 2.2, 'epoch': 1.0}\n"
    )
    series = parse_trainer_stdout(text)
    assert [(p.step, p.loss, p.eval_loss, p.lr) for p in series] == [
        (1, 2.3456, None, 5e-05),
        (2, 2.1, 2.05, 4e-05),
    ]
    log = tmp_path / "job.log"
    log.write_text(text)
    assert read_progress(None, str(log)).last_loss == 2.1


def test_gpu_csv_is_parsed_with_processes_and_missing_values():
    gpus = parse_gpus(
        "0, NVIDIA H100 80GB HBM3, GPU-aaa, 1024, 81559, 37\n"
        "1, NVIDIA H100 80GB HBM3, GPU-bbb, [N/A], 81559, [Not Supported]\n",
        "GPU-aaa, 4242, 1000\nGPU-aaa, 4243, 24\n",
    )
    assert [g.index for g in gpus] == [0, 1]
    assert gpus[0].memory_used_mib == 1024 and gpus[0].utilization_pct == 37
    assert [p.pid for p in gpus[0].processes] == [4242, 4243]
    assert gpus[1].memory_used_mib is None and gpus[1].processes == ()


def test_no_nvidia_smi_means_no_gpu():
    assert query_gpus("nvidia-smi-that-does-not-exist") == []


def test_follow_ends_when_the_job_is_finished_and_everything_was_read(tmp_path):
    log = tmp_path / "job.log"
    log.write_bytes(b"x" * 3_000_000)
    started = time.monotonic()
    data = b"".join(c.data for c in follow_file(log, 0, finished=lambda: True))
    assert len(data) == 3_000_000 and time.monotonic() - started < 30


def test_a_finished_job_keeps_its_final_progress_and_loss(tmp_path):
    from tunedeck.core.jobs import JobSpec, read_metrics
    from tunedeck.core.jobs.local import LocalBackend

    line = json.dumps({"current_steps": 4, "total_steps": 4, "loss": 1.25, "percentage": 100.0})
    script = f"printf '%s\\n' '{line}' > trainer_log.jsonl"
    backend = LocalBackend()
    job = backend.submit(
        JobSpec(argv=("sh", "-c", script), name="t", kind="train", cwd=str(tmp_path),
                output_dir=".")
    )  # fmt: skip
    final = wait_for(lambda: (j := backend.status([job.id])[0]).state.is_final and j)
    assert final.output_dir == str(tmp_path)
    assert (final.progress, final.last_loss) == (1.0, 1.25)
    assert [p.loss for p in read_metrics(final)] == [1.25]
