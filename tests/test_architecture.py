"""The package's import graph: no cycles, and the core layers only import downwards.

Every module of the installed package (``yolox_deploy`` with its ``exporters``, ``runtimes``
and ``benchmarks`` folders) is parsed; every import counts, function-level ones included,
except those under ``if TYPE_CHECKING:`` (type-only). ``from pkg import name`` is an edge to
``pkg.name`` when that is a module, else to ``pkg``. The import of a parent package that
Python performs before a submodule's is not an edge: it is not written in the code.
"""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGES = ("yolox_deploy", "yolox_deploy.runtimes", "yolox_deploy.exporters", "yolox_deploy.benchmarks")

# The core stack, bottom to top: a module of one layer imports only its own layer, lower layers
# and the shared leaves below (errors, detections, ...). The top (CLIs, evaluation, integrations,
# exporters, benchmarks) may import anything below it.
LAYERS = (
    ("yolox_deploy.processing",),
    ("yolox_deploy.artifacts", "yolox_deploy.models"),
    ("yolox_deploy.runtimes",),
    ("yolox_deploy.pipeline",),
    ("yolox_deploy.slicing",),
    ("yolox_deploy.video",),
    ("yolox_deploy.detector",),
)
LEAVES = ("yolox_deploy._version", "yolox_deploy._optional", "yolox_deploy.errors", "yolox_deploy.coco",
          "yolox_deploy.precision", "yolox_deploy.detections")


def package_modules() -> dict[str, Path]:
    """Module name -> source file, for every module of the installed package."""
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        root = Path(importlib.import_module(package).__file__).parent
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules.setdefault(".".join([package, *parts]), path)
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, but those only for type checkers."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph(modules: dict[str, Path], unresolved: list[str] | None = None) -> dict[str, set[str]]:
    """Module -> the package modules it imports. An import of a ``yolox_deploy`` path that is
    no module of the package (an old or misspelt path) is appended to ``unresolved``."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = module_edges(name, path.read_text(encoding="utf-8"), path.name == "__init__.py", modules,
                                   unresolved if unresolved is not None else [])
    return graph


def module_edges(name: str, source: str, is_package: bool, modules: dict[str, Path] | set[str],
                 unresolved: list[str]) -> set[str]:
    package = name if is_package else name.rpartition(".")[0]
    edges: set[str] = set()
    for node in _imports(ast.parse(source, name)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    edges.add(alias.name)
                elif alias.name.split(".")[0] == "yolox_deploy":
                    unresolved.append(f"{name}: import {alias.name}")
            continue
        if node.level:
            base = package.split(".")[:len(package.split(".")) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        for alias in node.names:
            if f"{target}.{alias.name}" in modules:
                edges.add(f"{target}.{alias.name}")
            elif target in modules:
                edges.add(target)
            elif target.split(".")[0] == "yolox_deploy":
                unresolved.append(f"{name}: from {'.' * node.level}{node.module or ''} import {alias.name}")
    edges.discard(name)
    return edges


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def layer_of(module: str) -> int | None:
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    return None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Edges of the core stack that point up, or from the core to anything not below it."""
    bad = []
    for module, targets in sorted(graph.items()):
        rank = layer_of(module)
        if rank is None:
            continue
        for target in sorted(targets):
            target_rank = layer_of(target)
            if target_rank is None and not target.startswith(LEAVES):
                bad.append(f"{module} -> {target} (outside the core stack)")
            elif target_rank is not None and target_rank > rank:
                bad.append(f"{module} -> {target} (a higher layer)")
    return bad


@pytest.fixture(scope="module")
def unresolved() -> list[str]:
    return []


@pytest.fixture(scope="module")
def graph(unresolved) -> dict[str, set[str]]:
    return import_graph(package_modules(), unresolved)


def test_the_graph_sees_every_kind_of_import(graph):
    # a function-level import (the exporters' lazy runtimes import), a relative one, and a
    # from-import of a submodule must all be edges, or the checks below would prove nothing
    assert "yolox_deploy.runtimes" in graph["yolox_deploy.exporters.openvino"]
    assert "yolox_deploy.processing.grids" in graph["yolox_deploy.processing.postprocess"]
    assert "yolox_deploy.pipeline" in graph["yolox_deploy.detector"]
    assert len(graph) > 60


def test_type_only_imports_are_not_edges():
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import A\nelse:\n"
                     "    from .b import B\ndef f():\n    from .c import C\n")
    assert [node.module for node in _imports(tree)] == ["typing", "b", "c"]


def test_cycle_finder_finds_a_planted_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles(graph):
    found = cycles(graph)
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_core_layers_import_only_downwards(graph):
    bad = upward_imports(graph)
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_the_top_of_the_package_keeps_the_facade_and_little_else():
    root = Path(importlib.import_module("yolox_deploy").__file__).parent
    top = sorted(p.name for p in root.glob("*.py"))
    assert len(top) <= 12, top
    assert {"detector.py", "detections.py", "errors.py", "pipeline.py"} <= set(top)


def test_layer_check_finds_a_planted_upward_import():
    planted = {"yolox_deploy.processing.nms": {"yolox_deploy.detector", "yolox_deploy.errors"},
               "yolox_deploy.video.streaming": {"yolox_deploy.pipeline", "yolox_deploy.cli.detect"}}
    assert upward_imports(planted) == ["yolox_deploy.processing.nms -> yolox_deploy.detector (a higher layer)",
                                       "yolox_deploy.video.streaming -> yolox_deploy.cli.detect (outside the core stack)"]


def test_every_import_of_the_package_names_a_module_of_it(graph, unresolved):
    """No aliases of old module paths exist, so an import the graph cannot place is a bug (and
    would hide an upward import from the layering check)."""
    assert not unresolved, "imports of paths that are no module of the package:\n" + "\n".join(unresolved)


def test_an_import_of_an_old_path_is_reported_not_dropped():
    modules = {"yolox_deploy", "yolox_deploy.processing", "yolox_deploy.processing.nms",
               "yolox_deploy.video", "yolox_deploy.video.streaming"}
    found: list[str] = []
    source = "def f():\n    from ..streaming import run_stream\n    import yolox_deploy.images\n"
    assert module_edges("yolox_deploy.processing.nms", source, False, modules, found) == set()
    assert found == ["yolox_deploy.processing.nms: from ..streaming import run_stream",
                     "yolox_deploy.processing.nms: import yolox_deploy.images"]
    with pytest.raises(ImportError):
        importlib.import_module("yolox_deploy.streaming")


def test_nothing_in_the_product_imports_the_benchmark_scripts(graph):
    """``benchmarks/`` holds scripts and tables; ``yolox-bench`` and ``yolox-tune`` measure
    with ``yolox_deploy.measure``, so a product command never depends on the scripts folder."""
    bad = [f"{module} -> {target}" for module, targets in sorted(graph.items())
           if not module.startswith("yolox_deploy.benchmarks")
           for target in sorted(targets) if target.startswith("yolox_deploy.benchmarks")]
    assert not bad, "product modules importing benchmarks/:\n" + "\n".join(bad)
    assert "yolox_deploy.measure.calls" in graph["yolox_deploy.tune.run"]
    assert "yolox_deploy.measure.bench" in graph["yolox_deploy.cli.bench"]
