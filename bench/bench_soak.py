"""Soak benchmark: every boot case, 5 rounds, 2 boots at once, the host loaded by one busy worker per core
(`mmulab soak --load --rounds 5 -n 2`). Records the pass rate and the time to verdict of each case (its
slowest and median boot) under that load, and the machine's load average before and after.

Usage: .venv/bin/python bench/bench_soak.py [--out bench/results/soak.json] [--rounds 5] [--jobs 2]
Target: no failed boot (pass rate 1.0). Uses the checkout's build directory (MMULAB_BUILD_DIR, default
build/): the soak builds what is missing first, through doit. About 3 minutes on 2 cores once built.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from benchlib import ROOT, report, series_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "soak.json")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    from mmulab.core.settings import Settings

    reports = series_folder(Settings.from_environment().build_dir) / "reports"
    results: dict[str, object] = {"load_average_at_start": os.getloadavg()[0]}
    command = [sys.executable, "-m", "mmulab", "soak", "--load", "--rounds", str(args.rounds), "-n", str(args.jobs)]
    env = {**os.environ, "MMULAB_PROGRESS": "off"}
    finished = subprocess.run(command, env=env, cwd=ROOT, check=False)
    if finished.returncode not in (0, 1):  # 1: a boot failed, which is a result; anything else is not
        sys.exit(f"bench: {' '.join(command[2:])} failed (exit {finished.returncode})")
    soak = json.loads((reports / "soak.json").read_text())
    results["load_average_at_end"] = os.getloadavg()[0]
    cases = soak["cases"]
    failures = [f"{f['case']} round {f['round']}: {f['reason']}" for case in cases.values() for f in case["failures"]]
    results.update(
        {
            "command": " ".join(command[2:]),
            "cases": len(cases),
            "rounds": soak["rounds"],
            "jobs": soak["jobs"],
            "load_workers": soak["load_workers"],
            "load_average_soak_start": soak["load_average_start"],
            "load_average_soak_end": soak["load_average_end"],
            "boots": soak["boots"],
            "failed": soak["failed"],
            "pass_rate": round(soak["passed"] / soak["boots"], 4) if soak["boots"] else 0.0,
            "slowest_verdict_s": soak["slowest_seconds"],
            "soak_wall_s": soak["wall_seconds"],
            "failures": failures,
            "per_case": {
                name: {
                    "pass_rate": case["pass_rate"],
                    "max_s": case["slowest_seconds"],
                    "median_s": case["median_seconds"],
                }
                for name, case in cases.items()
            },
        }
    )
    report(results, {"failed": ("<=", 0)}, args.out)


if __name__ == "__main__":
    main()
