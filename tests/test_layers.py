"""The house: each layer imports only the layers below it, and no module imports itself back
through others. Lazy imports inside functions count too (they are still a dependency)."""

from __future__ import annotations

import ast
from pathlib import Path

import gsid

SRC = Path(gsid.__file__).parent
# lowest first; a module may import its own layer and those before it
LAYERS = [
    {"errors", "_io", "_progress", "_options", "_device", "_optim", "__init__"},
    {"data"},
    {"text"},
    {"ids"},
    {"models"},
    {"retrieval"},
    {"eval"},
    {"cli", "serve"},
]


def layer_of(module: str) -> int:
    top = module.split(".")[1] if module.count(".") else "__init__"
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"gsid.{top} is in no layer: add it to LAYERS (and to the docs)")


def modules() -> dict[str, Path]:
    out = {}
    for f in SRC.rglob("*.py"):
        rel = f.relative_to(SRC.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def imports(path: Path, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("gsid")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gsid"):
            found.add(node.module)
    return found


def test_no_upward_import():
    bad = []
    for name, path in modules().items():
        if name == "gsid":
            continue
        for imp in imports(path):
            if imp != "gsid" and layer_of(imp) > layer_of(name):
                bad.append(f"{name} imports {imp}")
    assert not bad, "upward imports:\n" + "\n".join(sorted(bad))


def test_no_import_cycle_between_modules():
    mods = modules()
    graph = {
        name: {i for i in imports(path, top_level_only=True) if i in mods and i != name}
        for name, path in mods.items()
    }
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_every_package_has_a_layer():
    for name in modules():
        if name != "gsid":
            layer_of(name)
