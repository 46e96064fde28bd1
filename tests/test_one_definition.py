"""One definition of each name the release format and the build folder share: a file name or document type
spelled out in a second module would drift from the first the day one of them changes."""

from __future__ import annotations

import ast
from pathlib import Path

from mmulab.boot import summary
from mmulab.core.settings import PROJECT_ROOT
from mmulab.project import model
from mmulab.release import format as release_format
from mmulab.release import page

PACKAGE = PROJECT_ROOT / "mmulab"


def _owners() -> dict[str, str]:
    """Each shared string and the one module (path under mmulab/) allowed to spell it."""
    owners = {
        value: "release/format.py"
        for name, value in vars(release_format).items()
        if name.isupper() and isinstance(value, str)
    }
    owners |= {summary.JSON_FILE: "boot/summary.py", summary.XML_FILE: "boot/summary.py"}
    owners |= {model.NOASSERTION: "project/model.py", "reports": "core/paths.py"}
    return owners


def _spelled(path: Path) -> set[str]:
    """Every string constant of a module, the parts of its f-strings included."""
    return {n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant) and n.value}


def test_the_release_format_names_its_files_and_types() -> None:
    names = {release_format.SUMS, release_format.MANIFEST, release_format.RUN, *release_format.METADATA}
    assert names == {
        "SHA256SUMS",
        "manifest.json",
        "run.json",
        "sbom.spdx.json",
        "provenance.intoto.json",
        "index.html",
    }
    assert set(release_format.MADE_FROM_MANIFEST) < set(release_format.METADATA)
    assert tuple(n for n in release_format.METADATA if n != release_format.INDEX) == page.METADATA_FILES


def test_each_shared_name_is_spelled_in_one_module_only() -> None:
    owners = _owners()
    assert {"SHA256SUMS", "boots/", "summary.json", "NOASSERTION", "reports"} <= set(owners)  # each kind is scanned
    elsewhere = sorted(
        f"{path.relative_to(PACKAGE)}: {value!r} (defined in {owners[value]})"
        for path in PACKAGE.rglob("*.py")
        for value in _spelled(path) & set(owners)
        if path.relative_to(PACKAGE).as_posix() != owners[value]
    )
    assert elsewhere == []


def test_boot_and_earlier_layers_do_not_know_the_release_format() -> None:
    """release/format.py is for release/* and pipeline/*: what a boot or build writes must not depend on it."""
    early = ("core", "kconfig", "project", "build", "boot")
    importing = sorted(
        f"{path.relative_to(PACKAGE).as_posix()}: {module}"
        for layer in early
        for path in (PACKAGE / layer).rglob("*.py")
        for module in _imported(path)
        if module == "mmulab.release" or module.startswith("mmulab.release.")
    )
    assert importing == []


def _imported(path: Path) -> set[str]:
    """The modules `path` imports (import x.y; from x.y import z gives x.y and x.y.z)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return found
