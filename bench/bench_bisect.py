"""Bisect benchmark: `mmulab bisect` of a known regression (tests/kernel_series.py: the pinned 6.12 tree and twelve
commits, one unbuildable, one breaking clone_vm on NOMMU), cold (a new build directory and an empty compile cache)
and warm (a new build directory, the compile cache the cold run filled). Records the steps, each step's mark and
seconds, and the whole bisect's wall time.

Usage: .venv/bin/python bench/bench_bisect.py [--out bench/results/bisect.json]
About 15 minutes on 2 cores (two bisects of 8 builds each, the first cold).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import ROOT, report, timed

from mmulab.core.doitcli import doit_argv
from mmulab.core.paths import series_root

sys.path.insert(0, str(ROOT / "tests"))
from kernel_series import kernel_series

CASE = "clone_vm-asm-nommu"


def bisect(tree: Path, good: str, build: Path, ccache: Path, base: dict[str, str]) -> dict[str, object]:
    """One bisect in a new build directory: its wall time and its steps (role, mark, seconds, boots)."""
    env = {**base, "MMULAB_BUILD_DIR": str(build), "LINUX_SRC": str(tree), "MMULAB_CCACHE_DIR": str(ccache)}
    command = [sys.executable, "-m", "mmulab", "bisect", "--good", good, "--bad", "main", "--case", CASE]
    started = time.perf_counter()
    finished = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if finished.returncode != 0:
        output = f"{finished.stdout[-3000:]}\n{finished.stderr}"
        sys.exit(f"bench: mmulab bisect failed (exit {finished.returncode}):\n{output}")
    data = json.loads((series_root(build, "", user_tree=True) / "reports" / "bisect.json").read_text())
    keys = ("role", "mark", "seconds", "attempts")
    steps = [{"commit": step["commit"][:12], **{key: step[key] for key in keys}} for step in data["steps"]]
    return {"wall_s": round(wall, 1), "first_bad": data["first_bad"]["subject"], "steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "bisect.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mmulab-bench-bisect-"))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MMULAB_", "CCACHE_", "LINUX_SRC"))}
    base.update({"MMULAB_PROGRESS": "off", "MMULAB_JOBS": str(os.cpu_count() or 1)})
    results: dict[str, object] = {"load_average_at_start": os.getloadavg()[0]}
    try:
        pinned = work / "pinned"
        timed(doit_argv(["extract:linux"], ROOT), {**base, "MMULAB_BUILD_DIR": str(pinned)})
        started = time.perf_counter()
        hashes = kernel_series(pinned / "src" / "linux", work / "linux")
        results["series_import_s"] = round(time.perf_counter() - started, 1)
        ccache = work / "ccache"
        results["cold"] = bisect(work / "linux", hashes[0], work / "cold", ccache, base)
        results["warm"] = bisect(work / "linux", hashes[0], work / "warm", ccache, base)
        results["load_average_at_end"] = os.getloadavg()[0]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(results, {}, args.out)


if __name__ == "__main__":
    main()
