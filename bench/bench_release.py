"""Release benchmark: `doit publish` after `doit all`, `mmulab verify` without rebuild, `doit repro` against
a cold `doit all`. Not a test: it measures.

Usage: .venv/bin/python bench/bench_release.py [--out bench/results/release.json] [--skip-repro]
Targets: publish after doit all < 10 s (a second release of the same sources; the first publish of a kernel
source also compresses it once, reported apart); verify without rebuild < 5 s; doit repro <= 2.2 x a cold
doit all. Uses its own build and artifacts directories under a temporary folder (about 15 minutes on
2 cores: three cold builds of everything).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from benchlib import DOIT, ROOT, report, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "release.json")
    parser.add_argument("--skip-repro", action="store_true", help="measure publish and verify only")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mmulab-bench-release-"))
    env = {
        "MMULAB_BUILD_DIR": str(work / "build"),
        "MMULAB_ARTIFACTS_DIR": str(work / "artifacts"),
        "MMULAB_DL_DIR": str(work / "downloads"),  # an empty stream cache: the first publish pays for it
        "MMULAB_ALLOW_DIRTY": "1",
    }
    shutil.copytree(Path.home() / ".cache" / "mmulab" / "downloads", work / "downloads", ignore=_no_streams)
    results: dict[str, float | str] = {}
    try:
        results["cold_doit_all_s"] = timed([*DOIT, "all"], env)
        results["first_publish_s"] = timed([*DOIT, "publish", "--release", "bench-1"], env)
        results["publish_after_doit_all_s"] = timed([*DOIT, "publish", "--release", "bench-2"], env)
        verify = [str(ROOT / ".venv" / "bin" / "mmulab"), "verify"]
        results["verify_dir_s"] = timed([*verify, str(work / "artifacts" / "bench-2")], env)
        results["verify_tarball_s"] = timed([*verify, str(work / "artifacts" / "bench-2.tar.xz")], env)
        if not args.skip_repro:
            results["doit_repro_s"] = timed([*DOIT, "repro"], env)
            results["repro_vs_cold_doit_all"] = round(results["doit_repro_s"] / results["cold_doit_all_s"], 2)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    targets = {
        "publish_after_doit_all_s": ("<=", 10.0),
        "verify_dir_s": ("<=", 5.0),
        "verify_tarball_s": ("<=", 5.0),
        "repro_vs_cold_doit_all": ("<=", 2.2),
    }
    report(results, targets, args.out)


def _no_streams(folder: str, names: list[str]) -> list[str]:
    return [name for name in names if name == ".xz-streams"]


if __name__ == "__main__":
    main()
