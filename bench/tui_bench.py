"""TUI figures, each against a baseline measured in the same run.

  .venv/bin/python bench/tui_bench.py [--quick]

1. start to first paint in a real pseudo-terminal: `tunedeck tui examples/workspace/data`
   vs a bare Textual app with one Static (both: spawn -> text on the terminal);
2. a line appended to a followed log -> on screen, vs a Static.update -> on screen;
3. a 1 GB log: time to show its end, and memory while following it vs a 1 KB log;
4. a 1,000,000-point loss chart redraw vs one plain Python pass over the points;
5. the event loop's longest stall while every screen works, vs a bare app idling.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import select
import signal
import statistics
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
sys.path.insert(0, str(REPO / "tests" / "tui"))

BASELINE_APP = """
from textual.app import App
from textual.widgets import Static
class Bare(App):
    def compose(self):
        yield Static("baseline-ready")
Bare().run()
"""


def main() -> None:
    quick = "--quick" in sys.argv
    OUT.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TUNEDECK_HOME", str(OUT / "home"))
    runs = 3 if quick else 7
    results = []
    results.append(bench_first_paint(runs))
    results.extend(asyncio.run(bench_in_app(quick)))
    results.append(bench_chart())
    print()
    print(f"{'figure':58} {'value':>12} {'baseline':>12} {'ratio':>7}  bar")
    for name, value, baseline, unit, bar in results:
        ratio = value / baseline if baseline else float("nan")
        print(f"{name:58} {value:>9.1f} {unit:2} {baseline:>9.1f} {unit:2} {ratio:>7.2f}  {bar}")


# 1. first paint ---------------------------------------------------------------------------


def bench_first_paint(runs: int):
    tunedeck = str(Path(sys.executable).parent / "tunedeck")
    app_times, list_times, bare_times = [], [], []
    for _ in range(runs):
        bare_times.append(
            _spawn_until([sys.executable, "-c", BASELINE_APP], [b"baseline-ready"])[0]
        )
        first, listed = _spawn_until(
            [tunedeck, "tui", "examples/workspace/data"], [b"Datasets", b"demo_pretrain"]
        )
        app_times.append(first)
        list_times.append(listed)
    app, listed, bare = (statistics.median(t) * 1000 for t in (app_times, list_times, bare_times))
    print(
        f"first paint: tunedeck {app:.0f} ms (dataset list {listed:.0f} ms), bare app {bare:.0f} ms"
    )
    return ("start -> first painted screen (pty, median)", app, bare, "ms", "< 1000 ms")


def _spawn_until(argv: list[str], needles: list[bytes], timeout: float = 20.0) -> list[float]:
    """Seconds from spawn until each needle has appeared in the terminal output."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    started = time.perf_counter()
    process = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, cwd=REPO, env=env, start_new_session=True
    )
    os.close(slave)
    seen: list[float] = []
    buffer = b""
    try:
        while len(seen) < len(needles) and time.perf_counter() - started < timeout:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    buffer += os.read(master, 65536)
                except OSError:
                    break
                while len(seen) < len(needles) and needles[len(seen)] in buffer:
                    seen.append(time.perf_counter() - started)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        os.close(master)
    if len(seen) < len(needles):
        raise RuntimeError(f"{argv[0]}: never saw {needles[len(seen)]!r}")
    return seen


# 2, 3, 5: inside a running app ---------------------------------------------------------------


