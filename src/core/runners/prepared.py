"""A run's encoded data on disk: streamed to memory-mapped Arrow files, cached by what made them.

`prepare_dataset` gives the trainer the same examples in the same order as encode.encode_dataset
(rows read, mixed, split, encoded in chunks of PREPROCESSING_BATCH), without holding them in
memory: the rows are spooled to one file (pickled values, found by offset), and
`preprocessing_num_workers` processes each read a chunk of them in the mixed/split order, encode
it and send back one Arrow record batch, appended in order to train.arrow / eval.arrow. The
folder is keyed by the data files (size, mtime, content hash), their dataset_info entries, the
template, the tokenizer, cutoff, stage, masking and packing flags and this code; a second run with
the same inputs reads it. meta.json is written last and lists the files' sizes and row counts,
and for an unpacked run the rows dropped (so each example's source row is known without encoding
again): a folder without it, or that disagrees with it, is rebuilt. Under torchrun the first rank
of each node builds it and the node's other ranks wait for it.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import pickle
import shutil
import time
from array import array
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunedeck.core.config import RunConfig
from tunedeck.core.datasets import load_dataset_info
from tunedeck.core.datasets.conversation import RowLocation
from tunedeck.core.datasets.convert import converter_for
from tunedeck.core.datasets.readers import data_files, read_file_rows
from tunedeck.core.errors import TunedeckError
from tunedeck.core.jobs.prepared_cache import META_FILE, cache_root, mark_used
from tunedeck.core.runners import encode

FORMAT = 2
SPOOL_FILE = "rows.spool"
PARTS = ("train", "eval")
_OWN_FILES = {META_FILE, SPOOL_FILE, "train.arrow", "eval.arrow"}
# the config keys the encoded examples depend on (besides data files, tokenizer and code)
KEY_FIELDS = (
    "stage",
    "template",
    "cutoff_len",
    "max_samples",
    "val_size",
    "seed",
    "train_on_prompt",
    "mask_history",
    "packing",
    "neat_packing",
    "mix_strategy",
    "interleave_probs",
    "enable_thinking",
    "datasets",
    "eval_datasets",
)
_SOURCES = ("encode.py", "prepared.py")
_SOURCE_PACKAGES = ("templates", "datasets")
Status = Callable[..., None]
WAIT_POLL_S = 1.0  # how often a waiting rank looks for the build
PROCESS_START_MARGIN_S = 10.0


@dataclass
class PreparedData:
    """The trainer's datasets (memory-mapped `datasets.Dataset`s) and where they came from."""

    train: Any
    eval: Any | None
    tokens: int  # training tokens in one pass over `train`
    folder: Path
    from_cache: bool
    meta: dict[str, Any]

    def example_rows(self, config: RunConfig) -> list[tuple[str, int]] | None:
        """(dataset, row) of each training example of an unpacked run, in example order: the
        run's training order (spool indices) less the positions its build dropped. None for a
        packed run, or a folder that does not say."""
        dropped, lengths = self.meta.get("dropped"), self.meta.get("lengths")
        if dropped is None or lengths is None or dropped.get("train") is None:
            return None
        order, _ = row_orders(config, lengths["train"], lengths["eval"])
        names = list(config.datasets)
        starts = _offsets(lengths["train"])
        skip = set(dropped["train"])
        rows = []
        for position, index in enumerate(order):
            if position not in skip:
                block = bisect_right(starts, index) - 1
                rows.append((names[block], index - starts[block]))
        return rows


def prepare_dataset(config: RunConfig, tokenizer, status: Status | None = None) -> PreparedData:
    """The run's encoded data: read from tokenized_path or the cache when it matches, else built."""
    say = status or _silent
    key = cache_key(config, tokenizer)
    folder = Path(config.tokenized_path) if config.tokenized_path else cache_root() / key
    expected = None if config.tokenized_path else key  # a tokenized_path folder is taken as it is
    if _local_rank() > 0:
        meta = _wait_for_build(folder, expected, config, say)
        return _loaded(folder, meta, from_cache=True)
    if not config.overwrite_cache:
        meta = read_meta(folder, expected)
        if meta is not None:
            say(
                "tokenizing", f"prepared data read from {folder} ({meta['rows']['train']} examples)"
            )
            mark_used(folder)
            return _loaded(folder, meta, from_cache=True)
    meta = build(config, tokenizer, folder, key, say)
    return _loaded(folder, meta, from_cache=False)


