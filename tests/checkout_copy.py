"""A copy of this checkout at another path, and doit run from it: what a user's clone elsewhere does.

The copy holds the working tree's files (uncommitted changes included; no .git, build/, .venv or caches), and
its doit runs import the copy's own mmulab (PYTHONPATH), so PROJECT_ROOT and the default build directory
(`<copy>/build`) are the copy's."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from mmulab.settings import PROJECT_ROOT

LEFT_OUT = (".git", "build", ".venv", "artifacts", "__pycache__", "*.egg-info", ".pytest_cache", ".ruff_cache")


def copy_checkout(destination: Path) -> Path:
    """The checkout's files copied to `destination` (which must not exist yet)."""
    shutil.copytree(PROJECT_ROOT, destination, ignore=shutil.ignore_patterns(*LEFT_OUT), symlinks=True)
    return destination


def run_doit_in(checkout: Path, args: list[str], env: dict[str, str], timeout: float = 3600):
    """doit with `checkout`'s dodo.py and mmulab, from inside it."""
    command = [sys.executable, "-m", "doit", "-f", str(checkout / "dodo.py"), "-d", str(checkout), *args]
    return subprocess.run(
        command,
        env={**os.environ, **env, "PYTHONPATH": str(checkout)},
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
