"""How long the developer's inner loop takes: `pytest -m "not slow" -n 2` on this checkout, wall seconds, with the
machine's load beside it (a shared host's load average says how much of it the suite had).

Usage: .venv/bin/python bench/bench_fast_suite.py --label after [--out bench/results/fast_suite.json]
Target: under 120 s on a quiet 2-core machine. The result is kept under its label (before / after), so one file
holds both; the ten slowest tests are recorded with it (where the time goes).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from benchlib import ROOT

TARGET_SECONDS = 120.0
SUMMARY = re.compile(r"^=*\s*(\d+ (?:passed|failed).*) in ([\d.]+)s")
DURATION = re.compile(r"^([\d.]+)s (call|setup|teardown)\s+(\S+)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--label", required=True)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "fast_suite.json")
    args = parser.parse_args()
    command = [sys.executable, "-m", "pytest", "-m", "not slow", "-n", "2", "-q", "-p", "no:randomly", "--durations=10"]
    load_before = os.getloadavg()
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    lines = result.stdout.splitlines()
    summary = next((m.group(1) for line in reversed(lines) if (m := SUMMARY.search(line))), "no summary")
    slowest = [f"{m.group(1)}s {m.group(2)} {m.group(3)}" for line in lines if (m := DURATION.match(line))]
    recorded = json.loads(args.out.read_text()) if args.out.is_file() else {}
    recorded[args.label] = {
        "command": "pytest -m 'not slow' -n 2 -q -p no:randomly",
        "wall_seconds": round(seconds, 1),
        "outcome": summary,
        "exit": result.returncode,
        "cores": os.cpu_count(),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "target": f"< {TARGET_SECONDS:g} s on a quiet 2-core machine",
        "slowest": slowest,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.write_text(json.dumps(recorded, indent=2) + "\n")
    print(f"{args.label}: {seconds:.1f} s, {summary} (load {load_before[0]:.1f}); written to {args.out}")


if __name__ == "__main__":
    main()
