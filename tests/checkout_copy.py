"""A copy of this checkout at another path, and doit run from it as a script runs it: what a user's clone
elsewhere does.

The copy holds the working tree's files (uncommitted changes included; no .git, build/, .venv or caches), and
its doit runs import the copy's own mmulab (PYTHONPATH), so PROJECT_ROOT and the default build directory
(`<copy>/build`) are the copy's."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from mmulab.core.doitcli import doit_argv
from mmulab.core.settings import PROJECT_ROOT

LEFT_OUT = (".git", "build", ".venv", "artifacts", "__pycache__", "*.egg-info", ".pytest_cache", ".ruff_cache")
Result = subprocess.CompletedProcess[str]


def copy_checkout(destination: Path) -> Path:
    """The checkout's files copied to `destination` (which must not exist yet)."""
    shutil.copytree(PROJECT_ROOT, destination, ignore=shutil.ignore_patterns(*LEFT_OUT), symlinks=True)
    return destination


def run_bounded(argv: list[str], env: dict[str, str], timeout: float, cwd: Path | None = None) -> Result:
    """`argv` as a script runs it: stdin from /dev/null, whatever terminal pytest was started on. `timeout` is
    a deadline for hang detection, not a speed target: past it the whole process group (make, QEMU) is killed
    and the test fails."""
    with subprocess.Popen(
        argv,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            pytest.fail(f"{' '.join(argv[3:])}: no end within {timeout} s (it hangs, or a build started)")
    return Result(argv, process.returncode, stdout, stderr)


def run_doit_in(checkout: Path, args: list[str], env: dict[str, str], timeout: float = 3600) -> Result:
    """doit with `checkout`'s dodo.py and mmulab (`checkout` as given: maybe through a symlink), from inside it."""
    argv = doit_argv(args, checkout)
    return run_bounded(argv, {**os.environ, **env, "PYTHONPATH": str(checkout)}, timeout, cwd=checkout)
