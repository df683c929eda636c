"""The package's layers, checked on its source: imports point down, modules and functions stay
short, and no private name crosses a module boundary."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import REPO

PACKAGE = REPO / "tumor_model"
# Bottom to top; a module may import from its own layer or any layer below.
LAYERS = (
    {"config", "errors", "progress", "artifacts", "metrics", "model"},
    {"io"},
    {"serving", "training"},
    {"evaluation"},
    {"site"},
    {"release"},
    {"commands", "dashboard"},
)
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 60


def layer_of(module: str) -> int:
    """The layer of a dotted module name under tumor_model (the package root: the top)."""
    parts = module.split(".")
    if parts == ["tumor_model"] or parts[1] in ("__main__", "__init__"):
        return len(LAYERS)
    for i, names in enumerate(LAYERS):
        if parts[1] in names:
            return i
    raise AssertionError(f"{module}: in no layer; add it to LAYERS")


def sources(*folders: str):
    for folder in folders:
        yield from sorted((REPO / folder).rglob("*.py"))


def dotted(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts)


def imported(tree: ast.AST):
    """(module, names) of every `from tumor_model... import` and `import tumor_model...`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tumor_model"):
            yield node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("tumor_model"):
                    yield alias.name, []


def test_imports_point_down():
    wrong = []
    for path in sources("tumor_model"):
        here = layer_of(dotted(path))
        for module, names in imported(ast.parse(path.read_text())):
            targets = [f"{module}.{n}" for n in names] if module == "tumor_model" else [module]
            for target in targets:
                if layer_of(target) > here:
                    wrong.append(f"{dotted(path)} imports {target}")
    assert wrong == []


def test_modules_and_functions_stay_short():
    long = []
    for path in sources("tumor_model", "app"):
        text = path.read_text()
        if text.count("\n") > MAX_MODULE_LINES:
            long.append(f"{path.relative_to(REPO)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                parser = node.name.endswith("parser") or node.name == "add_parsers"
                if lines > MAX_FUNCTION_LINES and not parser:
                    long.append(f"{path.relative_to(REPO)}:{node.name}: {lines} lines")
    assert long == []


@pytest.mark.parametrize("folder", ["tumor_model", "tests", "experiments", "benchmarks", "app"])
def test_no_private_name_is_imported_across_modules(folder):
    crossing = []
    for path in sources(folder):
        for module, names in imported(ast.parse(path.read_text())):
            crossing += [f"{path.relative_to(REPO)}: {module}.{n}" for n in names if n[0] == "_"]
            if any(part.startswith("_") and part != "__main__" for part in module.split(".")):
                crossing.append(f"{path.relative_to(REPO)}: {module}")
    assert crossing == []


def test_one_public_function_per_name_run():
    runs = [
        dotted(p)
        for p in sources("tumor_model")
        for node in ast.parse(p.read_text()).body
        if isinstance(node, ast.FunctionDef) and node.name == "run"
    ]
    assert len(runs) <= 1, runs
