"""The shape gate of issue 17: `ruff check`, `ruff format --check` and `mypy` (strict, over mmulab/, configured in
pyproject.toml) pass on this checkout, run with the venv's own tools, so the README's test command proves what
.ci/run checks before its tests. Each gate is also shown to refuse a small tree with one known defect, so a gate
configured into silence (no files, strict off, rules gone) fails here instead of passing quietly."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import missing

from mmulab.core.settings import PROJECT_ROOT

HOW = "./setup.sh --tests installs it, from pyproject.toml's test extra"
# The arguments after `python -m`; run where pyproject.toml is, which configures all three. No cache is written:
# ruff's --no-cache, mypy's documented /dev/null cache directory (the checkout stays as it was).
GATES = {
    "ruff-check": ("ruff", ["check", "--no-cache", "."]),
    "ruff-format": ("ruff", ["format", "--check", "--no-cache", "."]),
    "mypy": ("mypy", ["--cache-dir", os.devnull]),
}
# One defect per gate and the words that name it in the tool's output.
DEFECTS = {
    "ruff-check": ("import os\n", "F401"),
    "ruff-format": ("x = {  'a':1 }\n", "broken.py"),  # ruff's wording changes between releases
    # strict mode's own check: without --strict (disallow_untyped_defs) mypy accepts this
    "mypy": ("def untyped(value):\n    return value\n", "[no-untyped-def]"),
}


def _gate(name: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run one gate in `cwd` with this interpreter's tool; the caller's MYPY*/RUFF* variables play no part."""
    module, args = GATES[name]
    if importlib.util.find_spec(module) is None:
        missing(f"the Python module {module}", HOW)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MYPY", "RUFF_"))}
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


# mypy over the whole checkout is the fast suite's longest test (a cold strict run, ~20 s quiet, 100 s on a loaded
# host): slow, like .ci/run's own run of it before the tests; the defect gates below stay fast.
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "mypy" else n for n in sorted(GATES)])
def test_gate_passes_on_this_checkout(name: str) -> None:
    result = _gate(name, PROJECT_ROOT)
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}{result.stderr}"
    if name == "mypy":  # the whole package was checked, not a part of it
        modules = len(list((PROJECT_ROOT / "mmulab").rglob("*.py")))
        assert re.search(rf"\bno issues found in {modules} source files\b", result.stdout), result.stdout


@pytest.mark.parametrize("name", sorted(GATES))
def test_gate_refuses_a_defect(name: str, tmp_path: Path) -> None:
    """The checkout's own configuration, over a package of one module holding one defect."""
    shutil.copy(PROJECT_ROOT / "pyproject.toml", tmp_path)
    package = tmp_path / "mmulab"
    package.mkdir()
    (package / "__init__.py").write_text('"""A package of one broken module."""\n')
    source, named = DEFECTS[name]
    (package / "broken.py").write_text(source)
    result = _gate(name, tmp_path)
    assert result.returncode != 0, f"{name} accepted mmulab/broken.py:\n{source}{result.stdout}{result.stderr}"
    assert named in result.stdout, result.stdout + result.stderr