def _local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK") or 0)


def _wait_for_build(folder: Path, key: str | None, config: RunConfig, say: Status) -> dict:
    """The folder's meta once this node's first rank has built it (torchrun ends every rank
    if that one fails); with overwrite_cache, only a build newer than this process counts."""
    newer_than = _process_start() if config.overwrite_cache else 0.0
    say("tokenizing", f"waiting for local rank 0 to prepare the data in {folder}")
    while True:
        meta = read_meta(folder, key)
        if meta is not None and meta.get("built_at", 0.0) >= newer_than:
            return meta
        time.sleep(WAIT_POLL_S)


def _process_start() -> float:
    """When this process started (its ranks start together under torchrun), with a margin."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return 0.0  # no /proc: any complete build counts
    started_ago = uptime - ticks / os.sysconf("SC_CLK_TCK")
    return time.time() - started_ago - PROCESS_START_MARGIN_S


def cache_key(config: RunConfig, tokenizer) -> str:
    """A digest of everything the encoded examples depend on."""
    info = load_dataset_info(config.dataset_dir)
    names = list(config.datasets) + list(config.eval_datasets or ())
    document = {
        "format": FORMAT,
        "config": {name: _plain(getattr(config, name, None)) for name in KEY_FIELDS},
        "datasets": [_dataset_fingerprint(info, name) for name in names],
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "code": _code_fingerprint(),
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:32]


def tokenizer_fingerprint(tokenizer) -> str:
    """The tokenizer's vocabulary, merges, special and added tokens, as one digest."""
    digest = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(
        tokenizer, "_tokenizer", None
    )
    if backend is not None and hasattr(backend, "to_str"):
        digest.update(backend.to_str().encode())
    else:
        digest.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    for name in ("bos_token_id", "eos_token_id", "pad_token_id", "add_bos_token", "add_eos_token"):
        digest.update(repr(getattr(tokenizer, name, None)).encode())
    digest.update(repr(getattr(tokenizer, "chat_template", None)).encode())
    return digest.hexdigest()


def read_meta(folder: Path, key: str | None) -> dict[str, Any] | None:
    """The folder's meta.json when it is complete and its files agree with it; None otherwise."""
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT or (key is not None and meta.get("key") != key):
            return None
        for part, size in meta["sizes"].items():
            if (folder / f"{part}.arrow").stat().st_size != size:
                return None
        return meta
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


# --- building ----------------------------------------------------------------------------------


def build(config: RunConfig, tokenizer, folder: Path, key: str, say: Status) -> dict[str, Any]:
    """Spool the rows, encode them in order into train.arrow / eval.arrow, then write meta.json."""
    target = folder
    folder = target.with_name(f".{target.name}.{os.getpid()}.partial")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    spool = _spool_rows(config, folder / SPOOL_FILE)
    train_order, eval_order = row_orders(config, spool.train_lengths, spool.eval_lengths)
    rows, sizes, dropped, tokens = {}, {}, {}, 0
    with _Encoder(config, tokenizer, spool) as encoder:
        for part, order in zip(PARTS, (train_order, eval_order), strict=True):
            if part == "eval" and not order:
                continue
            written = _write_part(folder / f"{part}.arrow", order, encoder, say)
            rows[part], part_tokens, dropped[part] = written
            sizes[part] = (folder / f"{part}.arrow").stat().st_size
            tokens = part_tokens if part == "train" else tokens
    spool.path.unlink()
    lengths = {"train": spool.train_lengths, "eval": spool.eval_lengths}
    meta = {"format": FORMAT, "key": key, "rows": rows, "sizes": sizes, "tokens": tokens,
            "lengths": lengths, "dropped": dropped, "built_at": time.time(),
            "about": _about(config)}  # fmt: skip
    (folder / META_FILE).write_text(json.dumps(meta), encoding="utf-8")
    _replace_folder(folder, target)
    say("tokenizing", f"prepared {rows['train']} examples into {target}")
    return meta


