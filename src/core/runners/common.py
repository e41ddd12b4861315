"""What every runner process shares: rank, stop-on-signal, torchrun relaunch, a last-resort status.

Signals: the first SIGTERM/SIGINT asks the runner to stop at the next safe point (training: after
the current step, with a checkpoint); before that point is reached the runner stops at once. A
second signal always exits at once. Cancelled runs exit with 128 + signal number (130, 143).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tunedeck.core.runners import progress


def rank() -> int:
    """This process's global rank under torchrun (0 when not distributed)."""
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    return rank() == 0


@dataclass
class StopRequest:
    """Set by the signal handler; polled by the runner at safe points."""

    output_dir: str | None = None
    signum: int | None = None
    stoppable: bool = False  # True while the runner can stop cleanly at its next safe point
    on_immediate_exit: list[Callable[[], None]] = field(default_factory=list)

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
        if stop.requested or not stop.stoppable:
            stop.signum = stop.signum or signum
            _write_cancelled(stop, f"stopped at once by {name}")
            for hook in stop.on_immediate_exit:
                hook()
            os._exit(128 + signum)
        stop.signum = signum
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


def torchrun_nproc(nproc_per_node: int | None) -> int:
    """How many processes to launch: nproc_per_node, else the visible GPU count (0 or 1: none)."""
    if os.environ.get("LOCAL_RANK") is not None:
        return 0  # already launched by torchrun
    if nproc_per_node:
        return nproc_per_node if nproc_per_node > 1 else 0
    return _gpu_count() if _gpu_count() > 1 else 0


def relaunch_under_torchrun(module: str, args: Sequence[str], nproc: int) -> None:
    """Replace this process with `torchrun --nproc_per_node N -m module args` (never returns)."""
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or shutil.which(
        "torchrun"
    )
    launcher = [torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]
    argv = [*launcher, "--standalone", f"--nproc_per_node={nproc}", "-m", module, *args]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)


def _gpu_count() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # noqa: BLE001 - no torch or no driver: no GPU
        return 0
