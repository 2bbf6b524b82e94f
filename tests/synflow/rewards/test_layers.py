"""The modules of ``synflow.rewards`` import one way: down the layers, never in a cycle.

Every import statement is read with ``ast`` (top level, inside functions, under ``TYPE_CHECKING``,
in ``try`` blocks) and so is ``importlib.import_module("synflow.rewards....")`` with a literal name.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = "synflow.rewards"
ROOT = Path(__file__).resolve().parents[3] / "synflow" / "rewards"

# Bottom first. A module may import modules of its own layer (without a cycle) and of lower layers.
LAYERS: list[tuple[str, frozenset[str]]] = [
    ("results", frozenset({"results", "errors"})),
    ("schemas", frozenset({"tagged", "transforms", "components", "config", "registry"})),
    ("scorers", frozenset({"base", "chem", "pharm2d", "molecular", "pmo", "docking", "plugins",
                             "assay", "alerts", "purchasable", "poses"})),
    ("factory", frozenset({"factory"})),
    ("engine", frozenset({"reward"})),
    ("package", frozenset({"__init__"})),
]
# Layers side by side rather than stacked: neither imports the other (only the factory knows both,
# so scorers take plain settings and configs never build scorers).
INDEPENDENT = {frozenset({"schemas", "scorers"})}


def layer_of(module: str) -> int:
    return next(i for i, (_, modules) in enumerate(LAYERS) if module in modules)


def modules() -> list[str]:
    return sorted(p.stem for p in ROOT.glob("*.py"))


def parse(module: str) -> ast.Module:
    return ast.parse((ROOT / f"{module}.py").read_text(), filename=f"{module}.py")


def resolve(dotted: str) -> str | None:
    """The module of this package ``dotted`` names (``__init__`` for the package), else None."""
    if dotted == PACKAGE:
        return "__init__"
    if dotted.startswith(PACKAGE + "."):
        return dotted[len(PACKAGE) + 1:].split(".")[0]
    return None


def absolute(node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = PACKAGE.split(".")[: len(PACKAGE.split(".")) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def imported(node: ast.AST, package_modules: set[str]) -> Iterator[str]:
    """Modules of this package that one node imports."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if (target := resolve(alias.name)) is not None:
                yield target
    elif isinstance(node, ast.ImportFrom):
        source = absolute(node)
        if source == PACKAGE:  # `from synflow.rewards import x`: a submodule or a package name
            for alias in node.names:
                yield alias.name if alias.name in package_modules else "__init__"
        elif (target := resolve(source)) is not None:
            yield target
    elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        value = node.args[0].value
        if name in {"import_module", "__import__"} and isinstance(value, str):
            yield from filter(None, [resolve(value)])


def graph() -> dict[str, set[str]]:
    names = set(modules())
    return {
        m: {t for node in ast.walk(parse(m)) for t in imported(node, names) if t != m} for m in names
    }


def test_every_module_has_exactly_one_layer() -> None:
    placed = [m for _, layer in LAYERS for m in layer]
    assert len(placed) == len(set(placed)), "a module is listed in two layers"
    assert set(placed) == set(modules())


def test_imports_only_go_down() -> None:
    wrong = []
    for module, targets in graph().items():
        for target in sorted(targets):
            here, there = LAYERS[layer_of(module)][0], LAYERS[layer_of(target)][0]
            if layer_of(target) > layer_of(module) or frozenset({here, there}) in INDEPENDENT:
                wrong.append(f"{module} ({here}) imports {target} ({there})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles() -> None:
    edges = graph()
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        path.append(module)
        for target in sorted(edges[module]):
            if state.get(target) == "open":
                return [*path[path.index(target):], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[module] = "done"
        path.pop()
        return None

    for module in sorted(edges):
        if module not in state:
            cycle = visit(module)
            assert cycle is None, " -> ".join(cycle)


def test_package_imports_sit_at_module_top_level() -> None:
    """No imports of this package's modules inside functions or ``if TYPE_CHECKING:`` blocks."""
    names = set(modules())
    nested = []
    for module in sorted(names):
        tree = parse(module)
        top = {id(node) for node in tree.body}
        nested += [
            f"{module}.py:{node.lineno} imports {target}"
            for node in ast.walk(tree) if id(node) not in top
            for target in imported(node, names)
        ]
    assert not nested, "\n".join(nested)


def test_the_checker_sees_nested_and_relative_imports() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from synflow.rewards.reward import Reward\n"
        "def f():\n    from .factory import build_scorer\n    import synflow.rewards.pmo\n"
        "    from synflow.rewards import docking, RewardConfig\n"
        "    importlib.import_module('synflow.rewards.plugins')\n"
    )
    found = [t for node in ast.walk(ast.parse(source)) for t in imported(node, set(modules()))]
    assert sorted(found) == ["__init__", "docking", "factory", "plugins", "pmo", "reward"]


@pytest.mark.parametrize("heavy", ["torch", "meeko"])
def test_importing_the_package_is_light(heavy: str) -> None:
    code = f"import synflow.rewards, sys; assert {heavy!r} not in sys.modules, 'imported {heavy}'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT.parents[1])