def _about(config: RunConfig) -> dict[str, Any]:
    """What made the folder, in words a listing shows."""
    return {
        "datasets": list(config.datasets),
        "eval_datasets": list(config.eval_datasets or ()),
        "template": config.template,
        "model": str(config.model_name_or_path),
        "stage": config.stage,
        "cutoff_len": config.cutoff_len,
    }


def _replace_folder(built: Path, target: Path) -> None:
    """Put the finished folder in place of the old one, which must hold prepared data only."""
    if target.exists():
        strangers = [p.name for p in target.iterdir() if not _own_file(p.name)]
        if strangers:
            shutil.rmtree(built)
            raise TunedeckError(
                f"{target} holds other files ({', '.join(sorted(strangers)[:3])}), "
                "not prepared data",
                hint="point tokenized_path at a new or empty folder",
            )
        shutil.rmtree(target, ignore_errors=True)
    try:
        os.replace(built, target)
    except OSError:  # another process (a rank of the same run) put the same data in place first
        shutil.rmtree(built)
        if read_meta(target, None) is None:
            raise


def _own_file(name: str) -> bool:
    """Files of a prepared folder: ours, and the `datasets` cache files a trainer's map leaves."""
    return name in _OWN_FILES or (name.startswith("cache-") and name.endswith(".arrow"))


def row_orders(
    config: RunConfig, train_lengths: list[int], eval_lengths: list[int]
) -> tuple[list[int], list[int]]:
    """Indices into the spool of the training and held-out rows, in encode_dataset's order."""
    offsets = _offsets(train_lengths + eval_lengths)
    parts = [list(range(offsets[i], offsets[i] + n)) for i, n in enumerate(train_lengths)]
    train, held = encode.split_rows(encode.mixed_rows(config, parts), config.val_size, config.seed)
    if eval_lengths:
        start = len(train_lengths)
        held = encode.mixed_rows(
            config,
            [
                list(range(offsets[start + i], offsets[start + i] + n))
                for i, n in enumerate(eval_lengths)
            ],
        )
    return train, held


@dataclass
class Spool:
    """Every row of the run's datasets in one flat file, each a pickled (source, row, value),
    found by its byte offset: a worker reads just the rows of its chunk, in any order, with
    pread (no memory map, so nothing of the file stays resident)."""

    path: Path
    sources: list[tuple[str, str]]  # (dataset name, data file) a row's source index points at
    offsets: array  # row i is bytes offsets[i]:offsets[i + 1]
    train_lengths: list[int]
    eval_lengths: list[int]

    def read(self, fd: int, indices: list[int]) -> Iterator[tuple[str, str, int, Any]]:
        """(dataset, path, row, value or None for an unreadable row) of each index, in order."""
        for i in indices:
            start = self.offsets[i]
            record = os.pread(fd, self.offsets[i + 1] - start, start)
            source, row, value = pickle.loads(record)
            yield (*self.sources[source], row, value)


def _spool_rows(config: RunConfig, path: Path) -> Spool:
    """Every dataset's rows (max_samples each) appended to the spool file."""
    info = load_dataset_info(config.dataset_dir)
    sources: list[tuple[str, str]] = []
    offsets, lengths = array("q", [0]), []
    with path.open("wb", buffering=1 << 20) as out:
        for name in list(config.datasets) + list(config.eval_datasets or ()):
            count = 0
            for file, row, value in _raw_rows(info, name, config.max_samples):
                if not sources or sources[-1] != (name, file):
                    sources.append((name, file))
                out.write(pickle.dumps((len(sources) - 1, row, value), 5))
                offsets.append(out.tell())
                count += 1
            lengths.append(count)
    split = len(config.datasets)
    return Spool(path, sources, offsets, lengths[:split], lengths[split:])


def _raw_rows(info, name: str, limit: int | None) -> Iterator[tuple[str, int, Any]]:
    """(path, row, value or None for an unreadable row) in file order."""
    spec = info.get(name)
    files, kind = data_files(spec, info.data_dir)
    count = 0
    for path in files:
        for row, _line, value, error in read_file_rows(path, kind):
            if limit is not None and count >= limit:
                return
            count += 1
            yield str(path), row, None if error is not None else value


