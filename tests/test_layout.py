"""The shape of the code: dependency direction without cycles, small modules, short signatures,
and no reference to files outside the repository. Read from the source with `ast`, so it fails on
a lazy (function-level) import as much as on a top-level one."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# folder -> import name (pyproject's package-dir)
PACKAGES = {"msfkit": "msfkit", "models": "msfkit.models", "training": "msfkit.training", "cli": "msfkit.cli"}
# Lower layers never import higher ones; rooms of one layer never import each other.
LAYERS = [
    ("msfkit._version",),
    ("msfkit.models",),
    ("msfkit.runtime",),
    ("msfkit.data",),
    ("msfkit.store",),
    ("msfkit.embedding", "msfkit.index"),
    ("msfkit.retrieval", "msfkit.eval"),
    ("msfkit",),  # the public API (msfkit/__init__.py)
    ("msfkit.training", "msfkit.serve"),
    ("msfkit.cli",),
]
MAX_LINES = 300
MAX_POSITIONAL = 6


def _modules() -> dict[str, Path]:
    out = {}
    for folder, name in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            out[".".join((name, *parts))] = path
    return out


MODULES = _modules()


def _room(module: str) -> str:
    """The longest LAYERS entry that `module` is, or is inside."""
    names = [n for layer in LAYERS for n in layer if module == n or module.startswith(n + ".")]
    return max(names, key=len)


def _layer(module: str) -> int:
    room = _room(module)
    return next(i for i, layer in enumerate(LAYERS) if room in layer)


def _imports(module: str, path: Path) -> set[str]:
    """The msfkit modules `module` imports anywhere in its file (resolved to modules of MODULES)."""
    found = set()
    tree = ast.parse(path.read_text())
    guards = [b for b in ast.walk(tree) if isinstance(b, ast.If) and "TYPE_CHECKING" in ast.unparse(b.test)]
    typing_only = {id(n) for block in guards for n in ast.walk(block)}  # annotations only, never run
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name in MODULES and name != module:
                found.add(name)
    return found


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_follow_the_dependency_direction(module):
    own, room = _layer(module), _room(module)
    for target in GRAPH[module]:
        if _room(target) == room:
            continue  # a room importing its own modules
        other = _layer(target)
        assert other < own or _room(target) == room, f"{module} imports {target} (layer {other} >= {own})"


def test_there_is_no_import_cycle():
    # Package __init__ files re-export their room's modules; an edge into a package stands for
    # what it re-exports, so cycles are looked for between plain modules.
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for t in sorted(GRAPH[m]):
            if MODULES[t].name == "__init__.py" or MODULES[m].name == "__init__.py":
                continue
            if state.get(t) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*stack, m, t]))
            if t not in state:
                visit(t, [*stack, m])
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m, [])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_are_small(module):
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{module}: {lines} lines"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_function_takes_many_positional_parameters(module):
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = [a.arg for a in node.args.posonlyargs + node.args.args if a.arg not in ("self", "cls")]
            if module.startswith("msfkit.cli") and any(isinstance(d, ast.Call) for d in node.decorator_list):
                continue  # click passes every option by keyword
            assert len(args) <= MAX_POSITIONAL, f"{module}.{node.name} takes {len(args)} positional: {args}"


def test_nothing_points_outside_the_repository():
    files = [p for p in ROOT.rglob("*") if p.suffix in (".py", ".md", ".sh", ".toml") and p.is_file()]
    files = [p for p in files if not {".venv", "data", "demo_out", ".git"} & set(p.relative_to(ROOT).parts)]
    pattern = re.compile(r"\b(MSF|DESIGN|STYLE)\.md\b|\.\./shared\b")
    offenders = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in files
        if p != Path(__file__).resolve()
        for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
        if pattern.search(line)
    ]
    assert not offenders, offenders


def test_the_dependency_rule_catches_a_wrong_import(tmp_path):
    """The rule above is not vacuous: the store importing the index is refused."""
    assert _layer("msfkit.store.reader") < _layer("msfkit.index.build")
    assert _room("msfkit.embedding.run") != _room("msfkit.index.build")
    assert _layer("msfkit.embedding.run") == _layer("msfkit.index.build")  # siblings: neither may import
