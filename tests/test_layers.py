"""The package's layers: each module imports only from its own layer or the layers below, there
are no import circles, and imports inside functions (lazy imports) are kept to the top layer.

    L0  errors, config, skeleton, device, output_paths, helpers (files, tensors, malloc, version)
    L1  codecs, data, losses, metrics, viz, temporal, multiview
    L2  models
    L3  checkpoint
    L4  inference, export
    L5  training
    L6  commands, cli, __main__, the package root (the public API)

Every module must fall under a row of :data:`LAYERS`, so a new module cannot dodge the rule.
Imports of optional third-party packages inside functions are fine anywhere; only keypointer
imports are checked.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import keypointer

LAYERS: dict[str, int] = {
    "keypointer.version": 0,
    "keypointer.files": 0,
    "keypointer.tensors": 0,
    "keypointer.malloc": 0,
    "keypointer.errors": 0,
    "keypointer.config": 0,
    "keypointer.skeleton": 0,
    "keypointer.device": 0,
    "keypointer.output_paths": 0,
    "keypointer.codecs": 1,
    "keypointer.data": 1,
    "keypointer.losses": 1,
    "keypointer.metrics": 1,
    "keypointer.viz": 1,
    "keypointer.temporal": 1,
    "keypointer.multiview": 1,
    "keypointer.models": 2,
    "keypointer.checkpoint": 3,
    "keypointer.inference": 4,
    "keypointer.export": 4,
    "keypointer.training": 5,
    "keypointer.commands": 6,
    "keypointer.cli": 6,
    "keypointer.__main__": 6,
    "keypointer": 6,  # the package root only: every submodule needs its own row above
}
TOP = max(LAYERS.values())
ROOT = Path(keypointer.__file__).parent

Sources = dict[str, tuple[str, bool]]  # module name -> (source text, is a package __init__)


def package_sources(root: Path = ROOT) -> Sources:
    out: Sources = {}
    for f in sorted(root.rglob("*.py")):
        parts = f.relative_to(root.parent).with_suffix("").parts
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (f.read_text(encoding="utf-8"), is_pkg)
    return out


def layer_of(module: str) -> int | None:
    """The layer of the longest row of LAYERS that is ``module`` or a package above it; the
    root's row covers only the root itself."""
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if module == prefix or (prefix != "keypointer" and module.startswith(prefix + ".")):
            return LAYERS[prefix]
    return None


def imports(module: str, source: str, is_pkg: bool, known: set[str]) -> list[tuple[str, bool, int]]:
    """(imported keypointer module, inside a function, line) for each import in ``source``;
    the most specific known module an import names counts (``from a import b`` -> ``a.b``)."""
    tree = ast.parse(source)
    inside = {
        id(node)
        for fn in ast.walk(tree)
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for node in ast.walk(fn)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            names = [prefix] + [f"{prefix}.{a.name}" for a in node.names]
        else:
            continue
        targets = [n for n in names if n in known and n != module]
        if targets:
            found.append((max(targets, key=len), id(node) in inside, node.lineno))
    return found


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                group = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    group.append(w)
                    if w == v:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def problems(sources: Sources) -> list[str]:
    """Every breach of the layering rules in ``sources``, as readable lines."""
    out = [f"{m}: no layer (add it to LAYERS)" for m in sources if layer_of(m) is None]
    graph: dict[str, set[str]] = {m: set() for m in sources}
    for module, (text, is_pkg) in sources.items():
        here = layer_of(module)
        for target, local, line in imports(module, text, is_pkg, set(sources)):
            graph[module].add(target)
            there = layer_of(target)
            if here is not None and there is not None and there > here:
                out.append(f"{module}:{line} imports {target} (layer {there} > {here})")
            if local and here != TOP:
                out.append(f"{module}:{line} imports {target} inside a function")
    out += [f"import circle: {' -> '.join(c)}" for c in circles(graph)]
    return out


def private(name: str) -> bool:
    """``_x`` is private to its module; dunders (``__version__``) and ``__init__`` are not."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_imports(sources: Sources) -> list[str]:
    """Each import of a private keypointer name (a ``_x`` function, class, constant or
    module) by another module: what a module shares must have a public name."""
    out = []
    for module, (text, _) in sources.items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("keypointer"):
                path = node.module.split(".") + [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                path = [
                    p
                    for a in node.names
                    if a.name.startswith("keypointer")
                    for p in a.name.split(".")
                ]
            else:
                continue
            if any(private(p) for p in path):
                out.append(f"{module}:{node.lineno} imports a private name: {'.'.join(path)}")
    return out


def test_the_package_keeps_its_layers():
    assert problems(package_sources()) == []


def test_no_module_imports_another_modules_private_names():
    assert private_imports(package_sources()) == []


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("from keypointer.metrics.oks import _boxes\n", "keypointer.metrics.oks._boxes"),
        ("from keypointer._files import atomic\n", "keypointer._files.atomic"),
        ("import keypointer.data._dlc_csv\n", "keypointer.data._dlc_csv"),
        ("from keypointer.config import __doc__\n", None),  # a dunder is no private name
    ],
)
def test_the_checker_catches_a_private_import(text, named):
    sources = package_sources()
    sources["keypointer.models.fake"] = (text, False)
    found = private_imports(sources)
    assert found == ([f"keypointer.models.fake:1 imports a private name: {named}"] if named else [])


@pytest.mark.parametrize(
    ("module", "text", "expected"),
    [
        ("keypointer.models.fake", "from keypointer.training import loop\n", "layer 5 > 2"),
        ("keypointer.data.fake", "import keypointer.checkpoint\n", "layer 3 > 1"),
        (
            "keypointer.models.fake",
            "def f():\n    from keypointer.codecs import make_codec\n",
            "inside a function",
        ),
        ("keypointer.newroom", "x = 1\n", "no layer"),
        ("keypointer.errors", "from keypointer.config import Config\n", "import circle"),
    ],
)
def test_the_checker_catches_a_forbidden_import(module, text, expected):
    sources = package_sources()
    sources[module] = (text, False)
    found = problems(sources)
    assert any(expected in line for line in found), found


def test_circles_finds_a_loop_and_nothing_else():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []
