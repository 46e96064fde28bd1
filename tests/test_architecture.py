"""The shape of the code: stage packages import only from earlier stages, no cycles, and the map says so.

docs/architecture.md is the one definition of the layers: this test reads its table, so the page and the code
cannot drift apart.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmulab.core.settings import PROJECT_ROOT

ARCHITECTURE = PROJECT_ROOT / "docs" / "architecture.md"
LONG_LINES = 400
_LAYER_ROW = re.compile(r"^\|\s*(\d+)\s*\|\s*([A-Za-z_]+)\s*\|", re.M)


def layers_of(text: str) -> dict[str, int]:
    """Package (or top-level module) name -> layer number, from the page's layer table."""
    return {name: int(number) for number, name in _LAYER_ROW.findall(text)}


def modules_under(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package at `root` (a package is its __init__)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(path: Path, module: str, known: dict[str, Path]) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import of the package's own modules, wherever it is in the file."""
    package = module.split(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == package:
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                yield node.lineno, f"relative import (write `from {package}...`)"
                continue
            if not node.module or node.module.split(".")[0] != package:
                continue
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                yield node.lineno, candidate if candidate in known else node.module


def unit_of(module: str) -> str:
    """The layer table's name for a module: its stage package, or a top-level module's own name."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def import_problems(root: Path, layers: dict[str, int]) -> list[str]:
    """Every import that goes up or sideways between layers, every module the table misses, every cycle."""
    known = modules_under(root)
    problems: list[str] = []
    graph: dict[str, set[str]] = {name: set() for name in known}
    for module, path in known.items():
        unit = unit_of(module)
        if unit != "__init__" and unit not in layers:
            problems.append(f"{module}: its package {unit!r} has no row in the layer table")
            continue
        for line, imported in imports_of(path, module, known):
            where = f"{path.relative_to(root.parent)}:{line}"
            if imported not in known:
                problems.append(f"{where}: {imported}")
                continue
            graph[module].add(imported)
            target = unit_of(imported)
            if unit == "__init__":
                problems.append(f"{where}: the package's __init__ imports {imported}")
            elif target != unit and (target == "__init__" or layers.get(target, 99) >= layers[unit]):
                problems.append(
                    f"{where}: {unit} (layer {layers[unit]}) imports {imported} (layer {layers.get(target)})"
                )
    problems += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph)]
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected knot, found by depth-first search (module -> what it imports)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_every_import_goes_to_an_earlier_layer_and_there_is_no_cycle() -> None:
    layers = layers_of(ARCHITECTURE.read_text())
    stages = {"core", "kconfig", "project", "build", "boot", "release", "buildroot", "pipeline", "lab", "cli"}
    assert stages <= set(layers)
    assert import_problems(PROJECT_ROOT / "mmulab", layers) == []


def test_the_page_names_every_module_and_every_named_module_exists() -> None:
    text = ARCHITECTURE.read_text()
    modules = {str(p.relative_to(PROJECT_ROOT)) for p in (PROJECT_ROOT / "mmulab").rglob("*.py")}
    named = set(re.findall(r"`(mmulab/[A-Za-z0-9_/]+\.py)`", text))
    unnamed = sorted(m for m in modules - named if not m.endswith("/__init__.py") or m == "mmulab/__init__.py")
    assert unnamed == [], "docs/architecture.md does not name these modules"
    assert sorted(named - modules) == [], "docs/architecture.md names modules that do not exist"


def test_a_module_over_400_lines_says_why_on_the_page() -> None:
    text = ARCHITECTURE.read_text()
    reasons = text.split("## Long modules", 1)[1]
    long = {
        str(p.relative_to(PROJECT_ROOT))
        for p in (PROJECT_ROOT / "mmulab").rglob("*.py")
        if len(p.read_text().splitlines()) > LONG_LINES
    }
    assert sorted(m for m in long if f"`{m}`" not in reasons) == []


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"core/a.py": "from pkg.build import b\n", "build/b.py": ""}, "core (layer 1) imports pkg.build.b (layer 4)"),
        (  # inside a function, a peer at the same layer
            {"release/r.py": "def f():\n    from pkg.buildroot.g import x\n", "buildroot/g.py": "x = 1\n"},
            "release (layer 6) imports pkg.buildroot.g (layer 6)",
        ),
        ({"build/a.py": "from pkg.build import b\n", "build/b.py": "import pkg.build.a\n"}, "import cycle"),
        ({"build/a.py": "from . import b\n", "build/b.py": ""}, "relative import"),
        ({"extra/a.py": ""}, "its package 'extra' has no row in the layer table"),
    ],
)
def test_the_layer_check_finds_what_breaks_the_rule(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    root = tmp_path / "pkg"
    for name, text in {"__init__.py": "", "core/__init__.py": "", "build/__init__.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).parent.joinpath("__init__.py").touch()
        (root / name).write_text(text)
    layers = layers_of(ARCHITECTURE.read_text())
    problems = import_problems(root, layers)
    assert any(expected in problem for problem in problems), problems