async def bench_in_app(quick: bool):
    from pilot_tools import screen_text, wait_until
    from textual.app import App, ComposeResult
    from textual.widgets import Static

    from tunedeck.tui.widgets.log_view import LogView

    class LogApp(App):
        def __init__(self, path: Path):
            super().__init__()
            self.path = path

        def compose(self) -> ComposeResult:
            yield LogView(self.path)
            yield Static("", id="probe")

    results = []
    small = OUT / "small.log"
    small.write_text("".join(f"warm-up line {n}\n" for n in range(40)))
    samples, base_samples = [], []
    app = LogApp(small)
    async with app.run_test(size=(120, 40)) as pilot:
        view = app.query_one(LogView)
        probe = app.query_one("#probe", Static)
        await wait_until(pilot, lambda: bool(view.window), "log shown")
        for n in range(10 if quick else 30):
            marker = f"appended-{n}-{time.time_ns()}"
            started = time.perf_counter()
            with small.open("a") as handle:
                handle.write(marker + "\n")
            while marker not in screen_text(app):
                await asyncio.sleep(0.002)
            samples.append(time.perf_counter() - started)
            marker = f"static-{n}"
            started = time.perf_counter()
            probe.update(marker)
            while marker not in screen_text(app):
                await asyncio.sleep(0.002)
            base_samples.append(time.perf_counter() - started)
    median, worst = statistics.median(samples) * 1000, max(samples) * 1000
    base = statistics.median(base_samples) * 1000
    print(
        f"append -> screen: median {median:.0f} ms, max {worst:.0f} ms; Static.update {base:.1f} ms"
    )
    results.append(
        ("followed log: appended line -> on screen (median)", median, base, "ms", "< 250 ms")
    )
    results.append(
        ("followed log: appended line -> on screen (max)", worst, base, "ms", "< 250 ms")
    )

    # 3. a 1 GB log
    big = OUT / "big.log"
    size = (64 if quick else 1024) * 1024 * 1024
    _make_log(big, size)
    baseline_rss = await _follow_rss(LogApp, small, seconds=1.0)
    opened, rss_open, rss_after = await _follow_big(LogApp, big)
    label = f"{size // 2**20} MB"
    print(
        f"{label} log: end shown in {opened * 1000:.0f} ms; RSS {rss_open:.0f} MB at open, "
        f"{rss_after:.0f} MB after following appends; small log {baseline_rss:.0f} MB"
    )
    results.append((f"{label} log: open -> end on screen", opened * 1000, base, "ms", "at once"))
    results.append(
        (f"{label} log: RSS while following (vs 1 KB log)", rss_after, baseline_rss, "MB", "flat")
    )
    big.unlink()

    # 5. event loop stalls
    bare, following, validation, switch = await _loop_stalls(quick)
    print(
        f"event loop longest stall: following a ~5 MB/s log {following:.0f} ms, validating "
        f"the shared data {validation:.0f} ms, switching screens {switch:.0f} ms; "
        f"bare app idle {bare:.1f} ms"
    )
    results.append(
        ("loop stall: following a log growing ~5 MB/s", following, bare, "ms", "< 100 ms")
    )
    results.append(
        (
            "loop stall: Datasets validating shared data (workers)",
            validation,
            bare,
            "ms",
            "< 100 ms",
        )
    )
    results.append(
        ("loop stall: switching screens (first mounts: CPU, no I/O)", switch, bare, "ms", "info")
    )
    return results


def _make_log(path: Path, size: int) -> None:
    line = b"{'loss': 1.2345, 'grad_norm': 0.5, 'learning_rate': 1e-4, 'epoch': 0.01} step\n"
    block = line * (4 * 1024 * 1024 // len(line))
    with path.open("wb") as handle:
        written = 0
        while written < size:
            handle.write(block)
            written += len(block)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _follow_rss(app_class, path: Path, seconds: float) -> float:
    from pilot_tools import wait_until

    from tunedeck.tui.widgets.log_view import LogView

    app = app_class(path)
    async with app.run_test(size=(120, 40)) as pilot:
        view = app.query_one(LogView)
        await wait_until(pilot, lambda: bool(view.window), "log shown")
        await asyncio.sleep(seconds)
        return _rss_mb()


async def _follow_big(app_class, path: Path):
    from pilot_tools import screen_text, wait_until

    with path.open("a") as handle:
        handle.write("the very last line\n")
    app = app_class(path)
    started = time.perf_counter()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: "the very last line" in screen_text(app), "end shown")
        opened = time.perf_counter() - started
        rss_open = _rss_mb()
        with path.open("a") as handle:
            for n in range(20):
                handle.write("".join(f"more {n}-{k}\n" for k in range(5000)))
                handle.flush()
                await asyncio.sleep(0.1)
        await wait_until(pilot, lambda: "more 19-4999" in screen_text(app), "appends shown")
        return opened, rss_open, _rss_mb()


