"""`mmulab soak`: boot every case (or a chosen demo or case) many times, optionally with the host loaded on
purpose, and report each case's pass rate and slowest time to verdict.

A demo that passes once on a quiet machine may still race a busy one (a grace period, a background thread);
a teacher runs this before a lecture and a CI operator before trusting a machine. Every boot goes through
the pipeline's own boot path (`boot.boot_case`: the same command, console capture, trap watch and judge as
`doit smoke:<case>`); the kernels and images are built first by the pipeline itself (`doit kernel:...
initramfs:...`). Each boot's console is kept in <build>/soak/<case>.<round>.log; the table is printed and
written as <build>/reports/soak.json, beside the boot summary.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mmulab.boot import qemu
from mmulab.boot.judge import Verdict
from mmulab.core.errors import ConfigError, UserError
from mmulab.core.fsutil import write_atomic
from mmulab.core.paths import Layout
from mmulab.project.model import Project

COLUMNS = ("case", "boots", "passed", "pass rate", "slowest s", "median s")


@dataclass(frozen=True)
class Boot:
    """One soak boot: which case, which round, and what its verdict said."""

    case: str
    round: int
    passed: bool
    observed: str
    seconds: float | None
    reason: str = ""
    log: str = ""

    @classmethod
    def of(cls, verdict: Verdict, round_number: int) -> Boot:
        return cls(
            verdict.case,
            round_number,
            verdict.passed,
            verdict.observed.value,
            verdict.seconds,
            verdict.reason,
            verdict.log,
        )


@dataclass(frozen=True)
class CaseStats:
    """A case's soak: how many boots, how many passed, the slowest and median time to verdict, the failures."""

    case: str
    boots: int
    passed: int
    slowest_seconds: float | None
    median_seconds: float | None
    failures: tuple[Boot, ...] = ()

    @property
    def failed(self) -> int:
        return self.boots - self.passed

    @property
    def pass_rate(self) -> float:
        return self.passed / self.boots if self.boots else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "boots": self.boots,
            "passed": self.passed,
            "failed": self.failed,
            "pass_rate": round(self.pass_rate, 4),
            "slowest_seconds": self.slowest_seconds,
            "median_seconds": self.median_seconds,
            "failures": [asdict(boot) for boot in self.failures],
        }


def aggregate(boots: Iterable[Boot]) -> list[CaseStats]:
    """Per case, in the order cases first appear: counts, time to verdict (of the boots that have one), failures."""
    by_case: dict[str, list[Boot]] = {}
    for boot in boots:
        by_case.setdefault(boot.case, []).append(boot)
    stats = []
    for case, runs in by_case.items():
        times = [run.seconds for run in runs if run.seconds is not None]
        stats.append(
            CaseStats(
                case,
                len(runs),
                sum(run.passed for run in runs),
                max(times) if times else None,
                round(statistics.median(times), 2) if times else None,
                tuple(run for run in runs if not run.passed),
            )
        )
    return stats


