"""Datasets in LLaMA-Factory's format: specs, streaming readers, normalisation, validation, stats."""

from tunedeck.core.datasets.conversation import Conversation, Message, Role, RowLocation
from tunedeck.core.datasets.convert import (
    CONVERTERS,
    AlpacaConverter,
    Converter,
    OpenaiConverter,
    SharegptConverter,
    converter_for,
    to_conversation,
)
from tunedeck.core.datasets.issues import Issue
from tunedeck.core.datasets.json_array import scan_json_array
from tunedeck.core.datasets.readers import (
    FILE_TYPES,
    DataFileError,
    RawRow,
    data_files,
    iter_rows,
)
from tunedeck.core.datasets.rows import RowView, count_rows, get_row, iter_conversations
from tunedeck.core.datasets.spec import (
    Columns,
    DatasetInfo,
    DatasetSpec,
    Tags,
    dataset_kind,
    load_dataset_info,
    spec_from_entry,
)
from tunedeck.core.datasets.stats import DatasetStats, Summary, dataset_stats
from tunedeck.core.datasets.validate import (
    DatasetReport,
    ValidationReport,
    validate,
    validate_dataset,
    validate_entry,
)

__all__ = [
    "CONVERTERS",
    "AlpacaConverter",
    "Converter",
    "OpenaiConverter",
    "SharegptConverter",
    "converter_for",
    "FILE_TYPES",
    "Columns",
    "Conversation",
    "DataFileError",
    "DatasetInfo",
    "DatasetReport",
    "DatasetSpec",
    "DatasetStats",
    "Issue",
    "Message",
    "RawRow",
    "Role",
    "RowLocation",
    "RowView",
    "Summary",
    "Tags",
    "ValidationReport",
    "count_rows",
    "data_files",
    "dataset_kind",
    "dataset_stats",
    "get_row",
    "iter_conversations",
    "iter_rows",
    "load_dataset_info",
    "spec_from_entry",
    "scan_json_array",
    "to_conversation",
    "validate",
    "validate_dataset",
    "validate_entry",
]
