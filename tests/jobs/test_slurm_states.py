"""Slurm's words read into tunedeck's: job states, squeue and sinfo lines, exit codes, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunedeck.core.jobs.model import JobState
from tunedeck.core.jobs.slurm import submission_error
from tunedeck.core.jobs.slurm_states import (
    exit_code_of,
    gpu_count,
    memory_mb,
    parse_queue_order,
    parse_sinfo_nodes,
    parse_squeue,
    tunedeck_state,
)


@pytest.mark.parametrize(
    ("slurm", "ours"),
    [
        ("PENDING", JobState.QUEUED),
        ("REQUEUED", JobState.QUEUED),
        ("RUNNING", JobState.RUNNING),
        ("COMPLETING", JobState.RUNNING),
        ("COMPLETED", JobState.SUCCEEDED),
        ("FAILED", JobState.FAILED),
        ("CANCELLED by 0", JobState.CANCELLED),
        ("TIMEOUT", JobState.FAILED),
        ("PREEMPTED", JobState.FAILED),
        ("NODE_FAIL", JobState.FAILED),
        ("OUT_OF_MEMORY", JobState.FAILED),
    ],
)
def test_each_slurm_state_maps_to_a_tunedeck_state(slurm, ours):
    assert tunedeck_state(slurm) == ours


def test_squeue_lines_give_reason_and_start_estimate_per_array_task():
    text = (
        "41_0|RUNNING|None|2026-12-01T10:00:00|gpu01|1:02\n"
        "41_1|PENDING|Resources|2026-12-01T12:30:00||0:00\n"
        "42|PENDING|Priority|N/A||0:00\n"
    )
    entries = parse_squeue(text)
    assert entries["41_0"].nodes == "gpu01" and entries["41_0"].reason is None
    assert entries["41_1"].pending_reason() == "Resources; expected start 2026-12-01T12:30:00"
    assert entries["42"].pending_reason() == "Priority"


def test_sinfo_nodes_are_summed_by_partition_with_gpus_in_use():
    text = (
        "gpu01|gpu*|mixed|8/56/0/64|512000|gpu:a100:4(S:0-1)|gpu:a100:2(IDX:0-1)|\n"
        "gpu02|gpu*|idle|0/64/0/64|512000|gpu:a100:4(S:0-1)|gpu:a100:0(IDX:N/A)|\n"
        "cpu01|cpu|down*|0/0/32/32|128000|(null)|(null)|\n"
    )
    gpu, cpu = parse_sinfo_nodes(text)
    assert (gpu.name, gpu.default, gpu.nodes) == ("gpu", True, 2)
    assert gpu.node_states == {"mixed": 1, "idle": 1}
    assert (gpu.gpus_used, gpu.gpus_total, gpu.node_gpus) == (2, 8, 4)
    assert (gpu.cpus_allocated, gpu.cpus_total, gpu.node_cpus) == (8, 128, 64)
    assert gpu.line() == "gpu*: 2 node(s) (1 idle, 1 mixed), CPUs 8/128 in use, GPUs 2/8 in use"
    assert cpu.node_states == {"down": 1} and cpu.gpus_total == 0
    assert gpu.too_small_for(3, 128, 8, memory_mb("1T")) == [
        "--nodes",
        "--cpus-per-task",
        "--gpus-per-node",
        "--mem",
    ]
    assert gpu.too_small_for(2, 64, 4, memory_mb("500G")) == []


def test_exit_codes_read_as_a_shell_says_them():
    assert exit_code_of("0:0") == 0 and exit_code_of("3:0") == 3
    assert exit_code_of("0:15") == 143 and exit_code_of("") is None
    assert gpu_count("gpu:2,gpu:v100:1") == 3


def test_an_sbatch_refusal_names_its_flag_in_slurms_words():
    text = (
        "sbatch: error: invalid partition specified: nope\n"
        "sbatch: error: Batch job submission failed: Invalid partition name specified\n"
    )
    error = submission_error(text, "cluster", Path("/state/runs/x.sbatch"))
    assert error.location.column == "--partition" and error.location.file == "/state/runs/x.sbatch"
    assert error.message == (
        "cluster: Slurm refused the job: invalid partition specified: nope; "
        "Batch job submission failed: Invalid partition name specified"
    )
    account = submission_error(
        "sbatch: error: Invalid account or account/partition combination specified", "c", Path("s")
    )
    assert account.location.column == "--account"


def test_queue_order_numbers_each_partitions_pending_jobs_from_one():
    text = "41|gpu\n7_2|debug\n42|gpu\n7_3|debug,gpu\n43|gpu\n"
    assert parse_queue_order(text) == {"41": 1, "7_2": 1, "42": 2, "7_3": 2, "43": 3}
    assert parse_queue_order(text, wanted={"43", "7_3"}) == {"7_3": 2, "43": 3}


def test_squeue_lines_carry_the_partition():
    entry = parse_squeue("12|PENDING|Priority|N/A|||gpu\n")["12"]
    assert (entry.partition, entry.reason, entry.start) == ("gpu", "Priority", None)
