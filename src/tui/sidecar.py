"""A sidecar process for the app's heavy work: tokenizing (so the app never imports
transformers) and walking whole datasets (so the app's event loop never competes with a
long CPU-bound walk for the GIL).

Run as `python -m tunedeck.tui.sidecar`; it reads one JSON request per line on stdin
and answers JSON lines on stdout. Tokenizers stay loaded between requests. The app's side,
`SidecarClient`, decodes every answer into core types (or raises `SidecarError`).

  {"op": "render", "data_dir", "dataset", "index", "template", "tokenizer", "cutoff_len",
   "train_on_prompt", "mask_history"}  ->  {"ok": true, "rendered": Rendered.to_json(),
                                            "kept": [segment], "rejected_kept": [segment]}
  {"op": "lengths", "data_dir", "dataset", "template", "tokenizer", "limit"}
                                       ->  {"ok": true, "lengths": [tokens per row]}
                                           (characters per row without a tokenizer)
  {"op": "stats", "data_dir", "dataset"}  ->  {"ok": true, "stats": DatasetStats.to_dict()}
  {"op": "template_probe", "tokenizer", "template"}  ->  {"ok": true, "probe": TemplateProbe}
  {"op": "launch_data", "config": RunConfig.to_dict()}  ->  streamed: {"progress": [stage,
                                           name, done, total]}, then {"ok": true,
                                           "check": LaunchDataCheck.to_dict()}
  {"op": "batches", "config": path, "count"}  ->  streamed: {"progress": [rows done, rows total]}
                                           while the data is prepared, then {"ok": true,
                                           "preview": BatchPreview.to_dict()}
  {"op": "validate", "data_dir"}       ->  streamed: {"progress": [name, done, total]},
                                           {"report": DatasetReport.to_dict()} and
                                           {"failed": [name, error]} lines, then
                                           {"ok": true, "end": true}
  any failure                          ->  {"ok": false, "error": "...", "hint": "..."}
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from tunedeck.core.errors import TunedeckError

if TYPE_CHECKING:
    from tunedeck.core.config.launch_check import LaunchDataCheck
    from tunedeck.core.datasets import DatasetReport, DatasetStats
    from tunedeck.core.runners.batch_sources import BatchPreview
    from tunedeck.core.templates import Rendered, Segment
    from tunedeck.core.templates.probe import TemplateProbe

SIDECAR_ARGV = [sys.executable, "-m", "tunedeck.tui.sidecar"]
PROGRESS_SECONDS = 0.2
DEFAULT_CUTOFF_LEN = 2048
LENGTHS_LIMIT = 2000


class SidecarError(TunedeckError):
    """The sidecar answered with a failure, or stopped."""


@dataclass(frozen=True)
class SampleRequest:
    """What to render or measure: one dataset entry through one template (and tokenizer)."""

    data_dir: str
    dataset: str
    template: str | None = None
    tokenizer: str | None = None
    cutoff_len: int = DEFAULT_CUTOFF_LEN
    train_on_prompt: bool = False
    mask_history: bool = False


@dataclass(frozen=True)
class Sample:
    """One rendered row; with a tokenizer, `kept` is the text its kept ids decode to, in
    runs of trained and masked tokens (what cutoff_len leaves), and `rejected_kept` the
    same for a ranking row's rejected answer."""

    index: int
    rendered: Rendered
    kept: tuple[Segment, ...] | None = None
    rejected_kept: tuple[Segment, ...] | None = None


@dataclass(frozen=True)
class ValidationProgress:
    """Validation is `done` bytes of `total` into the entry `dataset`."""

    dataset: str
    done: int
    total: int


@dataclass(frozen=True)
class EntryFailed:
    """Validating one entry crashed; the others went on."""

    dataset: str
    error: str


