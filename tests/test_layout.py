"""The package's shape: one namespace, imports only downward through the builder's layers, the
library never imports the thin script, and the docstring examples run."""

from __future__ import annotations

import ast
import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import ctdegradbench.builder
import ctdegradbench.core

ROOT = Path(__file__).resolve().parents[1]
# The package's parts from the bottom; a part may import its own and those below it. ``app`` is
# the layer on top: every command module (``*/cli.py``) and the web demo (``model/app``).
PARTS = ("core", "builder", "evaluation", "model", "app")
# The builder's own layers from the bottom (inside ``builder``, the same rule).
LAYERS = ("core", ("sources", "projector"), "degradations", "simulate", "dataset")


def part_of(module: str) -> str:
    """``core``, ``builder``, ``evaluation``, ``model`` or ``app`` of ``ctdegradbench.<part>...``."""
    names = module.split(".")
    if names[-1] == "cli" or names[1:3] == ["model", "app"]:
        return "app"
    assert names[1] in PARTS, f"{module} belongs to no part of {PARTS}"
    return names[1]


def layer_of(module: str) -> int:
    """Layer index of ``ctdegradbench.builder.<part>...``."""
    part = module.split(".")[2]
    for index, layer in enumerate(LAYERS):
        if part == layer or (isinstance(layer, tuple) and part in layer):
            return index
    raise AssertionError(f"{module} belongs to no layer of {LAYERS}")


def package_modules() -> dict[str, Path]:
    """``{module: file}`` of every module of the installed namespace's folders (``core/``, ``builder/``, ...)."""
    out = {}
    for part in ("core", "builder", "evaluation", "model"):
        for path in sorted((ROOT / part).rglob("*.py")):
            names = [p for p in path.relative_to(ROOT / part).with_suffix("").parts if p != "__init__"]
            out[".".join(["ctdegradbench", part, *names])] = path
    return out


MODULES = package_modules()


def imported_modules(module: str, path: Path) -> list[str]:
    """Every module ``module`` imports, at module level or inside a function (relative imports
    resolved; ``from package import name`` counts as ``package.name`` when that is a module)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names += [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return names


def own_imports(module: str, path: Path) -> set[str]:
    """The package's modules that ``module`` imports (each resolved to a module file)."""
    out = set()
    for name in imported_modules(module, path):
        while name.startswith("ctdegradbench.") and name not in MODULES:
            name = name.rpartition(".")[0]
        if name in MODULES and name != module:
            out.add(name)
    return out


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_only_go_downward(module):
    """core <- builder <- evaluation <- model <- app, function-local imports included; the kernel
    imports nothing of the others; nothing imports the thin script or a bare top-level folder."""
    path = MODULES[module]
    own = PARTS.index(part_of(module))
    for name in imported_modules(module, path):
        assert name != "ct_degradbench", f"{module} imports the thin script ct_degradbench.py"
        assert name.split(".")[0] not in ("core", "builder", "model", "evaluation", "tests", "benchmarks"), \
            f"{module} imports {name}"
    for name in own_imports(module, path):
        target = PARTS.index(part_of(name))
        assert target <= own, f"{module} ({PARTS[own]}) imports {name} ({PARTS[target]}), a part above"
        if part_of(module) == part_of(name) == "builder":
            assert layer_of(name) <= layer_of(module), f"{module} imports {name} from a builder layer above"


def test_no_import_cycles():
    """No two modules import each other, directly or through others (function-local imports count:
    they hid a model <-> evaluation cycle)."""
    edges = {m: own_imports(m, p) for m, p in MODULES.items()}
    done, path = set(), []

    def visit(m):
        if m in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(m):] + [m]))
        if m in done:
            return
        path.append(m)
        for n in sorted(edges[m]):
            visit(n)
        path.pop()
        done.add(m)

    for m in sorted(edges):
        visit(m)


def test_layering_sees_function_local_imports(tmp_path):
    """The check reads imports inside functions too (a local import is still a dependency)."""
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from ctdegradbench.model.predict import predict\n", encoding="utf-8")
    assert "ctdegradbench.model.predict" in own_imports("ctdegradbench.evaluation.m", source)


@pytest.mark.parametrize("folder, other", [("tests", "benchmarks"), ("benchmarks", "tests")])
def test_tests_and_benchmarks_do_not_import_each_other(folder, other):
    """tests/ and benchmarks/ share code only through the package (no imports, no sys.path into the other)."""
    for path in sorted((ROOT / folder).rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for name in imported_modules("x", path):
            assert name.split(".")[0] != other, f"{path} imports {name}"
        for node in ast.walk(ast.parse(text)):
            call = ast.get_source_segment(text, node) if isinstance(node, ast.Call) else ""
            assert not (call.startswith("sys.path.") and other in call), f"{path} puts {other}/ on sys.path: {call}"


def test_docstring_examples_run():
    attempted = 0
    packages = [(ctdegradbench.core.__path__, "ctdegradbench.core."),
                (ctdegradbench.builder.__path__, "ctdegradbench.builder.")]
    for info in (i for path, prefix in packages for i in pkgutil.walk_packages(path, prefix)):
        module = importlib.import_module(info.name)
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0, info.name
        attempted += result.attempted
    assert attempted >= 5      # the examples of options.py and prompts.describe at least
