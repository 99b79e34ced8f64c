"""The direction of imports written in docs/architecture.md, checked on every module.

Every import in ``recgym/`` and ``agents/`` (module level and inside functions) is read
with :mod:`ast`. An import from a layer that the importing layer may not use, or a cycle
between modules, fails the test with the offending lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# layer -> the layers it may import (itself included). ``root`` is recgym/__init__.py and
# recgym/registration.py (env ids as strings) and recgym/threads.py: they import nothing heavy.
ALLOWED: dict[str, set[str]] = {
    "root": {"root"},
    "core": {"core"},
    "data": {"data"},
    "simulators": {"root", "core", "data", "simulators"},
    "envs": {"root", "core", "data", "simulators", "envs"},
    "evaluation": {"root", "core", "data", "simulators", "evaluation"},
    "fidelity": {"root", "core", "data", "simulators", "evaluation", "fidelity"},
    "integrations": {"root", "core", "data", "simulators", "envs", "evaluation",
                     "integrations"},
    "agents": {"root", "core", "data", "simulators", "evaluation", "agents"},
    "cli": {"root", "core", "data", "simulators", "envs", "evaluation", "fidelity",
            "integrations", "agents", "cli"},
}


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name (None: not ours)."""
    parts = module.split(".")
    if parts[0] == "agents":
        return "agents"
    if parts[0] != "recgym":
        return None
    if len(parts) == 1 or parts[1] in ("registration", "threads"):
        return "root"
    return parts[1]


def module_name(path: Path) -> str:
    """Dotted name of a source file (a package's ``__init__`` is the package)."""
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, known: set[str]) -> list[tuple[int, str]]:
    """``(line, module)`` of every recgym / agents import in a file, lazy ones included.

    ``from package import name`` counts as importing ``package.name`` when that is a
    module, else ``package``.
    """
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.append((node.lineno, candidate if candidate in known else node.module))
    return [(line, name) for line, name in found if layer_of(name) is not None]


def _sources() -> list[Path]:
    return sorted([*REPO_ROOT.glob("recgym/**/*.py"), *REPO_ROOT.glob("agents/**/*.py")])


def _graph() -> dict[str, list[tuple[int, str]]]:
    paths = _sources()
    known = {module_name(path) for path in paths}
    return {module_name(path): imports_of(path, known) for path in paths}


def test_every_source_module_has_a_layer():
    unknown = {module for module in _graph() if layer_of(module) not in ALLOWED}
    assert not unknown, f"modules outside every layer of docs/architecture.md: {sorted(unknown)}"


def test_imports_follow_the_layers():
    wrong = [f"{module}:{line} imports {target}"
             for module, targets in _graph().items()
             for line, target in targets
             if layer_of(target) not in ALLOWED.get(layer_of(module), set())]
    assert not wrong, "imports against the direction of docs/architecture.md:\n" + \
        "\n".join(wrong)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module (the cycles)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _is_reexport(package: str, target: str) -> bool:
    """A package's ``__init__`` importing its own submodule (to re-export it)."""
    return target.startswith(package + ".")


def test_no_import_cycles():
    graph = {module: {target for _, target in targets
                      if target != module and not _is_reexport(module, target)}
             for module, targets in _graph().items()}
    cycles = strongly_connected(graph)
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize(("graph", "expected"), [
    ({"a": {"b"}, "b": {"a"}, "c": {"a"}}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}}, [["a", "b", "c"]]),
])
def test_cycle_finder_on_hand_built_graphs(graph, expected):
    assert strongly_connected(graph) == expected


def test_layer_rules_reject_an_upward_import(tmp_path):
    source = tmp_path / "module.py"
    source.write_text("def f():\n    from recgym.envs.recsimu import RecSimuEnv\n")
    (line, target), = imports_of(source, {"recgym.envs.recsimu"})
    assert (line, target) == (2, "recgym.envs.recsimu")
    assert layer_of(target) not in ALLOWED["evaluation"]
