"""Run configs: LLaMA-Factory key names, YAML/JSON files plus `key=value` overrides, located errors.

Importing this package never imports torch: configs are checked before anything heavy loads.
"""

from tunedeck.core.config.checks import last_checkpoint
from tunedeck.core.config.loader import (
    ConfigCheck,
    ConfigInvalid,
    ConfigProblem,
    check_config,
    dump_config,
    load_config,
    parse_overrides,
)
from tunedeck.core.config.schema import IGNORED_KEYS, KEY_RULES, KNOWN_KEYS, STAGES, RunConfig

__all__ = [
    "IGNORED_KEYS",
    "KEY_RULES",
    "KNOWN_KEYS",
    "STAGES",
    "ConfigCheck",
    "ConfigInvalid",
    "ConfigProblem",
    "RunConfig",
    "check_config",
    "dump_config",
    "last_checkpoint",
    "load_config",
    "parse_overrides",
]