async def _loop_stalls(quick: bool) -> tuple[float, float, float, float]:
    """Longest event-loop stall (ms): a bare app idling; following a log that grows by
    ~5 MB/s; the Datasets screen validating the shared data folder; switching screens."""
    from pilot_tools import wait_until
    from textual.app import App, ComposeResult
    from textual.widgets import Static

    from tunedeck.tui.app import TunedeckApp
    from tunedeck.tui.widgets.log_view import LogView

    class Bare(App):
        def compose(self):
            yield Static("idle")

    class LogApp(App):
        def __init__(self, path: Path):
            super().__init__()
            self.path = path

        def compose(self) -> ComposeResult:
            yield LogView(self.path)

    async def measure(app, scenario) -> float:
        worst = [0.0]
        stop = asyncio.Event()

        async def watch() -> None:
            while not stop.is_set():
                started = time.perf_counter()
                await asyncio.sleep(0.005)
                worst[0] = max(worst[0], time.perf_counter() - started - 0.005)

        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause(0.5)  # start-up and first paint are not what is measured
            task = asyncio.create_task(watch())
            await scenario(pilot)
            stop.set()
            await task
        return worst[0] * 1000

    async def idle(pilot) -> None:
        await pilot.pause(3.0)

    bare = await measure(Bare(), idle)

    growing = OUT / "growing.log"
    growing.write_text("start\n")

    async def appending(pilot) -> None:
        line = "{'loss': 1.2345, 'grad_norm': 0.5, 'learning_rate': 1e-4, 'epoch': 0.01}\n"
        with growing.open("a") as handle:
            for _ in range(30 if quick else 60):
                handle.write(line * 6000)  # ~0.5 MB per 0.1 s
                handle.flush()
                await asyncio.sleep(0.1)

    following = await measure(LogApp(growing), appending)
    growing.unlink()

    shared = REPO.parent / "shared" / "llamafactory-data"
    data = shared if shared.is_dir() else REPO / "examples" / "workspace" / "data"

    async def validating(pilot) -> None:
        app = pilot.app
        await wait_until(pilot, lambda: getattr(app.screen, "info", None) is not None, "info")
        for _ in range(2 if quick else 4):
            await wait_until(
                pilot,
                lambda: len(app.screen.reports) == len(app.screen.info.specs),
                "validation done",
                timeout=120,
            )
            await pilot.press("v")
            await pilot.pause(0.2)

    validation = await measure(TunedeckApp(data), validating)

    async def switching(pilot) -> None:
        for key in "234512345":
            await pilot.press(key)
            await pilot.pause(1.0)

    switch = await measure(TunedeckApp(data), switching)
    return bare, following, validation, switch


# 4. chart --------------------------------------------------------------------------------------


def bench_chart():
    import math
    import random

    from tunedeck.tui.widgets.loss_chart import draw_chart
    from tunedeck.tui.widgets.series import MinMaxSeries

    rng = random.Random(0)
    points = [(s, 3 * math.exp(-s / 2e5) + rng.random() * 0.1) for s in range(1_000_000)]
    started = time.perf_counter()
    loss = MinMaxSeries(points)
    built = time.perf_counter() - started
    evals = MinMaxSeries((s, 3 * math.exp(-s / 2e5) + 0.4) for s in range(0, 1_000_000, 10_000))
    redraws = []
    for _ in range(20):
        started = time.perf_counter()
        draw_chart(loss, evals, 120, 30)
        redraws.append(time.perf_counter() - started)
    started = time.perf_counter()
    low = high = points[0][1]
    for _, value in points:  # the cheapest thing a redraw could do without a pyramid
        if value < low:
            low = value
        elif value > high:
            high = value
    one_pass = time.perf_counter() - started
    started = time.perf_counter()
    for n in range(10_000):
        loss.append(1_000_000 + n, 0.5)
    append = (time.perf_counter() - started) / 10_000
    redraw = statistics.median(redraws) * 1000
    print(
        f"chart: redraw {redraw:.2f} ms (max {max(redraws) * 1000:.2f}); one Python pass over "
        f"1M points {one_pass * 1000:.0f} ms; series build {built:.2f} s; append {append * 1e6:.1f} us"
    )
    return (
        "1,000,000-point loss chart redraw 120x30 (median)",
        redraw,
        one_pass * 1000,
        "ms",
        "< 50 ms",
    )


if __name__ == "__main__":
    main()
