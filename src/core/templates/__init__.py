"""Chat templates under LLaMA-Factory's names, and rendering a conversation as training sees it."""

from tunedeck.core.errors import TemplateError
from tunedeck.core.templates.registry import TEMPLATES, Special, Template, get_template
from tunedeck.core.templates.render import (
    IGNORE_INDEX,
    Rendered,
    Segment,
    Truncation,
    infer_seqlen,
    render,
)
from tunedeck.core.templates.tokenizer import fix_tokenizer, load_tokenizer, resolve_template

__all__ = [
    "IGNORE_INDEX",
    "TEMPLATES",
    "Rendered",
    "Segment",
    "Special",
    "Template",
    "TemplateError",
    "Truncation",
    "fix_tokenizer",
    "get_template",
    "infer_seqlen",
    "load_tokenizer",
    "render",
    "resolve_template",
]
