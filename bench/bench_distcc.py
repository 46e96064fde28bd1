"""Build farm benchmark: the NOMMU kernel stage with two loopback distcc servers against without, both from an
empty compile cache (every compile runs), and the parts that cannot be distributed, measured on their own.

Usage: .venv/bin/python bench/bench_distcc.py [--out bench/results/distcc.json]
Measures: the kconfig stage (host tools + olddefconfig, always local); the kernel stage locally and through the
farm (wall time; the CPU time of the client side: make, ccache, distcc's local preprocessing, host tools, links);
the servers' job time (the sum of their COMPILE_OK lines' times: the work that was distributed); the share of
compiles that ran remotely; the tail no server can take (a relink after removing vmlinux, plus make's walk
over an up-to-date tree). docs/scaling.md turns these into the expected kernel-stage time for 1..64 server
cores. On this 2-core machine the servers share the client's cores: the farm cannot be faster here, the bench
records its overhead and its shares. About 15 minutes on 2 idle cores (two cold kernel builds).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import sys
import tempfile
from pathlib import Path

from benchlib import ROOT, report, series_folder, timed

from mmulab.core.doitcli import doit_argv

sys.path.insert(0, str(ROOT / "tests"))
from distcc_server import DistccServer

VARIANT = "nommu"
SLOTS = 2  # per loopback server: the machine's cores, as a real server's --jobs


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def stage(build: Path, env: dict[str, str]) -> dict[str, float]:
    """kconfig then kernel, from an empty kernel folder: each one's wall time, the kernel's client CPU time."""
    shutil.rmtree(build / VARIANT / "kernel", ignore_errors=True)
    timed(doit_argv(["forget", f"kconfig:{VARIANT}", f"kernel:{VARIANT}"], ROOT), env)
    kconfig = timed(doit_argv(["run", f"kconfig:{VARIANT}"], ROOT), env)
    before = cpu_of_children()
    kernel = timed(doit_argv(["run", f"kernel:{VARIANT}"], ROOT), env)
    return {"kconfig_s": kconfig, "kernel_s": kernel, "kernel_client_cpu_s": cpu_of_children() - before}


def tail(build: Path, env: dict[str, str]) -> dict[str, float]:
    """What no server takes: make's walk over an up-to-date tree, and a relink (vmlinux removed)."""
    timed(doit_argv(["forget", f"kernel:{VARIANT}"], ROOT), env)
    walk = timed(doit_argv(["run", f"kernel:{VARIANT}"], ROOT), env)
    (build / VARIANT / "kernel" / "obj" / "vmlinux").unlink()
    timed(doit_argv(["forget", f"kernel:{VARIANT}"], ROOT), env)
    relink = timed(doit_argv(["run", f"kernel:{VARIANT}"], ROOT), env)
    return {"make_walk_s": walk, "relink_s": relink}


def host_compiles(build: Path) -> int:
    log = (build / VARIANT / "kernel" / "build.log").read_text(errors="replace")
    return len(re.findall(r"^\s*HOSTCC\s", log, re.MULTILINE))


def server_job_seconds(server: DistccServer) -> float:
    return sum(int(ms) for ms in re.findall(r"COMPILE_OK .*? time:(\d+)ms", server.log())) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "distcc.json")
    args = parser.parse_args()
    for tool in ("ccache", "distcc", "distccd"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is not installed (./setup.sh --tests installs it)")
    work = Path(tempfile.mkdtemp(prefix="mmulab-bench-distcc-"))
    results: dict[str, object] = {"load_average_at_start": os.getloadavg()[0]}
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MMULAB_", "CCACHE_", "DISTCC_"))}
    base.update({"MMULAB_JOBS": str(os.cpu_count() or 1), "MMULAB_PROGRESS": "off"})
    os.environ.clear()
    os.environ.update(base)
    build = work / "build"
    try:
        common = {"MMULAB_BUILD_DIR": str(build)}
        timed(doit_argv(["run", "extract:linux"], ROOT), common)  # the source tree, outside the measurements
        local = stage(build, {**common, "MMULAB_CCACHE_DIR": str(work / "cache-local")})
        results.update({f"local_{key}": value for key, value in local.items()})
        results["kernel_host_compiles"] = host_compiles(build)
        with DistccServer("127.0.0.2", SLOTS) as first, DistccServer("127.0.0.3", SLOTS) as second:
            farm_env = {
                **common,
                "MMULAB_CCACHE_DIR": str(work / "cache-farm"),
                "MMULAB_DISTCC_HOSTS": f"{first.token} {second.token}",
            }
            farm = stage(build, farm_env)
            results.update({f"farm_{key}": value for key, value in farm.items()})
            results["farm_server_job_s"] = server_job_seconds(first) + server_job_seconds(second)
            results["farm_server_compiles"] = first.compiled() + second.compiled()
            counts = json.loads((series_folder(build) / "reports" / "distcc" / f"kernel-{VARIANT}.json").read_text())
            results["farm_counts"] = counts
            compiles = counts["remote"] + counts["local"]
            results["farm_remote_share"] = counts["remote"] / compiles if compiles else 0.0
            results["farm_overhead"] = farm["kernel_s"] / local["kernel_s"] - 1
            results.update(tail(build, farm_env))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(results, {}, args.out)


if __name__ == "__main__":
    main()
