"""The shape of the code: dependency direction without cycles, small modules, short signatures,
and no reference to files outside the repository. Read from the source with `ast`, so it fails on
a lazy (function-level) import as much as on a top-level one."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# folder -> import name (pyproject's package-dir)
PACKAGES = {"msfkit": "msfkit", "models": "msfkit.models", "training": "msfkit.training", "cli": "msfkit.cli"}
# Lower layers never import higher ones; rooms of one layer never import each other.
LAYERS = [
    ("msfkit._version", "msfkit._cache"),  # the version; the cache folder, named with os alone
    ("msfkit.models",),
    ("msfkit.runtime", "msfkit.sizes", "msfkit.cluster"),  # torchrun ranks; bytes and the cache; Ray
    ("msfkit.data",),
    ("msfkit.store",),
    ("msfkit.embedding", "msfkit.index"),
    ("msfkit.outputs",),  # the output guard: knows every folder kind msfkit writes (store, index, model)
    ("msfkit.retrieval", "msfkit.eval", "msfkit.curate"),
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


def _typing_only(tree: ast.Module) -> set[int]:
    """The ids of the nodes under `if TYPE_CHECKING:` (annotations only, never run)."""
    guards = [b for b in ast.walk(tree) if isinstance(b, ast.If) and "TYPE_CHECKING" in ast.unparse(b.test)]
    return {id(n) for block in guards for n in ast.walk(block)}


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    """What an import statement names: its modules, or for `from` the module and module.name."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    return [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]


def _imports(module: str, path: Path) -> set[str]:
    """The msfkit modules `module` imports anywhere in its file (resolved to modules of MODULES)."""
    tree = ast.parse(path.read_text())
    typing_only = _typing_only(tree)
    nodes = [
        n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) and id(n) not in typing_only
    ]
    return {name for node in nodes for name in _imported(node) if name in MODULES and name != module}


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def _wrong_imports(module: str, targets: set[str]) -> list[str]:
    """The imports of `module` (among `targets`) that go against LAYERS: into a higher layer, or into
    another room of its own layer."""
    own, room = _layer(module), _room(module)
    wrong = [t for t in sorted(targets) if _room(t) != room and _layer(t) >= own]
    return [f"{module} imports {t} (layer {_layer(t)} >= {own})" for t in wrong]


def _cycle(graph: dict[str, set[str]], packages: set[str]) -> list[str]:
    """One import cycle of `graph` as a path (empty when there is none). Package __init__ files
    (`packages`) re-export their room's modules; an edge into a package stands for what it
    re-exports, so cycles are looked for between plain modules."""
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> list[str]:
        state[m] = 1
        for t in sorted(graph[m] - packages):
            if state.get(t) == 1:
                return [*stack, m, t]
            found = visit(t, [*stack, m]) if t not in state else []
            if found:
                return found
        state[m] = 2
        return []

    for m in sorted(set(graph) - packages):
        found = visit(m, []) if m not in state else []
        if found:
            return found
    return []


PACKAGE_INITS = {m for m, path in MODULES.items() if path.name == "__init__.py"}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_follow_the_dependency_direction(module):
    assert not _wrong_imports(module, GRAPH[module])


