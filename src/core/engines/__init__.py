"""Training engines: tunedeck's built-in runner, or LLaMA-Factory's own CLI on the host.

`auto` takes LLaMA-Factory when a config needs what the built-in engine lacks and LLaMA-Factory
is installed on the host, else the built-in engine.
"""

from __future__ import annotations

BUILTIN = "builtin"
LLAMAFACTORY = "llamafactory"
AUTO = "auto"
ENGINES = (BUILTIN, LLAMAFACTORY, AUTO)
