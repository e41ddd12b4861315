"""Drive every screen of the app (preview with a tokenizer included), then print the heavy
modules found in sys.modules as JSON. Run in a fresh process by test_no_heavy_imports."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from pilot_tools import EXAMPLE_DATA, TOKENIZER, wait_until
from textual.widgets import Input, Static

from tunedeck.tui.app import TunedeckApp

HEAVY = ("torch", "transformers", "peft", "trl", "bitsandbytes", "gptqmodel", "auto_gptq")


async def drive() -> None:
    app = TunedeckApp(EXAMPLE_DATA)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: getattr(app.screen, "info", None) is not None, "info")
        await pilot.press("2")
        await wait_until(pilot, lambda: app.current_mode == "preview", "preview")
        status = app.screen.query_one("#preview-status", Static)
        await wait_until(pilot, lambda: "sample 1/" in str(status.render()), "sample")
        tokenizer = app.screen.query_one("#preview-tokenizer", Input)
        tokenizer.value = str(TOKENIZER)
        tokenizer.focus()
        await pilot.press("enter")
        await wait_until(
            pilot, lambda: "tokens / cutoff" in str(status.render()), "tokens", timeout=120
        )
        await pilot.press("escape")  # leave the text field: screen keys work again
        for key, mode in (("3", "runs"), ("4", "launch"), ("5", "hosts"), ("1", "datasets")):
            await pilot.press(key)
            await wait_until(pilot, lambda mode=mode: app.current_mode == mode, mode)
            await pilot.pause(0.5)
        await app.workers.wait_for_complete()


if __name__ == "__main__":
    asyncio.run(drive())
    found = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
    print(json.dumps({"heavy": found, "cwd": str(Path.cwd())}))
