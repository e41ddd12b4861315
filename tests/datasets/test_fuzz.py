"""Random, truncated and mistyped input never crashes the loader or the validator."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunedeck.core.datasets import get_row, iter_conversations, load_dataset_info, validate
from tunedeck.core.errors import TunedeckError

SCALARS = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
KEYS = st.sampled_from(
    [
        "instruction",
        "input",
        "output",
        "history",
        "conversations",
        "messages",
        "from",
        "value",
        "role",
        "content",
        "label",
        "images",
        "chosen",
        "rejected",
        "system",
        "tools",
    ]
)
ROWS = st.lists(st.dictionaries(KEYS, VALUES, max_size=6) | VALUES, max_size=6)
ENTRIES = st.fixed_dictionaries(
    {"file_name": st.sampled_from(["d.json", "d.jsonl", "d.txt", "d.csv", "missing.json"])},
    optional={
        "formatting": st.sampled_from(["alpaca", "sharegpt", "openai", "other", 3]),
        "ranking": st.booleans() | SCALARS,
        "columns": st.dictionaries(
            st.sampled_from(
                ["prompt", "messages", "kto_tag", "images", "history", "chosen", "rejected", "bad"]
            ),
            KEYS | SCALARS,
            max_size=4,
        ),
        "tags": st.dictionaries(
            st.sampled_from(["role_tag", "content_tag", "user_tag"]), KEYS | SCALARS, max_size=3
        ),
    },
)


@settings(max_examples=150, deadline=2000, suppress_health_check=list(HealthCheck))
@given(
    entry=ENTRIES | VALUES,
    rows=ROWS,
    cut=st.integers(min_value=0, max_value=400),
    jsonl=st.booleans(),
)
def test_loader_and_validator_only_raise_typed_errors(tmp_path_factory, entry, rows, cut, jsonl):
    data = tmp_path_factory.mktemp("fuzz")
    (data / "dataset_info.json").write_text(json.dumps({"d": entry}))
    text = "".join(json.dumps(row) + "\n" for row in rows) if jsonl else json.dumps(rows, indent=1)
    text = text[:cut] if cut < len(text) else text
    for name in ("d.json", "d.jsonl", "d.txt", "d.csv"):
        (data / name).write_text(text)
    report = validate(data)
    assert len(report.datasets) == 1
    try:
        info = load_dataset_info(data)
        spec = info.get("d")
        for _ in iter_conversations(spec, data):
            pass
        get_row(spec, data, 0)
    except TunedeckError:
        pass


@settings(max_examples=100, deadline=2000, suppress_health_check=list(HealthCheck))
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_garbage_dataset_info_is_an_issue_not_a_crash(tmp_path_factory, raw):
    data = tmp_path_factory.mktemp("info")
    (data / "dataset_info.json").write_bytes(raw)
    report = validate(data)
    assert report.issues or all(entry.status for entry in report.datasets)
