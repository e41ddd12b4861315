"""The rules of the house: core stays headless, the faces stay light, errors stay typed."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "peft", "trl", "bitsandbytes", "gptqmodel", "auto_gptq")


def _modules_after(code: str) -> set[str]:
    script = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return {name.split(".")[0] for name in result.stdout.split()}


def test_core_imports_without_textual():
    loaded = _modules_after(
        "import pkgutil, importlib, tunedeck.core as core\n"
        "for m in pkgutil.walk_packages(core.__path__, 'tunedeck.core.'):\n"
        "    if not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)"
    )
    assert "textual" not in loaded


def test_cli_start_imports_nothing_heavy():
    loaded = _modules_after("import tunedeck.tui.cli")
    assert not loaded & {*HEAVY, "textual", "pyarrow", "numpy"}


@pytest.mark.parametrize(
    "argv",
    [["runs", "show"], ["data", "validate", "--no-such-option"], ["no-such-command"]],
)
def test_usage_errors_exit_2_without_traceback(argv):
    result = subprocess.run(
        [sys.executable, "-m", "tunedeck.tui", *argv], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
