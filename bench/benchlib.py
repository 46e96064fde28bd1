"""What the benchmarks share: how to run doit on this checkout, a timer that stops at the first failure, and
the report every benchmark ends with."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mmulab.core.doitcli import doit_argv

ROOT = Path(__file__).resolve().parent.parent
DOIT = doit_argv(["run"], ROOT)  # the pipeline's own doit command line (mmulab.core.doitcli)


def doit_command(command: str) -> list[str]:
    return doit_argv([command], ROOT)


def timed(command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, env={**os.environ, **(env or {})}, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"bench: {' '.join(command[:6])}... failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return elapsed


def report(results: dict[str, Any], targets: dict[str, tuple[str, float]], out: Path) -> None:
    """Stamp the machine and the date, print every result (a target's verdict beside it: `("<", 20.0)` means
    under 20) and write them all to `out` as JSON."""
    results["machine"] = f"{platform.node()} {os.cpu_count()} cores, {platform.platform()}"
    results["date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    width = max(map(len, results))
    for key, value in results.items():
        mark = ""
        if key in targets:
            operator, limit = targets[key]
            met = value < limit if operator == "<" else value <= limit
            mark = f"  (target {operator} {limit:g}: {'met' if met else 'MISSED'})"
        print(f"{key:{width}}  {_shown(value)}{mark}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {out}")


def _shown(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, list):
        return [round(v, 1) if isinstance(v, float) else v for v in value]
    return value


def series_folder(build_dir: Path) -> Path:
    """The folder of `build_dir` a run of the default kernel series builds in (build/linux-<series>/)."""
    from mmulab.core.paths import series_root
    from mmulab.core.settings import Settings
    from mmulab.project.loader import load_project

    return series_root(build_dir, load_project(Settings.from_environment({})).series)
