"""Runs at scale: registries of 100, 1,000 and 10,000 runs, against an empty one in the same run.

  .venv/bin/python bench/runs_bench.py [--quick]

For each size, in a fresh TUNEDECK_HOME filled through core JobRegistry:
1. key to screen: the app (Pilot, headless) on Datasets, `3` sent (App.simulate_key), until
   the screen's compositor holds the newest run and the "N of M runs" line; the first visit,
   then the best of three returns (`1` then `3`);
2. idle CPU on the Runs screen over 10 s: process CPU time (every thread) / wall time;
3. `tunedeck runs` (the table, to a pipe) in a subprocess, best of three.
The baseline of each figure is the same measure with an empty registry.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out" / "runs"
SIZES = (0, 100, 1_000, 10_000)
IDLE_SECONDS = 10.0


def main() -> None:
    quick = "--quick" in sys.argv
    idle = 3.0 if quick else IDLE_SECONDS
    rows = [measure(size, idle) for size in SIZES]
    base = rows[0]
    print()
    print(f"{'runs':>7} {'first key->screen':>18} {'return':>9} {'idle CPU':>9} {'runs CLI':>9}")
    print(f"{'':>7} {'ms (x empty)':>18} {'ms':>9} {'%':>9} {'s (x)':>9}")
    for row in rows:
        print(
            f"{row['size']:>7,} {row['first_ms']:>8.1f} ({row['first_ms'] / base['first_ms']:4.1f}x)"
            f" {row['return_ms']:>9.1f} {row['idle_cpu'] * 100:>8.1f}%"
            f" {row['cli_s']:>5.2f} ({row['cli_s'] / base['cli_s']:4.1f}x)"
        )


def measure(size: int, idle: float) -> dict:
    """One registry size: fill it, then time the app and the CLI over it."""
    home = OUT / f"home-{size}"
    subprocess.run(["rm", "-rf", str(home)], check=True)
    home.mkdir(parents=True)
    env = {**os.environ, "TUNEDECK_HOME": str(home)}
    code = f"import runs_bench; runs_bench.app_figures({size}, {idle})"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "PYTHONPATH": f"{REPO / 'bench'}:{REPO / 'tests' / 'tui'}"},
        capture_output=True,
        text=True,
        check=True,
    )
    first, back, cpu = (float(v) for v in done.stdout.split()[-3:])
    cli = min(_time_cli(env) for _ in range(3))
    print(
        f"{size:>7,} runs: first {first:.1f} ms, return {back:.1f} ms, idle CPU {cpu:.1%}, "
        f"tunedeck runs {cli:.2f} s",
        flush=True,
    )
    return {"size": size, "first_ms": first, "return_ms": back, "idle_cpu": cpu, "cli_s": cli}


def _time_cli(env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "tunedeck.tui", "runs"],
        env={**env, "COLUMNS": "120"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return time.perf_counter() - started


def fill(size: int) -> None:
    """`size` ended runs, one second apart, written through the registry."""
    from tunedeck.core.jobs import JobRegistry
    from tunedeck.core.jobs.model import Job, JobState

    registry = JobRegistry()
    start = time.time() - size
    endings = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)
    for number in range(size):
        registry.add(
            Job(
                id=f"r{number:05d}",
                name=f"sweep-{number:05d}",
                argv=("true",),
                state=endings[number % 3],
                created_at=start + number,
                exit_code=0,
                progress=1.0,
                last_loss=1.0 / (number + 1),
            )
        )
    registry.close()


def app_figures(size: int, idle: float) -> None:
    """Print `first_ms return_ms idle_cpu` for the app over a registry of `size` runs."""
    fill(size)
    print(*asyncio.run(_in_app(size, idle)))


async def _in_app(size: int, idle: float) -> tuple[float, float, float]:
    from pilot_tools import EXAMPLE_DATA, screen_text, settle

    from tunedeck.tui.app import TunedeckApp
    from tunedeck.tui.screens.runs import RECENT_RUNS

    shown = [f"{min(size, RECENT_RUNS):,} of {size:,} runs"]
    if size:
        shown.append(f"sweep-{size - 1:05d}")
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)

        async def key_to_screen() -> float:
            """`3` as the terminal sends it, until the screen holds the newest run and the
            count line (read from the compositor: what the next frame draws)."""
            started = time.perf_counter()
            app.simulate_key("3")
            while not (app.current_mode == "runs" and all(t in screen_text(app) for t in shown)):
                await asyncio.sleep(0.01)  # reading the compositor faster starves the app
            return (time.perf_counter() - started) * 1000

        first = await key_to_screen()
        returns = []
        for _ in range(3):
            app.simulate_key("1")
            await pilot.pause(0.3)
            returns.append(await key_to_screen())
        await pilot.pause(1.5)  # let the first refreshes pass
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.sleep(idle)
        usage = (time.process_time() - cpu) / (time.perf_counter() - wall)
    return first, min(returns), usage


if __name__ == "__main__":
    main()
