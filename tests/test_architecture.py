"""The package's shape: no import cycle, no private cross-module imports, bounded function sizes.

These read the source with :mod:`ast` (nothing is imported), so they hold for every backend.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
TREES = [SRC, ROOT / "integrations" / "langchain", ROOT / "integrations" / "llamaindex"]
MAX_FUNCTION_LINES = 80
MAX_CLASS_LINES = 400


def _sources() -> Iterator[Path]:
    for tree in TREES:
        yield from sorted(p for p in tree.rglob("*.py") if "build" not in p.parts)


def _module_name(path: Path) -> str:
    for tree in TREES:
        if path.is_relative_to(tree):
            parts = list(path.relative_to(tree).with_suffix("").parts)
            break
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module, module: str, is_package: bool) -> Iterator[str]:
    """Every module ``module`` may import, lazily inside functions too (not for type checking)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if _is_type_checking(node):
            continue
        stack.extend(ast.iter_child_nodes(node))
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module.split(".") if is_package else module.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join([*pkg, base] if base else pkg)
            yield base
            yield from (f"{base}.{a.name}" for a in node.names)


def _graph() -> dict[str, set[str]]:
    """Module -> the project's modules it imports; a package's own submodules are left out
    (a package importing them is how it re-exports, and they import it back by name)."""
    files = {_module_name(p): p for p in _sources()}
    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        deps = set(_imports(ast.parse(path.read_text(encoding="utf-8")), mod, path.name == "__init__.py"))
        graph[mod] = {d for d in deps if d in files and d != mod and not d.startswith(mod + ".")}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def test_no_import_cycles() -> None:
    assert not _cycles(_graph())


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_private_names_imported_across_modules() -> None:
    offenders = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        offenders.append(f"{path.relative_to(ROOT)}: {node.module}.{alias.name}")
    assert not offenders, offenders


def _definitions() -> Iterator[tuple[Path, ast.AST]]:
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                yield path, node


def _is_argparse_builder(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Attribute) and n.attr == "add_argument" for n in ast.walk(node))


@pytest.mark.parametrize("kind", ["function", "class"])
def test_definitions_stay_short(kind: str) -> None:
    long = []
    for path, node in _definitions():
        lines = node.end_lineno - node.lineno + 1
        if kind == "class" and isinstance(node, ast.ClassDef) and lines > MAX_CLASS_LINES:
            long.append(f"{path.relative_to(ROOT)}:{node.lineno} class {node.name} ({lines} lines)")
        elif (kind == "function" and not isinstance(node, ast.ClassDef) and lines > MAX_FUNCTION_LINES
              and not _is_argparse_builder(node)):
            long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


def test_every_module_says_what_it_owns() -> None:
    missing = [
        str(p.relative_to(ROOT)) for p in _sources()
        if p.stat().st_size and ast.get_docstring(ast.parse(p.read_text(encoding="utf-8"))) is None
    ]
    assert not missing, missing