def _write_part(
    target: Path, order: list[int], encoder: _Encoder, say: Status
) -> tuple[int, int, list[int] | None]:
    """Encode the spooled rows in `order`, chunk by chunk, appending them to `target`: (examples,
    tokens, positions in `order` of the rows dropped, or None when packed)."""
    import pyarrow as pa

    chunks = (
        order[start : start + encode.PREPROCESSING_BATCH]
        for start in range(0, len(order), encode.PREPROCESSING_BATCH)
    )
    writer, sink, count, tokens, seen = None, None, 0, 0, 0
    dropped: list[int] | None = []
    meter = _Meter(len(order), say, target.stem)
    try:
        for size, batch, batch_tokens, chunk_dropped in encoder.map(chunks):
            if chunk_dropped is None:
                dropped = None
            elif dropped is not None:
                dropped += [seen + i for i in chunk_dropped]
            seen += size
            meter.advance(size)
            if batch is None:
                continue
            if writer is None:
                sink = pa.OSFile(str(target), "wb")
                writer = pa.ipc.new_stream(sink, batch.schema)
            writer.write_batch(batch)
            count += batch.num_rows
            tokens += batch_tokens
    finally:
        if writer is not None:
            writer.close()
            sink.close()
    if writer is None:
        _write_empty(target)
    return count, tokens, dropped


def _record_batch(examples: list[dict[str, Any]]):
    """Examples as one Arrow record batch: token lists as list<int32>, kto's label as bool."""
    import pyarrow as pa

    columns = {}
    for key in examples[0]:
        values = [example[key] for example in examples]
        columns[key] = pa.array(values, type=pa.bool_()) if key == "label" else _int32_lists(values)
    return pa.RecordBatch.from_pydict(columns)


def _int32_lists(values: list[list[int]]):
    """list<int32> from lists of ints: joined into one list, then one numpy conversion (faster
    than extending a C array list by list, or pa.array on the lists)."""
    import numpy as np
    import pyarrow as pa

    flat: list[int] = []
    for ids in values:
        flat += ids
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum([len(ids) for ids in values], out=offsets[1:])
    return pa.ListArray.from_arrays(_int32_array(offsets), _int32_array(np.array(flat, np.int32)))


def _int32_array(values):
    import pyarrow as pa

    return pa.Array.from_buffers(pa.int32(), len(values), [None, pa.py_buffer(values)])


def _write_empty(target: Path) -> None:
    import pyarrow as pa

    with pa.OSFile(str(target), "wb") as sink, pa.ipc.new_stream(sink, pa.schema([])):
        pass


class _Encoder:
    """Encodes chunks of spool indices in order: in this process, or in a pool of workers with
    at most two chunks per worker in flight (so memory stays bounded). A worker reads its rows
    from the spool and sends back one Arrow record batch."""

    def __init__(self, config: RunConfig, tokenizer, spool: Spool):
        self.config, self.tokenizer, self.spool = config, tokenizer, spool
        self.workers = max(1, int(config.preprocessing_num_workers or 1))
        self.pool = None

    def __enter__(self) -> _Encoder:
        args = (self.config, self.tokenizer, self.spool)
        if self.workers > 1:
            import multiprocessing

            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            self.pool = multiprocessing.get_context(method).Pool(
                self.workers, initializer=_init_worker, initargs=(*args, True)
            )
        else:
            _init_worker(*args)
        return self

    def __exit__(self, exc_type, *_exc) -> None:
        if self.pool is None:
            _close_worker()
            return
        if exc_type is None:
            self.pool.close()
        else:
            self.pool.terminate()
        self.pool.join()

    def map(self, chunks: Iterator[list[int]]) -> Iterator[tuple[int, Any, int, Any]]:
        """(rows in the chunk, its record batch or None, its tokens, the positions it dropped)
        for each chunk, in order."""
        if self.pool is None:
            for chunk in chunks:
                yield len(chunk), *_encode_spooled(chunk)
            return
        pending: deque = deque()
        for chunk in chunks:
            pending.append((len(chunk), self.pool.apply_async(_encode_spooled, (chunk,))))
            if len(pending) >= 2 * self.workers:
                size, result = pending.popleft()
                yield size, *result.get()
        while pending:
            size, result = pending.popleft()
            yield size, *result.get()


_WORKER: dict[str, Any] = {}