class SidecarClient:
    """The app's side: starts a sidecar on first use and sends it requests (blocking; call
    from a thread worker). Each client has its own sidecar process."""

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def validate(self, data_dir: str) -> Iterator[ValidationProgress | EntryFailed | DatasetReport]:
        """Every entry's DatasetReport as it is ready, with progress and crashed entries."""
        from tunedeck.core.datasets import DatasetReport

        for message in self._stream(op="validate", data_dir=data_dir):
            if "progress" in message:
                yield ValidationProgress(*message["progress"])
            elif "report" in message:
                yield DatasetReport.from_dict(message["report"])
            elif "failed" in message:
                yield EntryFailed(*message["failed"])

    def stats(self, data_dir: str, dataset: str) -> DatasetStats:
        """The entry's DatasetStats."""
        from tunedeck.core.datasets import DatasetStats

        answer = self._request(op="stats", data_dir=data_dir, dataset=dataset)
        return DatasetStats.from_dict(answer["stats"])

    def sample(self, request: SampleRequest, index: int) -> Sample:
        """Row `index` rendered with token ids and labels."""
        answer = self._request(op="render", index=index, **asdict(request))
        return Sample(
            index,
            rendered_from_json(answer["rendered"]),
            _segments(answer.get("kept")),
            _segments(answer.get("rejected_kept")),
        )

    def lengths(self, request: SampleRequest, limit: int = LENGTHS_LIMIT) -> list[int]:
        """Token lengths (before cutoff_len) of the first `limit` usable rows."""
        return self._request(op="lengths", limit=limit, **asdict(request))["lengths"]

    def template_probe(self, tokenizer: str, template: str | None) -> TemplateProbe:
        """The template check (core templates.probe) of `template` on a tokenizer folder."""
        from tunedeck.core.templates.probe import TemplateProbe

        answer = self._request(op="template_probe", tokenizer=tokenizer, template=template)
        return TemplateProbe.from_dict(answer["probe"])

    def launch_data(self, config: dict) -> Iterator[tuple | LaunchDataCheck]:
        """The datasets' check on launch (core config.launch_check) of a RunConfig.to_dict():
        (stage, dataset, done, total) progress tuples, then the LaunchDataCheck."""
        from tunedeck.core.config.launch_check import LaunchDataCheck

        for message in self._stream(op="launch_data", config=config, keep_last=True):
            if "progress" in message:
                yield tuple(message["progress"])
            elif "check" in message:
                yield LaunchDataCheck.from_dict(message["check"])

    def batches(self, config: str, count: int) -> Iterator[tuple[int, int] | BatchPreview]:
        """A run config's first `count` training batches, each row's source (core batch_sources):
        (rows done, rows total) while its data is prepared, then the BatchPreview."""
        from tunedeck.core.runners.batch_sources import BatchPreview

        for message in self._stream(op="batches", config=config, count=count, keep_last=True):
            if "progress" in message:
                yield tuple(message["progress"])
            elif "preview" in message:
                yield BatchPreview.from_dict(message["preview"])

    def close(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.stdin.close()
            try:
                process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                process.kill()

    def _request(self, **request: Any) -> dict:
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
                    return _checked(json.loads(line))
                self._process = None
            raise SidecarError("the sidecar process stopped")

    def _stream(self, keep_last: bool = False, **request: Any) -> Iterator[dict]:
        """Send a request whose answer is many lines; yields each until the last (that one
        too with `keep_last`)."""
        with self._lock:
            process = self._ensure()
            try:
                process.stdin.write(json.dumps(request) + "\n")
                process.stdin.flush()
            except (BrokenPipeError, OSError):
                self._process = None
                raise SidecarError("the sidecar process stopped") from None
            while True:
                line = process.stdout.readline()
                if not line:
                    self._process = None
                    raise SidecarError("the sidecar process stopped")
                message = json.loads(line)
                if "ok" in message:
                    _checked(message)
                    if keep_last:
                        yield message
                    return
                yield message

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


def rendered_from_json(doc: dict) -> Rendered:
    """Rendered.to_json() read back into a Rendered."""
    from tunedeck.core.templates import Rendered, Truncation

    cut = doc.get("truncated")
    rejected = doc.get("rejected")
    return Rendered(
        segments=_segments(doc.get("segments")) or (),
        input_ids=doc.get("input_ids"),
        labels=doc.get("labels"),
        truncated=None
        if cut is None
        else Truncation(
            cut["original_tokens"], cut["kept_tokens"], cut["cutoff_len"], tuple(cut["parts"])
        ),
        kind=doc.get("kind", "sft"),
        rejected=None if rejected is None else rendered_from_json(rejected),
    )


def _segments(docs: list[dict] | None) -> tuple[Segment, ...] | None:
    from tunedeck.core.templates import Segment

    if docs is None:
        return None
    return tuple(Segment(d["role"], d["text"], bool(d["trainable"]), d["source"]) for d in docs)


def _checked(answer: dict) -> dict:
    if not answer.get("ok"):
        raise SidecarError(answer.get("error") or "the sidecar failed", hint=answer.get("hint"))
    return answer


# ---------------------------------------------------------------------------- the process


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
            elif request.get("op") == "template_probe":
                answer = _template_probe(request)
            elif request.get("op") == "launch_data":
                answer = _launch_data(request)
            elif request.get("op") == "batches":
                answer = _batches(request)
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

    from tunedeck.core.datasets import load_dataset_info, validate_entry

    info = load_dataset_info(request["data_dir"])
    last = [0.0]

    def progress(name: str, _file: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] > PROGRESS_SECONDS:
            last[0] = now
            _send({"progress": [name, done, total]})

    for name in info.specs:
        try:
            report = validate_entry(info, name, progress=progress)
        except Exception as error:  # one broken entry must not stop the others
            _send({"failed": [name, str(error)]})
            continue
        _send({"report": report.to_dict()})


def _template_probe(request: dict) -> dict:
    from tunedeck.core.templates.probe import probe_template_dir

    probe = probe_template_dir(request["tokenizer"], request.get("template"))
    return {"ok": True, "probe": probe.to_dict()}


def _launch_data(request: dict) -> dict:
    import time

    from tunedeck.core.config import RunConfig
    from tunedeck.core.config.launch_check import check_launch_data

    last = [0.0]

    def progress(stage: str, name: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] > PROGRESS_SECONDS:
            last[0] = now
            _send({"progress": [stage, name, done, total]})

    check = check_launch_data(RunConfig.from_dict(request["config"]), progress=progress)
    return {"ok": True, "check": check.to_dict()}


def _batches(request: dict) -> dict:
    from tunedeck.core.config import load_config
    from tunedeck.core.runners.batch_sources import batch_preview

    def status(_stage: str, _message: str, rows_done: int = 0, rows_total: int = 0, **_) -> None:
        if rows_total:  # prepare_dataset's meter speaks every few seconds
            _send({"progress": [rows_done, rows_total]})

    preview = batch_preview(load_config(request["config"]), int(request["count"]), status)
    return {"ok": True, "preview": preview.to_dict()}


def _answer(request: dict, tokenizers: dict) -> dict:
    from tunedeck.core.datasets import dataset_stats, load_dataset_info

    info = load_dataset_info(request["data_dir"])
    spec = info.get_local(request["dataset"])
    if request["op"] == "stats":
        return {"ok": True, "stats": dataset_stats(spec, info.data_dir).to_dict()}
    template = request.get("template") or None
    tokenizer = _tokenizer(request, template, tokenizers)
    if request["op"] == "render":
        return _render(request, info, spec, template, tokenizer)
    if request["op"] == "lengths":
        return _lengths(request, info, spec, template, tokenizer)
    return {"ok": False, "error": f"unknown op {request['op']!r}"}


def _tokenizer(request: dict, template: str | None, tokenizers: dict) -> Any:
    from tunedeck.core.templates import load_tokenizer

    if not request.get("tokenizer"):
        return None
    key = (request["tokenizer"], template or "")
    if key not in tokenizers:
        tokenizers[key] = load_tokenizer(request["tokenizer"], template)
    return tokenizers[key]


def _render(request: dict, info: Any, spec: Any, template: str | None, tokenizer: Any) -> dict:
    from tunedeck.core.datasets import get_row
    from tunedeck.core.templates import render

    view = get_row(spec, info.data_dir, int(request.get("index", 0)))
    if view.conversation is None:
        return {"ok": False, "error": "; ".join(i.message for i in view.issues) or "bad row"}
    rendered = render(
        view.conversation,
        template,
        tokenizer=tokenizer,
        cutoff_len=int(request.get("cutoff_len") or DEFAULT_CUTOFF_LEN),
        train_on_prompt=bool(request.get("train_on_prompt")),
        mask_history=bool(request.get("mask_history")),
    )
    answer = {"ok": True, "rendered": rendered.to_json()}
    if tokenizer is not None:
        answer["kept"] = _kept_runs(rendered, tokenizer)
        if rendered.rejected is not None:
            answer["rejected_kept"] = _kept_runs(rendered.rejected, tokenizer)
    return answer


def _kept_runs(rendered: Any, tokenizer: Any) -> list[dict]:
    """The kept ids decoded in runs of equal loss flag: exactly the text training sees."""
    from tunedeck.core.templates import IGNORE_INDEX

    runs: list[dict] = []
    ids, labels = rendered.input_ids or [], rendered.labels or []
    start = 0
    for end in range(1, len(ids) + 1):
        trained = labels[start] != IGNORE_INDEX
        if end == len(ids) or (labels[end] != IGNORE_INDEX) != trained:
            text = tokenizer.decode(ids[start:end], skip_special_tokens=False)
            runs.append({"role": "", "text": text, "trainable": trained, "source": "data"})
            start = end
    return runs


def _lengths(request: dict, info: Any, spec: Any, template: str | None, tokenizer: Any) -> dict:
    from itertools import islice

    from tunedeck.core.datasets import iter_conversations

    conversations = islice(
        iter_conversations(spec, info.data_dir), int(request.get("limit") or LENGTHS_LIMIT)
    )
    mask_history = bool(request.get("mask_history"))
    lengths = _length_path(conversations, template, tokenizer, mask_history)
    return {"ok": True, "lengths": list(lengths)}


def _length_path(
    conversations: Any, template: str | None, tokenizer: Any, mask_history: bool
) -> Iterator[int]:
    """Lengths through the core's one length path: tokens, or without a tokenizer the
    characters of each rendered row."""
    from tunedeck.core.templates import text_lengths, token_lengths

    if tokenizer is None:
        return text_lengths(conversations, template, mask_history=mask_history)
    return token_lengths(conversations, template, tokenizer, mask_history=mask_history)


if __name__ == "__main__":
    main()
