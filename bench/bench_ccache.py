"""Compile cache benchmark (ccache, local and Redis), every number measured side by side in one run.

Usage: .venv/bin/python bench/bench_ccache.py [--out bench/results/ccache.json]
Targets: a kernel fragment toggled on, off and on again: the third build < 20 s; a second checkout at another
path with a warm local cache: its cold kernel stage (kconfig + build) < 25 s; the remote cache (a real
redis-server on a loopback port) warm and the local one empty: the kernel stage < 40 s; an empty cache costs
< 5 % over no ccache (the sums of OVERHEAD_ROUNDS alternating builds each). Two copies of this checkout at
different paths (each with its build directory inside), their own ccache directories, the shared download
cache as it is. About 16 minutes on 2 cores: five full
kernel builds (twice no ccache, twice an empty cache, the fragment switched on), the rest from the cache.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchlib import ROOT, report, series_folder, timed

from mmulab.core.doitcli import doit_argv

sys.path.insert(0, str(ROOT / "tests"))
from redis_server import RedisServer

VARIANT = "nommu"
FRAGMENT = "# the bench's toggled option: KUnit, as when a student adds a test suite\nCONFIG_KUNIT=y\n"
OVERHEAD_ROUNDS = 2  # one pair of 2-minute builds differs by a few % on its own
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "build", "artifacts", "__pycache__", ".*_cache")


def checkout(at: Path) -> Path:
    """A copy of this checkout's files at `at` (what a second clone would hold), without builds."""
    shutil.copytree(ROOT, at, ignore=COPY_IGNORE)
    return at


def doit(root: Path, *args: str) -> list[str]:
    return doit_argv(args, root)


def in_checkout(root: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """The checkout's own mmulab (not the one installed in the virtualenv) and its own build directory."""
    return {**(env or {}), "PYTHONPATH": str(root), "MMULAB_BUILD_DIR": str(root / "build")}


def kernel_stage(root: Path, env: dict[str, str], fresh: bool = True) -> float:
    """kconfig + kernel of the variant, from an empty object directory when `fresh` (a cold stage)."""
    env = in_checkout(root, env)
    if fresh:
        shutil.rmtree(root / "build" / VARIANT / "kernel", ignore_errors=True)
        timed(doit(root, "forget", f"kconfig:{VARIANT}", f"kernel:{VARIANT}"), env)
    return timed(doit(root, "run", f"kernel:{VARIANT}"), env)


def stats(root: Path) -> dict[str, int]:
    from mmulab.build.ccache import read_stats

    found = read_stats(series_folder(root / "build") / "reports" / "ccache" / f"kernel-{VARIANT}.stats")
    return found.to_dict() if found else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ccache.json")
    args = parser.parse_args()
    if not shutil.which("ccache"):
        sys.exit("bench: ccache is not installed (./setup.sh installs it)")
    work = Path(tempfile.mkdtemp(prefix="mmulab-bench-ccache-"))
    results: dict[str, object] = {"load_average_at_start": os.getloadavg()[0]}
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MMULAB_", "CCACHE_"))}
    base.update({"MMULAB_JOBS": str(os.cpu_count() or 1), "MMULAB_PROGRESS": "off"})
    os.environ.clear()
    os.environ.update(base)
    fragment = work / "kunit.config"
    fragment.write_text(FRAGMENT)
    local, other_local = work / "ccache-local", work / "ccache-other"
    try:
        one = checkout(work / "one" / "mmulab")
        two = checkout(work / "two" / "somewhere" / "else" / "mmulab")
        for root in (one, two):
            timed(doit(root, "run", "extract:linux"), in_checkout(root))
        with RedisServer() as redis:
            # No ccache vs an empty cache: the same cold kernel stage in the same checkout, alternating, each
            # empty-cache build in a new cache folder (the last one stays: the warm local cache below).
            off, empty = [], []
            for _ in range(OVERHEAD_ROUNDS):
                off.append(kernel_stage(one, {"MMULAB_CCACHE": "0"}))
                shutil.rmtree(local, ignore_errors=True)
                empty.append(kernel_stage(one, {"MMULAB_CCACHE_DIR": str(local)}))
            results["kernel_stage_no_ccache_s"], results["kernel_stage_empty_cache_s"] = off, empty
            results["empty_cache_stats"] = stats(one)
            cached = {"MMULAB_CCACHE_DIR": str(local)}
            # The fragment on (new objects, stored locally and in Redis), off (the first build's), on again.
            toggled = {**cached, "MMULAB_CCACHE_REMOTE": redis, f"MMULAB_FRAGMENT_{VARIANT.upper()}": str(fragment)}
            # RESHARE: the objects this build takes from the local cache go to Redis too, so the remote holds
            # the whole configuration (as after a first machine's cold build of it).
            results["toggle_on_s"] = kernel_stage(one, {**toggled, "CCACHE_RESHARE": "1"}, fresh=False)
            results["toggle_off_s"] = kernel_stage(one, {**cached, "MMULAB_CCACHE_REMOTE": redis}, fresh=False)
            results["toggle_on_again_s"] = kernel_stage(one, toggled, fresh=False)
            results["toggle_on_again_stats"] = stats(one)
            # Another checkout at another path: its first kernel stage, with the warm local cache.
            results["second_checkout_kernel_stage_s"] = kernel_stage(two, cached)
            results["second_checkout_stats"] = stats(two)
            # The remote warm (the fragment's build went there), this machine's local cache empty.
            remote = {
                "MMULAB_CCACHE_DIR": str(other_local),
                "MMULAB_CCACHE_REMOTE": redis,
                f"MMULAB_FRAGMENT_{VARIANT.upper()}": str(fragment),
            }
            results["remote_warm_local_empty_kernel_stage_s"] = kernel_stage(two, remote)
            results["remote_warm_stats"] = stats(two)
            results["redis_memory"] = _redis_memory(redis)
        results["local_cache_size"] = _ccache_size(local)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _report(results, args.out)


def _redis_memory(url: str) -> str:
    from redis_server import ask

    info = ask(url, "INFO", "memory").decode(errors="replace")
    return next(
        (line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("used_memory_human")), ""
    )


def _ccache_size(directory: Path) -> str:
    result = subprocess.run(
        ["ccache", "--print-stats"], env={**os.environ, "CCACHE_DIR": str(directory)}, capture_output=True, text=True
    )
    kib = next((line.split()[1] for line in result.stdout.splitlines() if line.startswith("cache_size_kibibyte")), "0")
    return f"{int(kib) / 1024:.1f} MiB"


def _report(results: dict[str, object], out: Path) -> None:
    no_cache, empty = results["kernel_stage_no_ccache_s"], results["kernel_stage_empty_cache_s"]
    results["empty_cache_overhead"] = round(sum(empty) / sum(no_cache) - 1, 3)  # type: ignore[arg-type]
    results["load_average_at_end"] = os.getloadavg()[0]  # other work on the machine skews every number
    targets = {
        "toggle_on_again_s": ("<", 20.0),
        "second_checkout_kernel_stage_s": ("<", 25.0),
        "remote_warm_local_empty_kernel_stage_s": ("<", 40.0),
        "empty_cache_overhead": ("<", 0.05),
    }
    report(results, targets, out)


if __name__ == "__main__":
    main()