def _init_worker(config: RunConfig, tokenizer, spool: Spool, child: bool = False) -> None:
    """A worker's config, tokenizer, spool and converters; a child process drops the runner's
    stop handlers (SIGTERM ends it; SIGINT is the parent's to handle)."""
    if child:
        import signal

        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    fd = os.open(spool.path, os.O_RDONLY)
    _WORKER.update(config=config, tokenizer=tokenizer, spool=spool, fd=fd, converters={})


def _close_worker() -> None:
    if "fd" in _WORKER:
        os.close(_WORKER.pop("fd"))
    _WORKER.clear()


def _encode_spooled(indices: list[int]) -> tuple[Any, int, list[int] | None]:
    """One chunk of spooled rows converted and encoded as encode.encode_rows encodes a chunk:
    (its record batch or None, its tokens, the positions in the chunk it dropped)."""
    config, tokenizer, spool = _WORKER["config"], _WORKER["tokenizer"], _WORKER["spool"]
    with _collector_paused():
        rows = spool.read(_WORKER["fd"], indices)
        conversations = [_conversation(*row) for row in rows]
        examples, dropped = encode.encode_chunk(conversations, config, tokenizer)
        if not examples:
            return None, 0, dropped
        return _record_batch(examples), sum(encode._token_count(e) for e in examples), dropped


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector paused for one chunk: its rows make many small containers and no
    cycles, and the collections they set off cost a tenth of the time. Anything cyclic left is
    collected once it runs again, after the chunk."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _conversation(dataset: str, path: str, row: int, value: Any):
    if value is None:
        return None
    converters = _WORKER["converters"]
    if dataset not in converters:
        info = load_dataset_info(_WORKER["config"].dataset_dir)
        converters[dataset] = converter_for(info.get(dataset), info.data_dir)
    conversation, _ = converters[dataset].convert(value, RowLocation(path, row))
    return conversation


class _Meter:
    """Rows/s and ETA lines through the run's status writer, every few seconds."""

    EVERY_S = 5.0

    def __init__(self, total: int, say: Status, part: str):
        self.total, self.say, self.part = total, say, part
        self.done, self.start = 0, time.monotonic()
        self.last = self.start

    def advance(self, rows: int) -> None:
        self.done += rows
        now = time.monotonic()
        if now - self.last < self.EVERY_S and self.done < self.total:
            return
        self.last = now
        rate = self.done / max(now - self.start, 1e-9)
        eta = (self.total - self.done) / rate if rate else 0
        self.say(
            "tokenizing",
            f"{self.part}: {self.done}/{self.total} rows, {rate:.0f} rows/s, ETA {eta:.0f}s",
            rows_done=self.done,
            rows_total=self.total,
        )


# --- loading -----------------------------------------------------------------------------------


def _loaded(folder: Path, meta: dict[str, Any], from_cache: bool) -> PreparedData:
    from datasets import Dataset

    def part(name: str):
        return Dataset.from_file(str(folder / f"{name}.arrow")) if name in meta["rows"] else None

    return PreparedData(
        train=part("train"),
        eval=part("eval") if meta["rows"].get("eval") else None,
        tokens=meta["tokens"],
        folder=folder,
        from_cache=from_cache,
        meta=meta,
    )


# --- fingerprints ------------------------------------------------------------------------------


def _dataset_fingerprint(info, name: str) -> dict[str, Any]:
    spec = info.get(name)
    files, kind = data_files(spec, info.data_dir)
    return {
        "name": name,
        "spec": repr(spec),
        "kind": kind,
        "files": [_file_fingerprint(path) for path in files],
    }


def _file_fingerprint(path: Path) -> list[Any]:
    stat = path.stat()
    with path.open("rb") as handle:
        digest = hashlib.file_digest(handle, "blake2b").hexdigest()
    return [path.name, stat.st_size, stat.st_mtime_ns, digest]


def _code_fingerprint() -> str:
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    paths = [here / name for name in _SOURCES]
    for package in _SOURCE_PACKAGES:
        paths += sorted((here.parent / package).glob("*.py"))
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _offsets(lengths: list[int]) -> list[int]:
    offsets, total = [], 0
    for length in lengths:
        offsets.append(total)
        total += length
    return offsets


def _silent(*_args: Any, **_kwargs: Any) -> None:
    return None
