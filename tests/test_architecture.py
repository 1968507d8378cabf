"""The import rule of docs/architecture.md, import cycles and module size, checked on the source.

Imports are read with ``ast`` from every module under ``src/deep_tree_echo`` (imports inside
functions included); imports under ``if TYPE_CHECKING:`` are for annotations only and skipped.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import deep_tree_echo

PACKAGE = "deep_tree_echo"
SRC = Path(deep_tree_echo.__file__).resolve().parent

#: Lowest first. A module may import its own layer and the layers below it (docs/architecture.md).
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"", "_events", "_http", "_json", "_lazy", "_redis", "config", "errors", "proto"}),
    frozenset({"resilience"}),
    frozenset({"aar_core", "tenants"}),
    frozenset({"observability"}),
    frozenset({"plugins"}),
    frozenset({"server"}),
    frozenset({"integration"}),
    frozenset({"testing"}),
    frozenset({"cli", "__main__"}),
)
LAYER_OF = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}

MAX_LINES = 500
#: Modules allowed past MAX_LINES, each with the reason (remove the entry once it is split).
OVERSIZED = {
    "aar_core/memory/manager.py": "the memory workstream owns it; to split there",
}


def _module_name(path: Path) -> str:
    parts = [PACKAGE, *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """Every node under ``node`` except the bodies of ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            yield from (n for stmt in child.orelse for n in [stmt, *_runtime_nodes(stmt)])
            continue
        yield child
        yield from _runtime_nodes(child)


def _resolve(importer: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(module: str) -> list[tuple[str, int, str | None]]:
    """``(imported module, line, name)`` for each runtime import of one of our modules."""
    path = MODULES[module]
    return imports_in(path.read_text(encoding="utf-8"), module, path.name == "__init__.py")


def imports_in(
    source: str, module: str, is_package: bool = False
) -> list[tuple[str, int, str | None]]:
    """``(imported module, line, name)`` for each runtime import of ours in ``source``."""
    tree = ast.parse(source)
    found: list[tuple[str, int, str | None]] = []
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node, is_package)
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                if submodule in MODULES:
                    found.append((submodule, node.lineno, None))
                else:
                    found.append((target, node.lineno, alias.name))
    return [f for f in found if f[0] == PACKAGE or f[0].startswith(PACKAGE + ".")]


def _part(module: str) -> str:
    """The package (or root module) a module belongs to: ``server``, ``errors``, ``config``..."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _is_errors_module(module: str) -> bool:
    return module.rsplit(".", 1)[-1] == "errors"


def rule_violation(importer: str, imported: str, name: str | None) -> str | None:
    """Why ``importer`` may not import ``imported`` (None when the rule allows it)."""
    if imported == PACKAGE:
        return None if name == "__version__" else "only __version__ comes from the package root"
    if _is_errors_module(importer):
        if _is_errors_module(imported):
            return None
        return "errors modules import only other errors modules"
    if _is_errors_module(imported):
        return None  # the error hierarchy is one tree every layer may raise and catch
    source, target = _part(importer), _part(imported)
    if source == target:
        return None
    if source not in LAYER_OF or target not in LAYER_OF:
        return f"{source or target!r} has no layer in LAYERS (docs/architecture.md)"
    if LAYER_OF[target] > LAYER_OF[source]:
        return f"{source} (layer {LAYER_OF[source]}) imports {target} (layer {LAYER_OF[target]})"
    return None


def _graph() -> dict[str, set[str]]:
    """Module → modules its runtime imports execute (parent packages included)."""
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        edges: set[str] = set()
        for imported, _, _ in imports_of(module):
            parts = imported.split(".")
            for i in range(1, len(parts) + 1):
                target = ".".join(parts[:i])
                # a module's own parent packages are already importing when it runs
                if target in MODULES and target != module and not module.startswith(target + "."):
                    edges.add(target)
        graph[module] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def test_every_package_has_a_layer() -> None:
    parts = {_part(m) for m in MODULES if m != PACKAGE}
    assert parts - set(LAYER_OF) == set()


def test_imports_follow_the_layer_rule() -> None:
    violations = []
    for module in MODULES:
        for imported, line, name in imports_of(module):
            why = rule_violation(module, imported, name)
            if why is not None:
                violations.append(f"{MODULES[module].relative_to(SRC)}:{line} {imported}: {why}")
    assert violations == []


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_no_module_is_over_the_size_limit() -> None:
    too_long = []
    for path in MODULES.values():
        relative = path.relative_to(SRC).as_posix()
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES and relative not in OVERSIZED:
            too_long.append(f"{relative}: {lines} lines")
    assert too_long == []


# -- the checker itself catches what it must ----------------------------------------------------


@pytest.mark.parametrize(
    ("importer", "imported", "allowed"),
    [
        ("deep_tree_echo.resilience.api", "deep_tree_echo.observability.integration_monitor",
         False),
        ("deep_tree_echo.aar_core.gateway", "deep_tree_echo.server.app", False),
        ("deep_tree_echo.server.app", "deep_tree_echo.integration.gateway", False),
        ("deep_tree_echo.integration.gateway", "deep_tree_echo.server.routes.process", True),
        ("deep_tree_echo.server.routes.process", "deep_tree_echo.integration.errors", True),
        ("deep_tree_echo.aar_core.errors", "deep_tree_echo.aar_core.gateway", False),
        ("deep_tree_echo.config", "deep_tree_echo.errors", True),
        ("deep_tree_echo.errors", "deep_tree_echo.config", False),
    ],
)
def test_the_rule_check_tells_allowed_from_forbidden(
    importer: str, imported: str, allowed: bool
) -> None:
    assert (rule_violation(importer, imported, None) is None) is allowed


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_imports_inside_functions_count_and_type_checking_ones_do_not() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from deep_tree_echo.server.app import create_app\n"
        "def f():\n"
        "    from deep_tree_echo.observability import monitor\n"
        "    return monitor\n"
    )
    name = "deep_tree_echo.resilience._probe"
    found = imports_in(source, name)
    assert [(m, n) for m, _, n in found] == [("deep_tree_echo.observability", "monitor")]
    assert rule_violation(name, "deep_tree_echo.observability", "monitor") is not None
