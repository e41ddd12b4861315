"""What every runner process shares: rank, stop-on-signal, torchrun launch, a last-resort status.

Signals: the first SIGTERM/SIGINT asks the runner to stop at the next safe point (training: after
the current step, with a checkpoint); before that point is reached the runner stops at once. A
second signal exits at once (under torchrun or in a Slurm job: one arriving more than
FORWARD_WINDOW seconds after the first). Cancelled runs exit with 128 + signal number (130, 143).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tunedeck.core.config import RunConfig, load_config
from tunedeck.core.errors import TunedeckError
from tunedeck.core.runners import progress

# Under torchrun a rank gets a job's signal twice: from its process group, then from torchrun;
# in a Slurm job that is preempted every process gets TERM from Slurm and from the batch script.
FORWARD_WINDOW = 5.0


def config_from_argv(
    module: str, argv: Sequence[str] | None, purpose: str = "train"
) -> RunConfig | int:
    """A runner's `CONFIG.yaml|- [key=value ...]` arguments as a checked config, or an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(f"usage: python -m {module} CONFIG.yaml|- [key=value ...]", file=sys.stderr)
        return 2
    try:
        return load_config(None if args[0] == "-" else args[0], args[1:], purpose=purpose)
    except TunedeckError as exc:
        progress.print_problems(exc)
        return progress.EXIT_FAILED


def rank() -> int:
    """This process's global rank under torchrun (0 when not distributed)."""
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """How many ranks this run has (1 when not distributed)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return rank() == 0


def leave_process_group() -> None:
    """Every rank done (a barrier), then the process group closed: a rank leaving while rank 0
    still saves would tear its communication threads down mid-use (SIGABRT at exit)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def rank_line() -> str:
    """Where this rank runs, for its log: global and local rank, node rank, node name."""
    node = os.environ.get("SLURMD_NODENAME") or os.uname().nodename
    return (
        f"rank {rank()} of {world_size()}: node rank {os.environ.get('GROUP_RANK', '0')}, "
        f"local rank {os.environ.get('LOCAL_RANK', '0')} on {node}"
    )


@dataclass
class StopRequest:
    """Set by the signal handler; polled by the runner at safe points."""

    output_dir: str | None = None
    signum: int | None = None
    stoppable: bool = False  # True while the runner can stop cleanly at its next safe point
    on_immediate_exit: list[Callable[[], None]] = field(default_factory=list)
    at: float = 0.0  # time.monotonic() of the first signal

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGTERM)


def install_stop_handlers(output_dir: str | None) -> StopRequest:
    """Handle SIGTERM and SIGINT: first one requests a stop, a second one (or one while the runner
    cannot stop cleanly) writes status cancelled and exits at once."""
    stop = StopRequest(output_dir=output_dir)

    def handle(signum: int, _frame) -> None:
        name = signal.Signals(signum).name
        repeated = stop.requested and time.monotonic() - stop.at < FORWARD_WINDOW
        if repeated and (under_torchrun() or under_slurm()):
            return  # the same stop passed on again (torchrun, or Slurm's batch script)
        if stop.requested or not stop.stoppable:
            stop.signum = stop.signum or signum
            _write_cancelled(stop, f"stopped at once by {name}")
            for hook in stop.on_immediate_exit:
                hook()
            os._exit(128 + signum)
        stop.signum, stop.at = signum, time.monotonic()
        if is_main_process():
            print(
                f"{name} received: stopping after this step (send it again to stop at once)",
                file=sys.stderr,
                flush=True,
            )

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop


def _write_cancelled(stop: StopRequest, message: str) -> None:
    if stop.output_dir and is_main_process():
        try:
            progress.write_status(stop.output_dir, "cancelled", message)
        except OSError:
            pass


def under_torchrun() -> bool:
    return os.environ.get("LOCAL_RANK") is not None


def under_slurm() -> bool:
    """True inside a Slurm job (its batch script passes a stop on to the runner)."""
    return os.environ.get("SLURM_JOB_ID") is not None


def torchrun_nproc(nproc_per_node: int | None) -> int:
    """How many processes to launch: nproc_per_node, else the visible GPU count (0 or 1: none)."""
    if under_torchrun():
        return 0  # this is already a rank
    if nproc_per_node:
        return nproc_per_node if nproc_per_node > 1 else 0
    return _gpu_count() if _gpu_count() > 1 else 0


def run_under_torchrun(
    module: str, args: Sequence[str], nproc: int, output_dir: str | None = None
) -> int:
    """Run `python -m module args` as `nproc` ranks under torchrun and wait; return the exit code.

    torchrun runs as a child in this process group, so a job's SIGTERM (sent to the group) reaches
    every rank at once, and a SIGKILL leaves no rank behind. This process only waits: the exit
    code is 128 + signal when the run was cancelled (torchrun itself then exits 1).
    """
    received: list[int] = []

    def remember(signum: int, _frame) -> None:
        received.append(signum)

    signal.signal(signal.SIGTERM, remember)
    signal.signal(signal.SIGINT, remember)
    sys.stdout.flush()
    sys.stderr.flush()
    before = _status_stamp(output_dir)
    code = subprocess.Popen(torchrun_argv(module, args, nproc)).wait()
    phase = None  # what rank 0 wrote during this run (not a previous run's file)
    if output_dir and _status_stamp(output_dir) != before:
        phase = (progress.read_status(output_dir) or {}).get("phase")
    if phase == "done":
        return progress.EXIT_OK
    if received and phase == "cancelled":
        return 128 + received[0]
    code = 128 - code if code < 0 else code  # torchrun itself killed by a signal
    if code and output_dir and phase not in progress.FINAL_PHASES:
        progress.write_status(output_dir, "failed", f"torchrun exited with {code}")
    return code


def _status_stamp(output_dir: str | None) -> int | None:
    try:
        return os.stat(os.path.join(output_dir or "", progress.STATUS_FILE)).st_mtime_ns
    except OSError:
        return None


def torchrun_argv(
    module: str, args: Sequence[str], nproc: int, launcher: Sequence[str] | None = None
) -> list[str]:
    """The command line that runs `python -m module args` as `nproc` ranks on this machine.

    launcher: torchrun beside this interpreter (else on PATH, else `python -m torch.distributed.run`).
    """
    if launcher is None:
        torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
        torchrun = torchrun or shutil.which("torchrun")
        launcher = [torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]
    return [*launcher, "--standalone", f"--nproc_per_node={nproc}", "-m", module, *args]


def _gpu_count() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # noqa: BLE001 - no torch or no driver: no GPU
        return 0
