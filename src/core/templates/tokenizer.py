"""Loading a tokenizer and applying the fix-ups a template needs before training sees it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from tunedeck.core.errors import Location, MissingExtraError, TemplateError
from tunedeck.core.templates.registry import Template, get_template

_FIXED_ATTR = "_tunedeck_fixed_for"
_HF_ATTR = "_tunedeck_hf_template"


def load_tokenizer(path: str | Path, template: str | Template | None = None) -> Any:
    """Load a local tokenizer (transformers, imported lazily) and apply `template`'s fix-ups."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise MissingExtraError("transformers", "train") from None
    folder = Path(path)
    if not folder.is_dir():
        raise TemplateError(
            "tokenizer folder not found",
            location=Location(file=str(folder)),
            hint="pass a local directory holding tokenizer.json / tokenizer_config.json",
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), use_fast=True)
    except (OSError, ValueError) as exc:
        raise TemplateError(
            f"cannot load a tokenizer: {exc}", location=Location(file=str(folder))
        ) from None
    if template is not None:
        resolve_template(template, tokenizer)
    return tokenizer


def encode_texts(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """Each text's ids without special tokens: `tokenizer(texts, add_special_tokens=False)`.

    A fast tokenizer in its plain state (no truncation, padding or special-token splitting set
    on its Rust backend, and transformers' own encoding path) gets the same ids from the Rust
    backend straight, without transformers' per-call work (a third of a short row's time)."""
    backend = getattr(tokenizer, "_tokenizer", None)
    if _plain_fast(tokenizer, backend):
        encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
        return [encoding.ids for encoding in encode(texts, add_special_tokens=False)]
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def _plain_fast(tokenizer: Any, backend: Any) -> bool:
    try:
        from transformers.tokenization_utils_tokenizers import TokenizersBackend
    except ImportError:  # another transformers layout: its own path
        return False
    return (
        isinstance(tokenizer, TokenizersBackend)
        and type(tokenizer)._encode_plus is TokenizersBackend._encode_plus
        and backend is not None
        and backend.truncation is None
        and backend.padding is None
        and not backend.encode_special_tokens
        and not tokenizer.split_special_tokens
    )


def resolve_template(template: str | Template | None, tokenizer: Any | None) -> Template:
    """The concrete template to render with; fixes `tokenizer` for it (once) when one is given."""
    if template is None:
        if tokenizer is None:
            template = "empty"
        elif isinstance(getattr(tokenizer, "chat_template", None), str):
            template = "hf"
        else:
            template = "empty"
    if isinstance(template, str):
        template = get_template(template)
    if template.from_tokenizer:
        if tokenizer is None:
            raise TemplateError("the 'hf' template needs a tokenizer", hint="pass --tokenizer DIR")
        template = template_from_chat_template(tokenizer)
    if tokenizer is not None:
        fix_tokenizer(tokenizer, template)
    return template


def fix_tokenizer(tokenizer: Any, template: Template) -> None:
    """Replace eos by the first stop word (replace_eos), add the other stop words as special
    tokens, and fall back to pad = eos; idempotent per template, as training applies it once."""
    done: set = getattr(tokenizer, _FIXED_ATTR, None) or set()
    if template.name in done:
        return
    stop_words = list(template.stop_words)
    if template.replace_eos:
        if not stop_words:
            raise TemplateError(f"template '{template.name}' replaces eos but has no stop words")
        _set_eos(tokenizer, stop_words.pop(0))
    if tokenizer.eos_token_id is None:
        _set_eos(tokenizer, "<|endoftext|>")
    ensure_pad_token(tokenizer)
    if stop_words:
        try:
            tokenizer.add_special_tokens(
                {"additional_special_tokens": stop_words}, replace_additional_special_tokens=False
            )
        except TypeError:  # newer transformers dropped the keyword
            tokenizer.add_special_tokens({"additional_special_tokens": stop_words})
    done.add(template.name)
    setattr(tokenizer, _FIXED_ATTR, done)


def ensure_pad_token(tokenizer: Any) -> None:
    """Pad with the eos token when the tokenizer has no pad token (LLaMA-Factory's fallback)."""
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token


def template_from_chat_template(tokenizer: Any) -> Template:
    """Derive slot strings from the tokenizer's jinja chat_template by rendering placeholders."""
    cached = getattr(tokenizer, _HF_ATTR, None)
    if cached is not None:
        return cached
    if not isinstance(getattr(tokenizer, "chat_template", None), str):
        raise TemplateError(
            "this tokenizer has no chat_template", hint="pick a named template with --template"
        )
    mark = "{{content}}"

    def chat(messages: list[dict], generation: bool) -> str:
        text = tokenizer.apply_chat_template(
            messages, add_generation_prompt=generation, tokenize=False
        )
        return text[len(prefix) :]

    prefix = tokenizer.decode(tokenizer.encode(""))
    system_slot = chat([{"role": "system", "content": mark}], False)
    user_after_empty_system = chat(
        [{"role": "system", "content": ""}, {"role": "user", "content": mark}], True
    )
    user_slot = chat([{"role": "user", "content": mark}], True)
    pair = chat([{"role": "user", "content": mark}, {"role": "assistant", "content": mark}], False)
    assistant_slot = pair[len(user_slot) :]
    reasoning = "<think>" in assistant_slot
    assistant_slot = assistant_slot.replace("<think>", "").replace("</think>", "").lstrip("\n")
    default_system = ""
    if len(user_slot) > len(user_after_empty_system):
        default_system = _inserted_chars(user_after_empty_system, user_slot)
        user_slot = user_slot[len(system_slot.replace(mark, default_system, 1)) :]
    base = get_template("hf")
    derived = replace(
        base,
        user=(user_slot,),
        assistant=(assistant_slot,),
        system=(system_slot,),
        function=(assistant_slot,),
        observation=(user_slot,),
        prefix=(prefix,) if prefix else (),
        default_system=default_system,
        reasoning=reasoning,
        from_tokenizer=False,
    )
    setattr(tokenizer, _HF_ATTR, derived)
    return derived


def _set_eos(tokenizer: Any, token: str) -> None:
    if tokenizer.eos_token != token:
        tokenizer.add_special_tokens({"eos_token": token})


def _inserted_chars(short: str, long: str) -> str:
    """Characters of `long` skipped while walking both strings in step (a greedy diff)."""
    i = j = 0
    extra = []
    while i < len(short) and j < len(long):
        if short[i] == long[j]:
            i += 1
        else:
            extra.append(long[j])
        j += 1
    return "".join(extra)