def test_there_is_no_import_cycle():
    assert not _cycle(GRAPH, PACKAGE_INITS), "import cycle: " + " -> ".join(_cycle(GRAPH, PACKAGE_INITS))


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
    """The rules above are not vacuous: a store module importing the index, even lazily inside a
    function, is refused, and so is a room importing a sibling room; imports from its own room, from
    lower layers and under TYPE_CHECKING pass; a cycle between plain modules is found."""
    source = tmp_path / "reader.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n\n"
        "from msfkit.data import open_location\n"  # a lower layer
        "from msfkit.store import Store\n\n"  # its own room
        "if TYPE_CHECKING:\n"
        "    from msfkit.retrieval import Index\n\n"  # for annotations only: never run
        "def index_of(store):\n"
        "    from msfkit.index import build_index\n"  # a higher layer, lazily
    )
    imports = _imports("msfkit.store.reader", source)
    assert imports == {"msfkit.data", "msfkit.store", "msfkit.index"}
    layers = f"layer {_layer('msfkit.index')} >= {_layer('msfkit.store.reader')}"
    assert _wrong_imports("msfkit.store.reader", imports) == [
        f"msfkit.store.reader imports msfkit.index ({layers})"
    ]
    assert _wrong_imports("msfkit.embedding.run", {"msfkit.index.build"})  # siblings: neither may import
    assert not _wrong_imports("msfkit.cli.search", {"msfkit", "msfkit.cli.common", "msfkit.models"})
    graph = {"a": {"b"}, "b": {"c", "pkg"}, "c": {"a"}, "pkg": {"a"}}
    assert _cycle(graph, {"pkg"}) == ["a", "b", "c", "a"]
    assert _cycle({**graph, "c": set()}, {"pkg"}) == []  # a -> b -> pkg -> a only through a package


# Imports sit at the top of library modules (README, "The code"). Deferral has one place, where a
# user comes in: msfkit.cli's command modules import the library inside their commands, and the
# public API (msfkit/__init__.py) inside its functions, so `msfkit --help` and `import msfkit` stay
# light. Inside a library function only four kinds of import may be deferred, each on a marked line:
# an optional extra (pyproject's optional-dependencies, or an msfkit module that imports one),
# marked `# optional extra: NAME`; the model side (torch, torchvision, or an msfkit module that
# loads them) on a path that often needs no model, such as a search by store rows, marked
# `# loads torch`, so that such a path never pays seconds of torch import; and the Hub client
# (huggingface_hub, or an msfkit module that loads it) where only a Hub id or a push needs it,
# marked `# loads the Hub client`, so that a local model folder never pays its 0.3 s; and pandas (or
# an msfkit module that imports it) where a DataFrame is made, on a path that often needs none, such
# as a search's hits printed by the command, marked `# loads pandas`, so that a search never pays its 0.2 s.
OPTIONAL_EXTRAS = {
    "ray",
    "fsspec",
    "s3fs",
    "onnx",
    "onnxruntime",
    "starlette",
    "uvicorn",
    "multipart",
    "umap",
}
MODEL_SIDE = {"torch", "torchvision"}
HUB_CLIENT = {"huggingface_hub"}
PANDAS = {"pandas"}
LAZY_API = "msfkit"


def _deferred_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """The imports inside functions (run on call, not on import), except those under TYPE_CHECKING."""
    typing_only = _typing_only(tree)
    functions = [
        f for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
    ]
    found = {id(n): n for f in functions for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
    return sorted((n for i, n in found.items() if i not in typing_only), key=lambda n: n.lineno)


@functools.cache
def _needs_extra(module: str) -> bool:
    """Whether `module` imports an optional extra when it is imported (itself or through msfkit modules)."""
    return _reaches(module, frozenset(OPTIONAL_EXTRAS), set())


@functools.cache
def _loads_torch(module: str) -> bool:
    """Whether importing `module` imports torch or torchvision (itself or through msfkit modules)."""
    return _reaches(module, frozenset(MODEL_SIDE), set())


@functools.cache
def _loads_hub(module: str) -> bool:
    """Whether importing `module` imports huggingface_hub (itself or through msfkit modules)."""
    return _reaches(module, frozenset(HUB_CLIENT), set())


@functools.cache
def _loads_pandas(module: str) -> bool:
    """Whether importing `module` imports pandas (itself or through msfkit modules)."""
    return _reaches(module, frozenset(PANDAS), set())


def _reaches(module: str, roots: frozenset[str], seen: set[str]) -> bool:
    """A depth-first walk of the modules imported at the top, each visited once: does one of them
    import a package of `roots`?"""
    seen.add(module)
    tree = ast.parse(MODULES[module].read_text())
    names = [name for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)) for name in _imported(n)]
    if any(name.split(".")[0] in roots for name in names):
        return True
    return any(_reaches(m, roots, seen) for m in {name for name in names if name in MODULES} - seen)


