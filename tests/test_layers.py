"""The rules of the house: core stays headless, the faces stay light, errors stay typed.

Each layer rule is checked twice: statically, by reading every import statement under src/
(lazy ones inside functions included) and naming the offending file:line; and at run time,
by importing a face and looking at sys.modules.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HEAVY = ("torch", "transformers", "peft", "trl", "bitsandbytes", "gptqmodel", "auto_gptq")
SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGES = {"core": "tunedeck.core", "tui": "tunedeck.tui"}
DATASETS_MAY_USE = ("tunedeck.core.datasets", "tunedeck.core.errors", "tunedeck.core.locations")


@dataclass(frozen=True)
class Import:
    """One module an import statement names, and where the statement is."""

    target: str
    file: str
    line: int
    lazy: bool  # inside a function, so it runs only when that function does

    def __str__(self) -> str:
        return f"{self.file}:{self.line} imports {self.target}"


def scan(root: Path = SRC, packages: dict[str, str] = PACKAGES) -> list[Import]:
    """Every import under root's package folders, relative ones resolved to absolute names."""
    found: list[Import] = []
    for folder, package in packages.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = path.relative_to(root / folder).with_suffix("").parts
            module = ".".join((package, *parts))
            is_package = parts[-1:] == ("__init__",)
            here = module.removesuffix(".__init__") if is_package else module.rpartition(".")[0]
            file = str(path.relative_to(root.parent))
            found += _imports_of(ast.parse(path.read_text(), file), here, file)
    return found


def _imports_of(tree: ast.AST, package: str, file: str) -> Iterator[Import]:
    def visit(node: ast.AST, lazy: bool) -> Iterator[Import]:
        for target in _targets(node, package):
            yield Import(target, file, node.lineno, lazy)
        inner = lazy or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            yield from visit(child, inner)

    return visit(tree, False)


def _targets(node: ast.AST, package: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        return [base, *(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")]
    if isinstance(node, ast.Call) and _called_name(node.func) in ("import_module", "__import__"):
        name = _leading_text(node.args[0]) if node.args else None
        return [name.rstrip(".")] if name else []
    return []


def _called_name(func: ast.AST) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _leading_text(arg: ast.AST) -> str | None:
    """The module name of `import_module("x.y")`, or the fixed start of an f-string one."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        return str(arg.values[0].value)
    return None


def _within(name: str, prefixes: tuple[str, ...] | str) -> bool:
    prefixes = (prefixes,) if isinstance(prefixes, str) else prefixes
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def _from(file_prefix: str) -> list[Import]:
    return [found for found in IMPORTS if found.file.startswith(file_prefix)]


IMPORTS = scan()


def _report(offending: list[Import]) -> str:
    return "\n".join(str(found) for found in offending)


# -- the static rules -----------------------------------------------------------------------


def test_scan_sees_top_level_lazy_relative_and_dynamic_imports(tmp_path):
    folder = tmp_path / "src" / "core" / "jobs"
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text("")
    (folder / "late.py").write_text(
        "from ..runners import train\n"
        "import textual.app\n"
        "def later():\n"
        "    from tunedeck.core import runners\n"
        "    import importlib\n"
        "    importlib.import_module(f'tunedeck.core.runners.{later}')\n"
    )
    found = {(i.target, i.line, i.lazy) for i in scan(tmp_path / "src", {"core": "tunedeck.core"})}
    assert ("tunedeck.core.runners.train", 1, False) in found
    assert ("textual.app", 2, False) in found
    assert ("tunedeck.core.runners", 4, True) in found
    assert ("tunedeck.core.runners", 6, True) in found


def test_the_scan_reads_both_layers():
    assert any(_within(i.target, "textual") for i in _from("src/tui/"))
    assert any(_within(i.target, "tunedeck.core.datasets") for i in _from("src/core/"))


def test_core_never_imports_textual():
    offending = [i for i in _from("src/core/") if _within(i.target, "textual")]
    assert not offending, _report(offending)


def test_tui_never_imports_heavy_libraries():
    offending = [i for i in _from("src/tui/") if _within(i.target, HEAVY)]
    assert not offending, _report(offending)


def test_core_imports_heavy_libraries_only_in_runners_or_a_lazy_tokenizer():
    """ARCHITECTURE: only runners import torch & co.; templates may load a tokenizer lazily."""
    offending = [
        i
        for i in _from("src/core/")
        if _within(i.target, HEAVY)
        and not i.file.startswith("src/core/runners/")
        and not (
            i.file.startswith("src/core/templates/")
            and i.lazy
            and _within(i.target, "transformers")
        )
    ]
    assert not offending, _report(offending)


def test_datasets_import_no_other_core_package_but_errors_and_locations():
    offending = [
        i
        for i in _from("src/core/datasets/")
        if _within(i.target, "tunedeck.core")
        and i.target != "tunedeck.core"
        and not _within(i.target, DATASETS_MAY_USE)
    ]
    assert not offending, _report(offending)


def test_jobs_never_import_runners():
    offending = [i for i in _from("src/core/jobs/") if _within(i.target, "tunedeck.core.runners")]
    assert not offending, _report(offending)


# -- the same rules at run time ---------------------------------------------------------------


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
