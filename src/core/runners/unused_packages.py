"""Keep installed quantization packages that a training run cannot use out of its process.

peft and transformers import bitsandbytes, gptqmodel and torchao whenever they are installed,
used or not: `import peft` imports bitsandbytes (and with it torch._inductor), LoRA's layer
dispatch imports gptqmodel to test each layer against its quantized Linear, and transformers'
quantizer registry imports torchao. A plain LoRA run pays seconds of start-up for them. Neither
library has a switch to skip these imports, so before transformers is imported the runner marks
each such package absent in sys.modules (a None entry: `importlib.util.find_spec`, which both
libraries' availability checks use, then returns None, and an import raises ImportError).

A package stays importable when the run may need it: bitsandbytes for quantization_bit, either
package for an optimizer outside the torch-only ones, all three for a checkpoint saved
quantized or whose config.json cannot be read here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tunedeck.core.config import RunConfig

QUANTIZATION_PACKAGES = ("bitsandbytes", "gptqmodel", "torchao")
# transformers' optimizers built from torch.optim alone (the 8-bit, paged, 4-bit ones need
# bitsandbytes or torchao)
TORCH_OPTIMIZERS = frozenset(
    {"adamw_torch", "adamw_torch_fused", "adafactor", "sgd", "adagrad", "rmsprop"}
)


def hide_unused_packages(config: RunConfig) -> list[str]:
    """Mark the quantization packages this run cannot use as absent; return their names."""
    hidden = [
        name for name in unused_packages(config) if name not in sys.modules and _installed(name)
    ]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # find_spec: None; import: error
    return hidden


def unused_packages(config: RunConfig) -> tuple[str, ...]:
    """The quantization packages that neither the config nor the checkpoint calls for."""
    if config.optim not in TORCH_OPTIMIZERS or _saved_quantized(config.model_name_or_path):
        return ()
    if config.quantization_bit:
        return tuple(name for name in QUANTIZATION_PACKAGES if name != "bitsandbytes")
    return QUANTIZATION_PACKAGES


def _saved_quantized(model: str | None) -> bool:
    """True when the checkpoint's config.json has a quantization_config, or cannot be read."""
    path = _config_file(model)
    if path is None:
        return True
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return True
    return not isinstance(saved, dict) or bool(saved.get("quantization_config"))


def _config_file(model: str | None) -> Path | None:
    """config.json of a local checkpoint, or of a Hub one already in the local cache."""
    if not model:
        return None
    if Path(model).is_dir():
        return Path(model) / "config.json"
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model, "config.json")
    except Exception:  # noqa: BLE001 - not a Hub id, or no hub client: unknown
        return None
    return Path(cached) if isinstance(cached, str) else None


def _installed(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None
