"""Import layering (DESIGN.md §3), read from the source: each layer imports only the layers below
it, no two modules share a name, every command lives in cli/, and there are no import cycles."""
import ast
from collections import Counter
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "diffsep"
# bottom to top; a module may import its own layer and the layers before it
LAYERS = ("core", "nets", "samplers", "families", "storage", "data", "config", "inference", "evaluation",
          "training", "bench", "cli")
SHIMS = {"diffsep", "diffsep.__main__", "diffsep.bench.__main__"}  # entry points and lazy exports


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def diffsep_imports(path: Path) -> set[str]:
    """Every diffsep module ``path`` imports, at top level or inside functions."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "diffsep"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] == "diffsep":
                found.add(mod)
                found |= {f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in MODULES}
    return found


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_module_sits_in_a_layer():
    assert [m for m in MODULES if layer(m) is None and m not in SHIMS] == []


def test_the_import_reader_resolves_relative_imports():
    assert "diffsep.core.sde" in diffsep_imports(MODULES["diffsep.families.score_matching"])
    assert "diffsep.samplers" in diffsep_imports(MODULES["diffsep.families.diffsep"])


@pytest.mark.parametrize("name", [m for m in MODULES if m not in SHIMS])
def test_a_module_imports_only_its_own_layer_and_the_ones_below(name):
    up = {m for m in diffsep_imports(MODULES[name]) if (layer(m) or 0) > layer(name)}
    assert not up, f"{name} ({LAYERS[layer(name)]}) imports from above: {sorted(up)}"


def test_core_imports_nothing_of_diffsep_outside_core():
    for name in (m for m in MODULES if layer(m) == 0):
        assert all(m.startswith("diffsep.core") for m in diffsep_imports(MODULES[name])), name


def test_no_two_modules_share_a_name():
    leaves = Counter(m.rsplit(".", 1)[-1] for m in MODULES if m not in SHIMS and not MODULES[m].name == "__init__.py")
    assert [n for n, c in leaves.items() if c > 1] == []


def test_there_are_no_import_cycles():
    graph = {m: {i for i in diffsep_imports(p) if i in MODULES and i != m} for m, p in MODULES.items()
             if m not in SHIMS}
    done, stack = set(), []

    def visit(m):
        if m in stack:
            raise AssertionError(" -> ".join(stack[stack.index(m):] + [m]))
        if m in done:
            return
        stack.append(m)
        for n in graph.get(m, ()):
            if not n.endswith("__init__") and MODULES[n].name != "__init__.py":
                visit(n)
        stack.pop()
        done.add(m)

    for m in graph:
        visit(m)


def test_every_command_lives_in_cli():
    """Only cli/ (and the shims) parse command lines."""
    parsers = [m for m, p in MODULES.items() if "ArgumentParser(" in p.read_text()
               and layer(m) != LAYERS.index("cli") and m not in SHIMS]
    assert parsers == []