def _wrong_deferrals(module: str, source: str) -> list[str]:
    """The function-level imports of library module `module` that the rule above refuses."""
    lines = source.splitlines()
    wrong = []
    for node in _deferred_imports(ast.parse(source)):
        names, line = _imported(node), lines[node.lineno - 1]
        extra = any(n.split(".")[0] in OPTIONAL_EXTRAS or (n in MODULES and _needs_extra(n)) for n in names)
        heavy = any(n.split(".")[0] in MODEL_SIDE or (n in MODULES and _loads_torch(n)) for n in names)
        hub = any(n.split(".")[0] in HUB_CLIENT or (n in MODULES and _loads_hub(n)) for n in names)
        frames = any(n.split(".")[0] in PANDAS or (n in MODULES and _loads_pandas(n)) for n in names)
        marked = {
            "# optional extra:": extra,
            "# loads torch": heavy,
            "# loads the Hub client": hub,
            "# loads pandas": frames,
        }
        lazy_api = module == LAZY_API and all(n.split(".")[0] == "msfkit" for n in names)
        if not (lazy_api or any(mark in line and kind for mark, kind in marked.items())):
            said = any(mark in line for mark in marked)
            wrong.append(f"{module}:{node.lineno}: {ast.unparse(node)}" + ("" if said else " (unmarked)"))
    return wrong


LIBRARY = sorted(m for m in MODULES if not m.startswith("msfkit.cli"))


@pytest.mark.parametrize("module", LIBRARY)
def test_library_modules_import_at_the_top(module):
    assert not _wrong_deferrals(module, MODULES[module].read_text())


def test_the_import_rule_catches_a_deferred_import():
    """faiss or an msfkit module imported inside a function is refused; an optional extra is allowed
    only when marked (ray itself, or msfkit.serve.app which imports starlette); so is the model side
    (an msfkit module that loads torch), never a light module so marked; and the Hub client, only
    under its own mark; imports at the top, under TYPE_CHECKING, and msfkit modules inside the public
    API's functions pass."""
    source = (
        "from typing import TYPE_CHECKING\n\n"
        "import numpy as np\n\n"
        "if TYPE_CHECKING:\n"
        "    import pandas as pd\n\n"
        "def f():\n"
        "    import faiss\n"
        "    from msfkit.store import open_store\n"
        "    import ray  # optional extra: ray\n"
        "    import ray.data\n"
        "    from msfkit.serve import app  # optional extra: serve\n"
        "    from msfkit.models.encoder import Encoder  # loads torch\n"
        "    from msfkit.store import Store  # loads torch\n"
        "    from huggingface_hub import snapshot_download  # loads the Hub client\n"
        "    from huggingface_hub import HfApi  # loads torch\n"
        "    import pandas as pd  # loads pandas\n"
        "    from msfkit.index.add import add_to_index  # loads pandas\n"
        "    from msfkit.index.folder import open_folder  # loads pandas\n"
        "    return lambda: __import__('os')\n"
    )
    assert _wrong_deferrals("msfkit.index.example", source) == [
        "msfkit.index.example:9: import faiss (unmarked)",
        "msfkit.index.example:10: from msfkit.store import open_store (unmarked)",
        "msfkit.index.example:12: import ray.data (unmarked)",
        "msfkit.index.example:15: from msfkit.store import Store",
        "msfkit.index.example:17: from huggingface_hub import HfApi",
        "msfkit.index.example:20: from msfkit.index.folder import open_folder",
    ]
    assert _wrong_deferrals(LAZY_API, source) == [
        "msfkit:9: import faiss (unmarked)",
        "msfkit:12: import ray.data (unmarked)",
        "msfkit:17: from huggingface_hub import HfApi",
    ]
    assert _loads_pandas("msfkit.index.add") and not _loads_pandas("msfkit.index.folder")
    assert _needs_extra("msfkit.serve.app") and not _needs_extra("msfkit.serve.backend")
    assert _loads_torch("msfkit.models.encoder") and not _loads_torch("msfkit.store")
    assert not _loads_hub("msfkit.models.encoder") and not _loads_hub("msfkit.outputs")
