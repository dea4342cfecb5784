"""The house rules, checked on the source: layers, cycles, private modules, method names.

Layers, each importing only those at or below it:

    base  <-  models  <-  inference  <-  api  <-  comparisons  <-  report  <-  experiments
          <-  cli

``gmmkit/__init__.py`` is the public facade and may import from any layer; nothing else
may import it (``import gmmkit`` inside the package would climb to the top).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from gmmkit.inference.methods import METHODS

PACKAGE = Path(__file__).resolve().parents[1] / "gmmkit"

#: Layer of every module, by its dotted name's first match (most specific first).
LAYERS = [
    ("gmmkit.cli", 7),
    ("gmmkit.__main__", 7),
    ("gmmkit.experiments", 6),
    ("gmmkit.report", 5),
    ("gmmkit.comparisons", 4),
    ("gmmkit.api", 3),
    ("gmmkit.inference", 2),
    ("gmmkit.models", 1),
    ("gmmkit.result", 1),
    ("gmmkit.datasets", 1),
    ("gmmkit._arviz", 0),
    ("gmmkit._validation", 0),
    ("gmmkit._warnings", 0),
    ("gmmkit.posterior", 0),
    ("gmmkit._version", 0),
    ("gmmkit.output", 0),
    ("gmmkit.reading", 0),
]
LAYER_NAMES = ["base", "models", "inference", "api", "comparisons", "report", "experiments",
               "cli"]
FACADE = "gmmkit"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(name: str) -> int:
    for prefix, level in LAYERS:
        if name == prefix or name.startswith(prefix + "."):
            return level
    raise AssertionError(f"module {name} has no layer: add it to LAYERS in this test")


def resolve(name: str) -> str | None:
    """The gmmkit module that ``name`` refers to (a module, or a name inside one)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports(name: str) -> set[str]:
    """Every gmmkit module that module ``name`` imports, at top level or inside a
    function (a lazy import is still an arrow)."""
    tree = ast.parse(MODULES[name].read_text())
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from gmmkit.a import b`` imports the submodule gmmkit.a.b when it exists.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            found = resolve(target) if target.startswith("gmmkit") else None
            if found is not None and found != name:
                out.add(found)
    return out


GRAPH = {name: imports(name) for name in MODULES}


def test_every_module_has_a_layer():
    for name in MODULES:
        if name != FACADE:
            layer(name)


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n != FACADE))
def test_no_module_imports_a_layer_above_its_own(name):
    mine = layer(name)
    for target in sorted(GRAPH[name]):
        assert target != FACADE, f"{name} imports the facade gmmkit/__init__.py"
        assert layer(target) <= mine, (
            f"{name} ({LAYER_NAMES[mine]}) imports {target} "
            f"({LAYER_NAMES[layer(target)]}), a layer above its own"
        )


def test_no_import_cycles():
    graph = {n: {t for t in ts if t != FACADE} for n, ts in GRAPH.items() if n != FACADE}
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt):], nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_no_module_imports_another_packages_private_module():
    for name, targets in GRAPH.items():
        for target in targets:
            private = [i for i, part in enumerate(target.split(".")) if part.startswith("_")
                       and not part.startswith("__")]
            if not private:
                continue
            owner = ".".join(target.split(".")[: private[0]])  # the package it belongs to
            assert name == owner or name.startswith(owner + "."), (
                f"{name} imports {target}, a private module of package {owner}"
            )


def _docstring_nodes(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def method_name_literals(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    docstrings = _docstring_nodes(tree)
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and node.value in METHODS and id(node) not in docstrings
    ]


def test_only_the_method_table_spells_method_names():
    table = PACKAGE / "inference" / "methods.py"
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {value!r}"
        for path in MODULES.values() if path != table
        for line, value in method_name_literals(path)
    ]
    assert not offenders, "method names spelled outside the table:\n" + "\n".join(offenders)


def test_the_rule_sees_a_method_name(tmp_path):
    # The check itself can fail: a literal in code is found, a docstring is not.
    source = tmp_path / "mod.py"
    source.write_text('"""Fit with "cavi"."""\n\ndef f():\n    """nuts"""\n    return "nuts"\n')
    assert method_name_literals(source) == [(5, "nuts")]


def test_the_facade_exports_every_public_name_and_loads_lazily():
    import subprocess
    import sys

    import gmmkit

    for name in gmmkit.__all__:
        assert getattr(gmmkit, name) is not None, name
    # The command line's entry point does not import the heavy layers it does not need.
    code = ("import sys, gmmkit.cli; "
            "print(sorted(m for m in ('matplotlib', 'sklearn', 'arviz', 'pymc') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]", out
