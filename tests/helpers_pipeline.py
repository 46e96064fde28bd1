"""Helpers the end-to-end tests share (test_pipeline, test_demos): what doit's output says it ran."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


def executed(output: str) -> list[str]:
    """Tasks doit ran (".  name"), as opposed to skipped as up to date ("-- name")."""
    return [line[3:].strip() for line in output.splitlines() if line.startswith(".  ")]


def wait_for(path: Path, run: subprocess.Popen[str], deadline: float) -> None:
    """Until `path` exists (polled; `deadline` seconds is a bound, never a measurement), the run still going."""
    give_up = time.monotonic() + deadline
    while not path.exists():
        assert run.poll() is None, run.communicate()
        assert time.monotonic() < give_up, f"{path.name} did not appear within {deadline} s"
        time.sleep(0.05)