def _seconds(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


def _aligned(row: Sequence[str], widths: Sequence[int]) -> Iterator[str]:
    """The case's name to the left, the numbers to the right."""
    for i, (cell, width) in enumerate(zip(row, widths, strict=True)):
        yield cell.ljust(width) if i == 0 else cell.rjust(width)


def table(stats: Sequence[CaseStats]) -> str:
    """The soak as a table, one row per case, then the totals; each failure below with its reason and console."""
    rows = [
        (s.case, str(s.boots), str(s.passed), f"{100 * s.pass_rate:.0f} %", _seconds(s.slowest_seconds),
         _seconds(s.median_seconds))
        for s in stats
    ]  # fmt: skip
    cells = [COLUMNS, *rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(_aligned(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    boots, passed = sum(s.boots for s in stats), sum(s.passed for s in stats)
    lines.append(f"{boots} boots: {passed} passed, {boots - passed} failed")
    for s in stats:
        for failure in s.failures:
            lines.append(f"FAIL {failure.case} round {failure.round}: {failure.observed}: {failure.reason}")
            lines.append(f"  console: {failure.log}")
    return "\n".join(lines)


@dataclass(frozen=True)
class SoakRun:
    """What was soaked and how: the numbers the JSON report starts with."""

    rounds: int
    jobs: int
    load_workers: int
    load_average_start: float
    load_average_end: float
    wall_seconds: float


def report(run: SoakRun, stats: Sequence[CaseStats]) -> dict[str, Any]:
    """soak.json: the run, the totals (every boot counted), and each case's numbers."""
    boots = sum(s.boots for s in stats)
    passed = sum(s.passed for s in stats)
    return {
        **asdict(run),
        "boots": boots,
        "passed": passed,
        "failed": boots - passed,
        "slowest_seconds": max((s.slowest_seconds for s in stats if s.slowest_seconds is not None), default=None),
        "cases": {s.case: s.to_dict() for s in stats},
    }


def write_report(data: dict[str, Any], reports: Path) -> Path:
    path = reports / "soak.json"
    write_atomic(path, json.dumps(data, indent=2) + "\n")
    return path


# --- choosing cases ---


def select_cases(project: Project, demos: Sequence[str] = (), cases: Sequence[str] = ()) -> list[str]:
    """The cases to soak: those of the named demos and the named cases (in the matrix's order), or all of them.
    An unknown name is one line naming it and where the names are."""
    for demo in demos:
        if demo not in project.demos:
            raise ConfigError(f"soak: no demo {demo!r} (configs/demos.toml has: {', '.join(sorted(project.demos))})")
    for case in cases:
        if case not in project.boots:
            raise ConfigError(f"soak: no boot case {case!r} (`doit list smoke` lists them)")
    if not demos and not cases:
        return list(project.boots)
    wanted = set(cases) | {case for demo in demos for case in project.demos[demo].cases}
    return [case for case in project.boots if case in wanted]


def build_tasks(project: Project, cases: Sequence[str]) -> list[str]:
    """The pipeline's tasks that make what these cases boot: their kernels and their images."""
    tasks: dict[str, None] = {}
    for name in cases:
        case = project.boots[name]
        tasks[f"kernel:{case.variant}"] = None
        tasks[f"initramfs:{case.build}-{case.variant}"] = None
    return list(tasks)


# --- the load ---


def _busy(parent: int) -> None:
    """A load worker: spin on one core until stopped, or at once when the soak that started it is gone."""
    while os.getppid() == parent:
        deadline = time.monotonic() + 0.1
        while time.monotonic() < deadline:
            pass


@contextmanager
def host_load(workers: int) -> Iterator[list[multiprocessing.context.SpawnProcess]]:
    """`workers` busy processes (one per core for --load), stopped however the block ends (an error, Ctrl-C);
    a worker whose soak was killed outright notices its parent is gone within 0.1 s and ends too."""
    context = multiprocessing.get_context("spawn")  # nothing of this process (threads, QEMU pipes) inherited
    processes = [
        context.Process(target=_busy, args=(os.getpid(),), name=f"mmulab-soak-load-{i}", daemon=True)
        for i in range(workers)
    ]
    try:
        for process in processes:
            process.start()
        yield processes
    finally:
        for process in processes:
            if process.pid is not None:
                process.terminate()
        for process in processes:
            if process.pid is not None:
                process.join(5)
                if process.is_alive():
                    process.kill()
                    process.join()


# --- running ---


BootOne = Callable[[str, int], Verdict]


def run_rounds(
    cases: Sequence[str],
    rounds: int,
    jobs: int,
    boot_one: BootOne,
    say: Callable[[str], None],
    processes: bool = False,
) -> list[Boot]:
    """Every case `rounds` times, round after round, `jobs` boots at a time; one line per boot as it ends.

    With `processes` each boot runs in a worker process (`boot_one` must pickle), as doit -n does: Ctrl-C
    reaches the workers, whose boots kill their QEMU on the way out; what was not started yet never starts."""
    plan = [(case, number) for number in range(1, rounds + 1) for case in cases]
    total = len(plan)
    pool: Executor = (
        ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"))
        if processes
        else ThreadPoolExecutor(jobs)
    )
    boots = []
    try:
        for done, boot in enumerate(pool.map(_boot, [boot_one] * total, plan), 1):
            boots.append(boot)
            mark = "pass" if boot.passed else f"FAIL ({boot.observed}: {boot.reason})"
            say(f"soak: [{done}/{total}] round {boot.round} {boot.case}: {mark}, {_seconds(boot.seconds)} s")
    except BrokenExecutor:
        pool.shutdown(wait=False, cancel_futures=True)
        raise UserError(f"soak: a boot's worker process died after {len(boots)} of {total} boots (killed?)") from None
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return boots


def _boot(boot_one: BootOne, item: tuple[str, int]) -> Boot:
    case, number = item
    return Boot.of(boot_one(case, number), number)


def pipeline_boot(project: Project, layout: Layout, keep: bool, name: str, round_number: int) -> Verdict:
    """One boot of a case through the pipeline's own boot path, its console kept per round in <build>/soak/
    (a module-level function: a worker process gets it pickled, with functools.partial)."""
    from mmulab.pipeline import actions

    case = project.boots[name]
    pipeline = actions.boot_files(project, case)
    folder = layout.root / "soak"
    files = qemu.BootFiles(
        pipeline.kernel,
        pipeline.initrd,
        folder / f"{name}.{round_number}.log",
        folder / f"{name}.{round_number}.traps",
    )
    verdict = qemu.boot_case(
        project.toolchain, project.variants[case.variant], case, files, actions.resolver(project, case)
    )
    if verdict.passed and not keep:  # by default only a failure's console is kept: a soak of 200 boots writes 200
        files.console_log.unlink(missing_ok=True)
        files.trap_log.unlink(missing_ok=True)
    return verdict


def build_first(project: Project, cases: Sequence[str], jobs: int, who: str = "soak") -> None:
    """Build (or find built) what the cases boot, through doit: the pipeline's own stages and cache (for `who`:
    `mmulab soak`, `mmulab lab`)."""
    from mmulab.core.doitcli import doit_argv

    command = doit_argv(["-n", str(jobs), *build_tasks(project, cases)])
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise UserError(
            f"{who}: building the kernels and images failed (`{' '.join(command[3:])}` exit {result.returncode})"
        )


def soak(
    project: Project,
    cases: Sequence[str],
    rounds: int,
    jobs: int,
    load: bool,
    build: bool = True,
    say: Callable[[str], None] = print,
    keep_consoles: bool = False,
) -> tuple[list[CaseStats], Path]:
    """Build, then boot every case `rounds` times (host loaded with one busy worker per core when `load`);
    the per-case numbers and where soak.json went."""
    from mmulab.core.lock import BuildLock

    layout = Layout(project.build_root(), project.settings.linux_src)
    if build:
        build_first(project, cases, jobs)
    lock = BuildLock(layout.lock())  # no doit run may rebuild a kernel under a boot; held until this process ends
    lock.acquire()
    try:
        workers = (os.cpu_count() or 1) if load else 0
        say(
            f"soak: {len(cases)} case(s) x {rounds} round(s), {jobs} at a time"
            + (f", host loaded by {workers} busy worker(s)" if load else "")
        )
        for stale in (layout.root / "soak").glob("*.*"):  # a previous soak's failures are not this one's
            stale.unlink()
        started, load_start = time.monotonic(), os.getloadavg()[0]
        with host_load(workers):
            boot_one = functools.partial(pipeline_boot, project, layout, keep_consoles)
            boots = run_rounds(cases, rounds, jobs, boot_one, say, processes=True)
        run = SoakRun(rounds, jobs, workers, load_start, os.getloadavg()[0], round(time.monotonic() - started, 1))
    finally:
        if lock.handle is not None:
            lock.handle.close()
    stats = aggregate(boots)
    path = write_report(report(run, stats), layout.reports())
    return stats, path
