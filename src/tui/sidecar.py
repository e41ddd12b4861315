"""A sidecar process for the app's heavy work: tokenizing (so the app never imports
transformers) and walking whole datasets (so the app's event loop never competes with a
long CPU-bound walk for the GIL).

Run as `python -m tunedeck.tui.sidecar`; it reads one JSON request per line on stdin
and answers JSON lines on stdout. Tokenizers stay loaded between requests.

  {"op": "render", "data_dir", "dataset", "index", "template", "tokenizer", "cutoff_len",
   "train_on_prompt", "mask_history"}  ->  {"ok": true, "rendered": Rendered.to_json()}
  {"op": "lengths", "data_dir", "dataset", "template", "tokenizer", "limit"}
                                       ->  {"ok": true, "lengths": [tokens per row]}
  {"op": "stats", "data_dir", "dataset"}  ->  {"ok": true, "stats": DatasetStats.to_dict()}
  {"op": "validate", "data_dir"}       ->  streamed: {"progress": [name, done, total]} and
                                           {"report": DatasetReport.to_dict()} lines, then
                                           {"ok": true, "end": true}
  any failure                          ->  {"ok": false, "error": "...", "hint": "..."}
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

SIDECAR_ARGV = [sys.executable, "-m", "tunedeck.tui.sidecar"]
PROGRESS_SECONDS = 0.2


class SidecarClient:
    """The app's side: starts a sidecar on first use and sends it requests (blocking; call
    from a thread worker). Each client has its own sidecar process."""

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def request(self, **request: Any) -> dict:
        with self._lock:
            for _ in range(2):  # restart once if the sidecar died
                process = self._ensure()
                try:
                    process.stdin.write(json.dumps(request) + "\n")
                    process.stdin.flush()
                    line = process.stdout.readline()
                except (BrokenPipeError, OSError):
                    line = ""
                if line:
                    return json.loads(line)
                self._process = None
            return {"ok": False, "error": "the tokenizer sidecar process stopped"}

    def stream(self, **request: Any) -> Iterator[dict]:
        """Send a request whose answer is many lines; yields each until the last."""
        with self._lock:
            process = self._ensure()
            try:
                process.stdin.write(json.dumps(request) + "\n")
                process.stdin.flush()
            except (BrokenPipeError, OSError):
                self._process = None
                yield {"ok": False, "error": "the sidecar process stopped"}
                return
            while True:
                line = process.stdout.readline()
                if not line:
                    self._process = None
                    yield {"ok": False, "error": "the sidecar process stopped"}
                    return
                message = json.loads(line)
                yield message
                if "ok" in message:
                    return

    def close(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.stdin.close()
            try:
                process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                process.kill()

    def _ensure(self) -> subprocess.Popen:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                SIDECAR_ARGV,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                bufsize=1,
            )
        return self._process


def main() -> None:
    tokenizers: dict[tuple[str, str], Any] = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            if request.get("op") == "validate":
                _validate(request)
                answer = {"ok": True, "end": True}
            else:
                answer = _answer(request, tokenizers)
        except Exception as error:  # every failure goes back as a message, never a crash
            answer = {"ok": False, "error": str(error), "hint": getattr(error, "hint", None)}
        _send(answer)


def _send(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _validate(request: dict) -> None:
    import time

    from tunedeck.core.datasets import load_dataset_info, validate_dataset

    info = load_dataset_info(request["data_dir"])
    last = [0.0]

    def progress(name: str, *where_done_total: Any) -> None:
        now = time.monotonic()
        if now - last[0] > PROGRESS_SECONDS:
            last[0] = now
            _send({"progress": [name, where_done_total[-2], where_done_total[-1]]})

    for spec in info.specs.values():
        try:
            report = validate_dataset(spec, info.data_dir, progress=progress)
        except Exception as error:  # one broken entry must not stop the others
            _send({"failed": [spec.name, str(error)]})
            continue
        _send({"report": report.to_dict()})


def _answer(request: dict, tokenizers: dict) -> dict:
    from tunedeck.core.datasets import (
        dataset_stats,
        get_row,
        iter_conversations,
        load_dataset_info,
    )
    from tunedeck.core.templates import load_tokenizer, render

    info = load_dataset_info(request["data_dir"])
    spec = info.get(request["dataset"])
    if request["op"] == "stats":
        return {"ok": True, "stats": dataset_stats(spec, info.data_dir).to_dict()}
    template = request.get("template") or None
    tokenizer = None
    if request.get("tokenizer"):
        key = (request["tokenizer"], template or "")
        if key not in tokenizers:
            tokenizers[key] = load_tokenizer(request["tokenizer"], template)
        tokenizer = tokenizers[key]
    options = {
        "cutoff_len": int(request.get("cutoff_len") or 2048),
        "train_on_prompt": bool(request.get("train_on_prompt")),
        "mask_history": bool(request.get("mask_history")),
    }
    if request["op"] == "render":
        view = get_row(spec, info.data_dir, int(request.get("index", 0)))
        if view.conversation is None:
            return {"ok": False, "error": "; ".join(i.message for i in view.issues) or "bad row"}
        rendered = render(view.conversation, template, tokenizer=tokenizer, **options)
        return {"ok": True, "rendered": rendered.to_json()}
    if request["op"] == "lengths":
        limit = int(request.get("limit") or 2000)
        lengths = []
        options["cutoff_len"] = 1 << 30  # lengths before truncation
        for number, conversation in enumerate(iter_conversations(spec, info.data_dir)):
            if number >= limit:
                break
            rendered = render(conversation, template, tokenizer=tokenizer, **options)
            lengths.append(
                len(rendered.input_ids) if rendered.input_ids is not None else len(rendered.text)
            )
        return {"ok": True, "lengths": lengths}
    return {"ok": False, "error": f"unknown op {request['op']!r}"}


if __name__ == "__main__":
    main()
