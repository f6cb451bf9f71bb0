"""The package's import graph, read from the source (``ast``; nothing is imported).

Every ``import`` / ``from ... import`` of a ``ctdegradbench`` module is an arrow, at module
level or inside a function (a function-local import is still a dependency; hiding one is how a
cycle goes unseen). Modules are grouped into parts: ``core``, ``builder``, ``evaluation``,
``model`` (``model.app`` and the ``cli`` modules count as ``app``, the layer on top) and the
thin script ``ct_degradbench``.

Usage (from a checkout's root)::

    python benchmarks/import_graph.py [ROOT] [--modules] [--dot FILE]

prints the part-level arrows with their counts, the arrows that go against the layering
``core <- builder <- evaluation <- model <- app``, and the import cycles between modules;
``--modules`` also lists every module-level arrow; ``--dot`` writes a Graphviz file.
"""

from __future__ import annotations

import argparse
import ast
from collections import Counter
from pathlib import Path

# Top-level folders installed as ``ctdegradbench.<name>`` (pyproject [tool.setuptools.package-dir]).
PARTS = ("core", "builder", "evaluation", "model")
ORDER = ("core", "builder", "evaluation", "model", "app", "script")   # a part may import those before it


def modules(root: Path) -> dict[str, Path]:
    """``{module name: file}`` of the package in the checkout ``root`` (and the thin script)."""
    found = {}
    for part in PARTS:
        for path in sorted((root / part).rglob("*.py")) if (root / part).is_dir() else []:
            rel = path.relative_to(root / part).with_suffix("")
            names = [p for p in rel.parts if p != "__init__"]
            found[".".join(["ctdegradbench", part, *names])] = path
    if (root / "ct_degradbench.py").is_file():
        found["ct_degradbench"] = root / "ct_degradbench.py"
    return found


def part_of(module: str) -> str:
    """The layer of a module: core, builder, evaluation, model, app (model.app, every cli) or script."""
    if module == "ct_degradbench":
        return "script"
    names = module.split(".")
    if names[1] == "model" and len(names) > 2 and names[2] == "app" or names[-1] == "cli":
        return "app"
    return names[1]


def resolve(name: str, known: dict[str, Path]) -> str | None:
    """The known module ``name`` refers to (itself, or the package holding an imported name)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Modules of the package that ``module`` imports anywhere in its file (relative imports resolved)."""
    out = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names = [f"{base}.{a.name}" for a in node.names]
        for name in names:
            if name.startswith(("ctdegradbench.", "ct_degradbench")):
                target = resolve(name, known)
                if target and target != module:
                    out.add(target)
    return out


def graph(root: Path) -> dict[str, set[str]]:
    known = modules(root)
    return {m: imports_of(m, p, known) for m, p in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def upward(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Arrows from a part to a part above it in :data:`ORDER`."""
    return sorted((a, b) for a, targets in edges.items() for b in targets
                  if ORDER.index(part_of(b)) > ORDER.index(part_of(a)))


def report(root: Path, show_modules: bool) -> str:
    edges = graph(root)
    parts = Counter((part_of(a), part_of(b)) for a, ts in edges.items() for b in ts if part_of(a) != part_of(b))
    lines = [f"import graph of {root} ({len(edges)} modules, {sum(map(len, edges.values()))} arrows)", "",
             "arrows between parts (count):"]
    lines += [f"  {a:>10} -> {b:<10} {n}" for (a, b), n in sorted(parts.items(), key=lambda x: (ORDER.index(x[0][0]),
                                                                                              ORDER.index(x[0][1])))]
    up = upward(edges)
    lines += ["", f"arrows against the layering {' <- '.join(ORDER)} ({len(up)}):"]
    lines += [f"  {a} -> {b}" for a, b in up] or ["  none"]
    cyc = cycles(edges)
    lines += ["", f"import cycles between modules ({len(cyc)}):"]
    lines += ["  " + " <-> ".join(c) for c in cyc] or ["  none"]
    if show_modules:
        lines += ["", "module arrows:"]
        lines += [f"  {a} -> {b}" for a in sorted(edges) for b in sorted(edges[a])]
    return "\n".join(lines) + "\n"


def dot(root: Path) -> str:
    """Graphviz of the module graph, one cluster per part, upward arrows in red."""
    edges = graph(root)
    lines = ["digraph imports {", "  rankdir=BT; node [shape=box, fontsize=9];"]
    for part in ORDER:
        members = [m for m in edges if part_of(m) == part]
        lines.append(f'  subgraph cluster_{part} {{ label="{part}";')
        lines += [f'    "{m}";' for m in sorted(members)]
        lines.append("  }")
    for a in sorted(edges):
        for b in sorted(edges[a]):
            bad = ORDER.index(part_of(b)) > ORDER.index(part_of(a))
            lines.append(f'  "{a}" -> "{b}"' + (" [color=red];" if bad else ";"))
    return "\n".join(lines + ["}"]) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", nargs="?", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--modules", action="store_true", help="also list every module arrow")
    parser.add_argument("--dot", type=Path, help="write the module graph as Graphviz here")
    args = parser.parse_args(argv)
    print(report(args.root, args.modules), end="")
    if args.dot:
        args.dot.write_text(dot(args.root), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
