"""The app's sidecar process, through SidecarClient: answers arrive as core types."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pilot_tools import EXAMPLE_DATA, TOKENIZER

from tunedeck.core.datasets import (
    DatasetReport,
    DatasetStats,
    iter_conversations,
    load_dataset_info,
)
from tunedeck.core.templates import IGNORE_INDEX, NO_CUTOFF, Rendered, load_tokenizer, render
from tunedeck.tui.sidecar import (
    SampleRequest,
    SidecarClient,
    SidecarError,
    ValidationProgress,
)


@pytest.fixture
def sidecar():
    client = SidecarClient()
    yield client
    client.close()


def test_validation_streams_core_reports_with_the_spec_warnings(sidecar, flawed_workspace):
    found = list(sidecar.validate(str(flawed_workspace)))
    reports = {item.name: item for item in found if isinstance(item, DatasetReport)}
    assert all(isinstance(item, (DatasetReport, ValidationProgress)) for item in found)
    assert reports["typo_entry"].status == "warning"
    assert "did you mean 'columns'?" in reports["typo_entry"].issues[0].message
    assert reports["bad_lines"].error_rows == 1
    assert reports["demo_alpaca"].status == "ok"


def test_stats_are_core_stats(sidecar):
    stats = sidecar.stats(str(EXAMPLE_DATA), "demo_sharegpt")
    assert isinstance(stats, DatasetStats)
    assert stats.rows == 12 and stats.roles


def test_a_sample_with_a_tokenizer_keeps_what_training_keeps(sidecar):
    request = SampleRequest(str(EXAMPLE_DATA), "demo_alpaca", "default", str(TOKENIZER), 12)
    sample = sidecar.sample(request, 0)
    assert isinstance(sample.rendered, Rendered) and sample.rendered.truncated is not None
    trained = sum(label != IGNORE_INDEX for label in sample.rendered.labels)
    assert len(sample.rendered.input_ids) == 12 and trained > 0
    assert [run.trainable for run in sample.kept] == [False, True]


def test_lengths_are_tokens_with_a_tokenizer_and_characters_without(sidecar):
    with_tokens = SampleRequest(str(EXAMPLE_DATA), "demo_alpaca", "default", str(TOKENIZER))
    without = SampleRequest(str(EXAMPLE_DATA), "demo_alpaca", "default")
    tokens, chars = sidecar.lengths(with_tokens), sidecar.lengths(without)
    assert len(tokens) == len(chars) == 32
    assert all(0 < t < c for t, c in zip(tokens, chars, strict=True))


def test_lengths_follow_mask_history_as_rendering_does(sidecar):
    request = SampleRequest(str(EXAMPLE_DATA), "demo_sharegpt", "qwen3", str(TOKENIZER))
    masked = replace(request, mask_history=True)
    tokenizer = load_tokenizer(TOKENIZER, "qwen3")
    info = load_dataset_info(EXAMPLE_DATA)
    rows = iter_conversations(info.get("demo_sharegpt"), info.data_dir)
    options = {"tokenizer": tokenizer, "cutoff_len": NO_CUTOFF, "mask_history": True}
    expected = [len(render(row, "qwen3", **options).input_ids) for row in rows]
    assert sidecar.lengths(masked) == expected != sidecar.lengths(request)


def test_a_failure_is_a_typed_error_with_its_hint(sidecar):
    with pytest.raises(SidecarError) as caught:
        sidecar.stats(str(EXAMPLE_DATA), "no_such_entry")
    assert "no_such_entry" in str(caught.value)
    assert caught.value.hint
