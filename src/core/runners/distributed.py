"""Multi-node training under Slurm: the sbatch lines that start one torchrun agent per node.

The batch script runs on the allocation's first node. It finds the rendezvous address there (the
first host's NodeAddr, which is its name on most clusters), then `srun` starts one task per node;
each task evaluates its own `$SLURM_NODEID` and execs torchrun, and the agents meet through a
c10d rendezvous keyed by the Slurm job id. torchrun numbers the ranks; only global rank 0 writes
trainer_log.jsonl and run_status.json (runners/common.py: is_main_process).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

DEFAULT_PORT = 29500
PORT_SPREAD = 1000


def torchrun_lines(
    runner_argv: Sequence[str],
    nodes: int,
    procs_per_node: int,
    port: int | None = None,
    *,
    shell_args: str = "",
) -> list[str]:
    """bash lines for an sbatch script body: MASTER_ADDR from the allocation's first host, then
    one `python -m torch.distributed.run` per node through srun, c10d rendezvous at port.

    Without a port, each job takes DEFAULT_PORT + its Slurm job id modulo PORT_SPREAD, so jobs
    sharing a node (the tasks of a job array) do not meet at one another's rendezvous.

    `shell_args`: shell words added after the runner's own arguments, expanded by the batch
    script (e.g. '"${ARGV[@]:3}" "${RESUME[@]}"' for the task of a job array). The lines end
    with srun's exit status; they set a TERM trap, so run them in a function or subshell when
    the script goes on after them.
    """
    python, module, args = _split_runner(runner_argv)
    if nodes < 1 or procs_per_node < 1:
        raise ValueError("nodes and procs_per_node must be at least 1")
    port_expression = str(port) if port else f"$(({DEFAULT_PORT} + SLURM_JOB_ID % {PORT_SPREAD}))"
    launcher = shlex.join([python, "-m", "torch.distributed.run"])
    agent = (
        f"exec {launcher} --nnodes {nodes} --nproc-per-node {procs_per_node}"
        ' --node-rank "$SLURM_NODEID" --rdzv-backend c10d'
        ' --rdzv-endpoint "$MASTER_ADDR:$MASTER_PORT" --rdzv-id "tunedeck-$SLURM_JOB_ID"'
        f' -m {shlex.quote(module)} "$@"'
    )
    srun = " ".join(
        word
        for word in (
            f"setsid -w srun --nodes {nodes} --ntasks-per-node 1 --kill-on-bad-exit=1",
            f"bash -c {shlex.quote(agent)} torchrun",  # torchrun: the agent's $0
            shlex.join(args),
            shell_args,
        )
        if word
    )
    return [
        'MASTER_NODE="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)"',
        # NodeAddr is how Slurm itself reaches the node; it is the node's name unless set apart
        'MASTER_ADDR="$(scontrol show node "$MASTER_NODE" | sed -n \'s/.*NodeAddr=\\([^ ]*\\).*/\\1/p\')"',
        'export MASTER_ADDR="${MASTER_ADDR:-$MASTER_NODE}"',
        f"export MASTER_PORT={port_expression}",
        # srun gets a session of its own: a TERM reaching srun makes it SIGKILL every rank.
        # A TERM to the script's group (cancel, time limit) comes to the trap instead, which
        # has Slurm TERM each node's agent: the ranks save a checkpoint and stop.
        # The runner's arguments reach each node's bash as "$@" (srun passes its argv as is).
        "trap 'scancel --signal=TERM \"$SLURM_JOB_ID\"' TERM",
        f"{srun} &",
        "SRUN_PID=$!",
        'while kill -0 "$SRUN_PID" 2>/dev/null; do wait "$SRUN_PID"; done',
        'wait "$SRUN_PID"',
    ]


def _split_runner(runner_argv: Sequence[str]) -> tuple[str, str, list[str]]:
    """[python, "-m", module, *args] as its three parts."""
    argv = list(runner_argv)
    if len(argv) < 3 or argv[1] != "-m":
        raise ValueError(f"a runner argv is [python, '-m', module, ...], not {argv!r}")
    return argv[0], argv[2], argv[3:]
