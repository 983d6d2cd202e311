"""Import layering (DESIGN.md §3), read from the source: math modules import nothing of diffsep,
no library module imports a command line, separation does not reach up to checkpoints, configs,
data or model building."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "diffsep"
MATH = ("sde", "spectral", "pit", "normalization")


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
                found |= {f"{mod}.{a.name}" for a in node.names
                          if (PACKAGE.parent / f"{mod}.{a.name}".replace(".", "/")).with_suffix(".py").exists()}
    return found


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def test_the_import_reader_resolves_relative_imports():
    assert "diffsep.sde" in diffsep_imports(MODULES["diffsep.loss"])
    assert "diffsep.sampler" in diffsep_imports(MODULES["diffsep.families.diffsep"])


@pytest.mark.parametrize("name", MATH)
def test_math_modules_import_nothing_of_diffsep(name):
    assert diffsep_imports(MODULES[f"diffsep.{name}"]) == set()


def test_sampler_and_loss_sit_on_the_math_modules_only():
    allowed = {f"diffsep.{m}" for m in MATH}
    assert diffsep_imports(MODULES["diffsep.sampler"]) <= allowed
    assert diffsep_imports(MODULES["diffsep.loss"]) <= allowed | {"diffsep.metrics"}


@pytest.mark.parametrize("name", [n for n in MODULES if not n.startswith("diffsep.cli")
                                  and n != "diffsep.evaluate"])
def test_no_library_module_imports_a_command_line(name):
    assert not {m for m in diffsep_imports(MODULES[name]) if m.startswith("diffsep.cli")}


def test_separation_depends_on_math_only():
    imports = diffsep_imports(MODULES["diffsep.separation"])
    assert imports <= {"diffsep.normalization", "diffsep.pit"}, imports


def test_config_is_below_everything_but_the_sampler_settings():
    assert diffsep_imports(MODULES["diffsep.config"]) == {"diffsep.sampler"}
