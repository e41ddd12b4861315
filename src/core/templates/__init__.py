"""Chat templates under LLaMA-Factory's names, and rendering a conversation as training sees it."""

from tunedeck.core.errors import TemplateError
from tunedeck.core.templates.elements import Element
from tunedeck.core.templates.lengths import text_lengths, token_lengths
from tunedeck.core.templates.registry import (
    TEMPLATES,
    DuplicateTemplateError,
    Media,
    Special,
    Template,
    get_template,
)
from tunedeck.core.templates.render import (
    IGNORE_INDEX,
    NO_CUTOFF,
    Rendered,
    Segment,
    Truncation,
    infer_seqlen,
    media_note,
    render,
)
from tunedeck.core.templates.tokenizer import (
    ensure_pad_token,
    fix_tokenizer,
    load_tokenizer,
    resolve_template,
)

__all__ = [
    "IGNORE_INDEX",
    "NO_CUTOFF",
    "TEMPLATES",
    "DuplicateTemplateError",
    "Element",
    "Media",
    "Rendered",
    "Segment",
    "Special",
    "Template",
    "TemplateError",
    "Truncation",
    "ensure_pad_token",
    "fix_tokenizer",
    "get_template",
    "infer_seqlen",
    "load_tokenizer",
    "media_note",
    "render",
    "resolve_template",
    "text_lengths",
    "token_lengths",
]
