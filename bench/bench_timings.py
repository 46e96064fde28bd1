"""How soon the harness reacts: the speed targets the tests used to assert, measured here instead (tests assert
what ended a boot, never how many seconds it took; a busy host must not fail them).

Usage: .venv/bin/python bench/bench_timings.py [--rounds 5] [--linux-tree PATH] [--out bench/results/timings.json]
Targets (the worst of the rounds): a stand-in QEMU that hangs is killed < 10 s after it starts (its timeout is
1.5 s); one that panics is stopped < 10 s (its timeout is 600 s); a hart stuck after a fault, proven by QEMU's
trap log, ends the boot < 1.5 s (timeout 20 s), and so does a trap loop; a Redis server that accepts and never
answers is told < 2 s (probe's timeout 0.5 s); the Linux 6.12 Kconfig tree (riscv) loads < 3 s (only ever on
the error path). The Kconfig tree is read from --linux-tree, else LINUX_SRC, else the build directory's
extracted tree, else extracted into a temporary build directory first (about a minute). About 30 s otherwise.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from benchlib import DOIT, ROOT, report, series_folder

from mmulab.boot import judge, qemu
from mmulab.build import ccache
from mmulab.kconfig.tree import linux_source
from mmulab.project.loader import load_project
from mmulab.project.model import BootCase

SYMBOLS = ROOT / "tests" / "data" / "symbolize"
TRAP_LINE = "riscv_cpu_do_interrupt: hart:0, async:{a}, cause:{c:016x}, epc:0x{pc:016x}, tval:0x{pc:016x}, desc=x"
TARGETS = {
    "hang_killed_s": ("<", 10.0),
    "panic_stopped_s": ("<", 10.0),
    "stuck_hart_ended_s": ("<", 1.5),
    "trap_loop_ended_s": ("<", 1.5),
    "hung_redis_told_s": ("<", 2.0),
    "kconfig_tree_load_s": ("<", 3.0),
}


def fake_qemu(work: Path, body: str) -> list[str]:
    """A stand-in for QEMU: prints a console and writes its trap log where `-D` says, as QEMU does."""
    script = work / "qemu.sh"
    script.write_text(f'log="$2"\n{body}\n')
    return ["sh", str(script), "-D", str(work / "run.traps")]


def boot_timings(case: BootCase, work: Path) -> dict[str, Callable[[], judge.Verdict]]:
    """Each stand-in boot, ready to run; each must end with the verdict its test asserts."""
    boots = replace(case, must=("start", "done"))
    hang = replace(case, expect="hang", must=("OpenSBI",), timeout=20, traps=True)
    loop = replace(case, expect="hang", must=("start",), timeout=20, traps=True)
    panic = "echo start; echo '[ 0.1] Kernel panic - not syncing: test'; echo trace; exec sleep 60"
    stuck = f'echo OpenSBI; cat {SYMBOLS / "mmu-mmu-off.traps"} > "$log"; exec sleep 60'
    line = TRAP_LINE.format(a=0, c=12, pc=0xFFFFFFFF80001094)
    log, traps = work / "console.log", work / "run.traps"
    return {
        "hang_killed_s": lambda: qemu.run_captured(
            ["sh", "-c", "echo start; exec sleep 60"], replace(boots, timeout=1.5), log
        ),
        "panic_stopped_s": lambda: qemu.run_captured(["sh", "-c", panic], replace(boots, timeout=600), log),
        "stuck_hart_ended_s": lambda: qemu.run_captured(fake_qemu(work, stuck), hang, log, None, traps),
        "trap_loop_ended_s": lambda: qemu.run_captured(
            fake_qemu(work, f'echo start; while :; do echo "{line}"; done > "$log"'), loop, log, None, traps
        ),
    }


EXPECTED = {"hang_killed_s": "hang", "panic_stopped_s": "forbidden-line", "stuck_hart_ended_s": "hang"}


def hung_redis() -> str:
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(1)  # accepts (the kernel does) but never answers
        return ccache.probe(f"redis://127.0.0.1:{hung.getsockname()[1]}", 0.5)


def linux_tree(given: Path | None, work: Path) -> Path:
    """--linux-tree, LINUX_SRC, the build directory's extracted tree, or one extracted now."""
    project = load_project()
    for tree in (given, project.settings.linux_src, project.settings.build_dir / "src" / "linux"):
        if tree is not None and (tree / "Kconfig").is_file():
            return tree
    build = work / "build"
    env = {**os.environ, "MMULAB_BUILD_DIR": str(build), "MMULAB_PROGRESS": "off"}
    result = subprocess.run([*DOIT, "extract:linux"], env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"bench: doit extract:linux failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return series_folder(build) / "src" / "linux"


def measured(run: Callable[[], object], check: Callable[[object], bool], what: str, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        outcome = run()
        times.append(time.perf_counter() - started)
        if not check(outcome):
            sys.exit(f"bench: {what}: unexpected outcome {outcome!r}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--linux-tree", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "timings.json")
    args = parser.parse_args()
    case = load_project().boots["clone_vm-asm-nommu"]
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="mmulab-bench-timings-") as scratch:
        work = Path(scratch)
        for name, run in boot_timings(case, work).items():
            expected = EXPECTED.get(name, "hang")
            times[name] = measured(run, lambda v, e=expected: v.observed == e, name, args.rounds)
        times["hung_redis_told_s"] = measured(hung_redis, lambda why: "no answer" in why, "probe", args.rounds)
        tree = linux_tree(args.linux_tree, work)
        times["kconfig_tree_load_s"] = measured(
            lambda: linux_source(tree, "riscv").load(), lambda t: not t.missing, "Kconfig tree", args.rounds
        )
    results: dict[str, object] = {name: max(values) for name, values in times.items()}
    results |= {f"{name} (median)": statistics.median(values) for name, values in times.items()}
    results["rounds"] = args.rounds
    report(results, TARGETS, args.out)


if __name__ == "__main__":
    sys.exit(main())
