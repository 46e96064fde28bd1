"""Version-matrix benchmark: `doit matrix` (every variant of every kernel series, every case) cold and then warm,
with seconds per series and per kernel (series x variant).

Cold: an empty build directory and an empty compile cache (nothing of any series built before). Warm: another
empty build directory with the compile cache the cold run filled (what a second machine of a class sharing a
cache, or a fresh clone, costs). Per kernel, the seconds between its config and the end of its build log (the
kernel stage itself; the rest of a series is musl, busybox, programs and boots).

Usage: .venv/bin/python bench/bench_matrix.py [--out bench/results/matrix.json] [--series 6.1,6.18]
       .venv/bin/python bench/bench_matrix.py --from BUILD   # only read a matrix run that already happened
A cold matrix of 4 series on 2 cores is over an hour: a benchmark, never a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import ROOT, doit_command, report


def kernel_seconds(series_dir: Path) -> dict[str, float | None]:
    """Per variant: from the verified config's write to the build log's last write (None: not built)."""
    found: dict[str, float | None] = {}
    for kernel in sorted(series_dir.glob("*/kernel")):
        config, log = kernel / "config", kernel / "build.log"
        found[kernel.parent.name] = (
            round(log.stat().st_mtime - config.stat().st_mtime, 1) if config.is_file() and log.is_file() else None
        )
    return found


def read_run(build: Path) -> dict[str, Any]:
    data = json.loads((build / "reports" / "matrix.json").read_text())
    cells: dict[str, dict[str, int]] = {}
    for cell in data["cells"]:
        counts = cells.setdefault(cell["series"], {})
        counts[cell["state"]] = counts.get(cell["state"], 0) + 1
    return {
        run["series"]: {
            "version": run["version"],
            "origin": run["origin"],
            "doit_all_s": run["seconds"],
            "kernel_s": kernel_seconds(build / f"linux-{run['series']}"),
            "cells": cells.get(run["series"], {}),
        }
        for run in data["series"]
    }


def matrix_run(build: Path, ccache: Path, series: str) -> tuple[float, int]:
    env = {**os.environ, "MMULAB_BUILD_DIR": str(build), "MMULAB_CCACHE_DIR": str(ccache), "MMULAB_PROGRESS": "off"}
    command = [*doit_command("run"), "matrix", *(["--series", series] if series else [])]
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    print(result.stdout[-4000:], file=sys.stderr)
    return time.perf_counter() - started, result.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "matrix.json")
    parser.add_argument("--series", default="", help="comma-separated series (default: every one)")
    parser.add_argument("--from", dest="source", type=Path, help="read this build's matrix run; build nothing")
    args = parser.parse_args()
    results: dict[str, Any] = {"load_average_at_start": os.getloadavg()[0]}
    if args.source:
        results["note"] = f"read from an earlier doit matrix run in {args.source} (its compile cache as it was)"
        results["run"] = read_run(args.source)
    else:
        with tempfile.TemporaryDirectory(prefix="mmulab-bench-matrix-") as work:
            root = Path(work)
            for name in ("cold", "warm"):
                seconds, code = matrix_run(root / name, root / "ccache", args.series)
                results[f"{name}_matrix_s"] = round(seconds, 1)
                results[f"{name}_exit"] = code
                results[name] = read_run(root / name)
    results["load_average_at_end"] = os.getloadavg()[0]
    report(results, {}, args.out)


if __name__ == "__main__":
    main()
