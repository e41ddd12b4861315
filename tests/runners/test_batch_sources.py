"""batch_sources: each example of a run's batches is traced to the dataset row it encodes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tunedeck.core.config import RunConfig
from tunedeck.core.datasets import get_row, load_dataset_info
from tunedeck.core.runners.batch_sources import (
    BatchPreview,
    RowSource,
    batch_preview,
    example_sources,
)
from tunedeck.core.runners.batches import preview_batches
from tunedeck.core.runners.encode import encode_conversation, encode_dataset
from tunedeck.core.runners.train import load_tokenizer

REPO = Path(__file__).resolve().parents[2]
WORKSPACE = REPO / "examples" / "workspace"


def _data_with_a_bad_row(tmp_path: Path) -> Path:
    """The example data plus `rows`, whose second row has no output (dropped by the runner)."""
    folder = tmp_path / "data"
    shutil.copytree(WORKSPACE / "data", folder)
    rows = [{"instruction": f"q{n}", "output": f"a{n}"} for n in range(12)]
    del rows[1]["output"]
    (folder / "rows.json").write_text(json.dumps(rows))
    info = json.loads((folder / "dataset_info.json").read_text())
    info["rows"] = {"file_name": "rows.json"}
    (folder / "dataset_info.json").write_text(json.dumps(info))
    return folder


def _config(data_dir: Path, **keys) -> RunConfig:
    return RunConfig(
        model_name_or_path=str(WORKSPACE / "models" / "tiny"),
        template="default",
        dataset_dir=str(data_dir),
        stage="sft",
        cutoff_len=64,
        per_device_train_batch_size=3,
        **keys,
    )


def test_each_example_is_the_encoding_of_its_source_row_when_mixed_split_and_dropped(tmp_path):
    data = _data_with_a_bad_row(tmp_path)
    config = _config(
        data,
        dataset="demo_alpaca,rows",
        mix_strategy="interleave_under",
        val_size=0.2,
        max_samples=10,
    )
    tokenizer = load_tokenizer(config)
    examples = encode_dataset(config, tokenizer).train
    sources = example_sources(config)
    assert len(sources) == len(examples)
    assert {s.dataset for s in sources} == {"demo_alpaca", "rows"}
    assert all(s.row != 1 for s in sources if s.dataset == "rows")  # the dropped row
    info = load_dataset_info(data)
    for source, example in zip(sources, examples, strict=True):
        row = get_row(info.get(source.dataset), data, source.row)
        assert encode_conversation(row.conversation, config, tokenizer) == example


def test_the_preview_is_preview_batches_and_survives_its_dict(tmp_path):
    config = _config(WORKSPACE / "data", dataset="demo_alpaca", max_samples=20)
    preview = batch_preview(config, 3)
    assert list(preview.batches) == preview_batches(config, 3)
    assert BatchPreview.from_dict(json.loads(json.dumps(preview.to_dict()))) == preview
    assert (preview.template, preview.cutoff_len, preview.packed) == ("default", 64, False)


def test_a_packed_run_has_no_single_source_row():
    config = _config(WORKSPACE / "data", dataset="demo_alpaca", packing=True)
    preview = batch_preview(config, 1)
    assert preview.packed and preview.sources == ()
    assert preview.source(preview.batches[0].rows[0].example) is None
    assert preview.cutoff_len == 63  # packing sets one token aside


def test_the_preview_prepares_the_data_the_run_then_reads(tmp_path):
    from tunedeck.core.runners.prepared import prepare_dataset

    config = _config(_data_with_a_bad_row(tmp_path), dataset="rows", preprocessing_num_workers=2)
    preview = batch_preview(config, 1)
    prepared = prepare_dataset(config, load_tokenizer(config))
    assert prepared.from_cache
    assert preview.sources == tuple(RowSource("rows", n) for n in range(12) if n != 1)
