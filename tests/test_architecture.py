"""The package's layers only point down, and no two modules import each other (even lazily).

Layers, bottom to top: settings, atomic (file writes) and schema -> data -> models -> evaluate -> infer -> train ->
serve -> demo -> cli (-> __main__, ``python -m facekeypoints``). A module may import its own package and any layer below it. Imports inside
functions count too: hiding a cycle in a function is still a cycle.
"""
import ast
from pathlib import Path

import facekeypoints

PACKAGE = Path(facekeypoints.__file__).parent
# train above infer: a teacher finds and frames the faces of unlabelled photos (train/pseudo.py); infer never
# imports train (running a model needs no training code)
LAYERS = ["settings", "schema", "data", "models", "evaluate", "infer", "train", "serve", "demo", "cli"]
RANK = {"settings": 0, "schema": 0, "atomic": 0, **{name: i for i, name in enumerate(LAYERS) if i > 1}, "__main__": len(LAYERS)}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str, modules: set[str]) -> set[str]:
    """facekeypoints modules imported anywhere in the file (``from pkg import mod`` resolved to pkg.mod)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("facekeypoints")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base.startswith("facekeypoints"):
                found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
    return found - {name}


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: _imports(path, name, set(files)) for name, path in files.items()}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_layers_only_point_down():
    wrong = []
    for module, imported in _graph().items():
        if _layer(module) == "__init__":
            continue  # the top-level package re-exports the public API
        for target in imported:
            if _layer(target) != _layer(module) and RANK.get(_layer(target), 99) > RANK[_layer(module)]:
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports that point up a layer:\n" + "\n".join(sorted(wrong))


def test_inference_never_imports_training():
    leaks = [f"{m} -> {t}" for m, ts in _graph().items() for t in ts
             if _layer(m) in ("infer", "serve") and _layer(t) in ("train", "evaluate")]
    assert not leaks, leaks


def test_no_import_cycles_between_modules():
    graph = _graph()
    # a package's __init__ importing its own submodules is how it re-exports them, not a cycle
    edges = {m: {t for t in ts if not (m.startswith(t + ".") and t in graph)} for m, ts in graph.items()}
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_checker_sees_real_imports():
    """Guards the two tests above against passing vacuously."""
    graph = _graph()
    assert "facekeypoints.models.card" in graph["facekeypoints.models.checkpoint"]
    assert "facekeypoints.data.framing" in graph["facekeypoints.data.convert"]
    assert any(t.startswith("facekeypoints.train") for t in graph["facekeypoints.cli"])  # a lazy import counts
