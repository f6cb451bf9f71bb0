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

BUILDER = Path(ctdegradbench.builder.__file__).parent
# The builder's layers from the bottom; a module may import its own layer or those below it.
LAYERS = ("core", ("sources", "projector"), "degradations", "simulate", "dataset", "cli")


def layer_of(module: str) -> int:
    """Layer index of ``ctdegradbench.builder.<part>...``."""
    part = module.split(".")[2]
    for index, layer in enumerate(LAYERS):
        if part == layer or (isinstance(layer, tuple) and part in layer):
            return index
    raise AssertionError(f"{module} belongs to no layer of {LAYERS}")


def imported_modules(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return names


def builder_modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(BUILDER.rglob("*.py")):
        rel = path.relative_to(BUILDER).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        if parts:
            out.append(("ctdegradbench.builder." + ".".join(parts), path))
    return out


@pytest.mark.parametrize("module, path", builder_modules(), ids=lambda x: x if isinstance(x, str) else "")
def test_builder_imports_only_go_downward(module, path):
    own = layer_of(module)
    for name in imported_modules(path):
        assert not name.startswith(("ctdegradbench.model", "ctdegradbench.evaluation")), (module, name)
        assert name != "ct_degradbench", f"{module} imports the thin script ct_degradbench.py"
        assert not name.split(".")[0] in ("builder", "model", "evaluation"), f"{module} imports {name}"
        if name.startswith("ctdegradbench.builder."):
            assert layer_of(name) <= own, f"{module} (layer {LAYERS[own]}) imports {name} from a layer above"


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
