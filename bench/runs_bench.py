"""Runs at scale: registries of 100, 1,000 and 10,000 runs, against an empty one in the same run.

  .venv/bin/python bench/runs_bench.py [--quick]

For each size, in a fresh TUNEDECK_HOME filled through core JobRegistry:
1. key to screen: the app (Pilot, headless) on Datasets, `3` sent (App.simulate_key), until
   the screen's compositor holds the newest run's id (on the detail line of the run selected
   first) and the "N of M runs" line; the first visit,
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
WATCHED = 20
IDLE_SECONDS = 10.0


def main() -> None:
    quick = "--quick" in sys.argv
    idle = 3.0 if quick else IDLE_SECONDS
    rows = [measure(size, idle) for size in SIZES]
    rows.append(measure(SIZES[-1], idle, watched=WATCHED))
    base = rows[0]
    print()
    print(
        f"{'runs':>12} {'first key->screen':>18} {'return':>9} {'down key':>9}"
        f" {'idle CPU':>9} {'runs CLI':>9}"
    )
    print(f"{'':>12} {'ms (x empty)':>18} {'ms':>9} {'ms':>9} {'%':>9} {'s (x)':>9}")
    for row in rows:
        label = f"{row['size']:,}" + (f" +{row['watched']}w" if row["watched"] else "")
        down = f"{row['down_ms']:>9.1f}" if row["down_ms"] >= 0 else f"{'-':>9}"
        print(
            f"{label:>12} {row['first_ms']:>8.1f} ({row['first_ms'] / base['first_ms']:4.1f}x)"
            f" {row['return_ms']:>9.1f} {down} {row['idle_cpu'] * 100:>8.1f}%"
            f" {row['cli_s']:>5.2f} ({row['cli_s'] / base['cli_s']:4.1f}x)"
        )


def measure(size: int, idle: float, watched: int = 0) -> dict:
    """One registry size (and `watched` folders): fill it, then time the app and the CLI."""
    home = OUT / f"home-{size}-{watched}"
    subprocess.run(["rm", "-rf", str(home)], check=True)
    home.mkdir(parents=True)
    env = {**os.environ, "TUNEDECK_HOME": str(home)}
    code = f"import runs_bench; runs_bench.app_figures({size}, {idle}, {watched})"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "PYTHONPATH": f"{REPO / 'bench'}:{REPO / 'tests' / 'tui'}"},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"app figures failed:\n{done.stderr[-6000:]}")
    first, back, down, cpu = (float(v) for v in done.stdout.split()[-4:])
    cli = min(_time_cli(env) for _ in range(3))
    print(
        f"{size:>7,} runs, {watched} watched folders: first {first:.1f} ms, return {back:.1f} ms,"
        f" down key {down:.1f} ms, idle CPU {cpu:.1%}, tunedeck runs {cli:.2f} s",
        flush=True,
    )
    return {
        "size": size,
        "watched": watched,
        "first_ms": first,
        "return_ms": back,
        "down_ms": down,
        "idle_cpu": cpu,
        "cli_s": cli,
    }


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


def fill_watched(count: int) -> list[Path]:
    """`count` watched folders, each holding one run with a 500-line trainer_log.jsonl."""
    from tunedeck.core.jobs.watched_folders import watch_folder

    logs = []
    for number in range(count):
        root = Path(os.environ["TUNEDECK_HOME"]) / "watched" / f"folder-{number:02d}"
        run = root / f"sft-{number:02d}"
        run.mkdir(parents=True)
        logs.append(run / "trainer_log.jsonl")
        logs[-1].write_text("".join(_lf_line(step) for step in range(1, 501)))
        watch_folder(str(root))
    return logs


def _lf_line(step: int, total: int = 100_000) -> str:
    import json

    entry = {"current_steps": step, "total_steps": total, "loss": 2.0 / step**0.5}
    entry.update(lr=1e-4, epoch=step / total, percentage=round(step / total * 100, 2))
    return json.dumps({**entry, "elapsed_time": "0:10:00", "remaining_time": "9:00:00"}) + "\n"


def _keep_writing(logs: list[Path], stop) -> None:
    """One new line per run every second, as twenty trainings would write them."""
    step = 501
    while not stop.wait(1.0):
        for log in logs:
            with open(log, "a") as handle:
                handle.write(_lf_line(step))
        step += 1


def _newest_id() -> str:
    from tunedeck.core.jobs import JobRegistry

    registry = JobRegistry()
    try:
        return registry.recent(1)[0][0].id
    finally:
        registry.close()


def app_figures(size: int, idle: float, watched: int = 0) -> None:
    """Print `first_ms return_ms down_ms idle_cpu` for the app over `size` runs (and `watched`
    folders being written)."""
    import threading

    fill(size)
    logs = fill_watched(watched)
    stop = threading.Event()
    writer = threading.Thread(target=_keep_writing, args=(logs, stop), daemon=True)
    writer.start()
    try:
        print(*asyncio.run(_in_app(size, idle, watched)))
    finally:
        stop.set()


async def _in_app(size: int, idle: float, watched: int = 0) -> tuple[float, ...]:
    from pilot_tools import EXAMPLE_DATA, screen_text, settle

    from tunedeck.tui.app import TunedeckApp
    from tunedeck.tui.screens.runs import RECENT_RUNS

    total = size + watched
    shown = [f"{min(total, RECENT_RUNS):,} of {total:,} runs"]
    if total:  # the newest run's id: on the detail line of the run selected first
        shown.append(_newest_id())
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)

        async def key_to_screen() -> float:
            """`3` as the terminal sends it, until the screen holds the newest run and the
            count line (read from the compositor: what the next frame draws)."""
            started = time.perf_counter()
            app.simulate_key("3")
            while not (app.current_mode == "runs" and all(t in screen_text(app) for t in shown)):
                if time.perf_counter() - started > 60:
                    raise AssertionError(f"never shown: {shown}\n{screen_text(app)}")
                await asyncio.sleep(0.01)  # reading the compositor faster starves the app
            return (time.perf_counter() - started) * 1000

        first = await key_to_screen()
        returns = []
        for _ in range(3):
            app.simulate_key("1")
            await pilot.pause(0.3)
            returns.append(await key_to_screen())
        downs = []
        runs = app.screen
        runs.query_one("#jobs-table").focus()
        for _ in range(5 if total > 5 else 0):
            await pilot.pause(0.3)
            before = runs.selected
            started = time.perf_counter()
            app.simulate_key("down")
            while runs.selected == before or runs.selected not in screen_text(app):
                if time.perf_counter() - started > 10:
                    raise AssertionError(f"`down` did not move the selection from {before}")
                await asyncio.sleep(0.005)
            downs.append((time.perf_counter() - started) * 1000)
        down = sorted(downs)[len(downs) // 2] if downs else -1.0
        await pilot.pause(1.5)  # let the first refreshes pass
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.sleep(idle)
        usage = (time.process_time() - cpu) / (time.perf_counter() - wall)
    return first, min(returns), down, usage


if __name__ == "__main__":
    main()
