"""What the benchmarks share: how to run doit on this checkout, and a timer that stops at the first failure."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOIT_FILE = ["-f", str(ROOT / "dodo.py"), "-d", str(ROOT)]
DOIT = [sys.executable, "-m", "doit", "run", *DOIT_FILE]  # doit's sub-command must come first


def doit_command(command: str) -> list[str]:
    return [sys.executable, "-m", "doit", command, *DOIT_FILE]


def timed(command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, env={**os.environ, **(env or {})}, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"bench: {' '.join(command[:6])}... failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return elapsed
