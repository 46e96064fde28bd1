"""`mmulab soak`: its pure parts (choosing cases, counting, the table, the JSON), the load workers (they start,
and stop however the soak ends), the hang detector's clock on a busy host, and, slow, every memory demo booted
10 times on a loaded host with no failure."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import LazyProject, default_root

from mmulab.boot import qemu
from mmulab.boot.judge import Outcome, Verdict
from mmulab.boot.qemu import StallClock, TrapWatch
from mmulab.cli import main
from mmulab.core.errors import ConfigError, UserError
from mmulab.pipeline import soak

PROJECT = LazyProject()
MEMORY_DEMOS = ("pagetables", "kspace", "slab", "oom", "swap", "buddy", "numa")


def verdict(case: str, passed: bool, seconds: float | None, observed: Outcome = Outcome.PASS) -> Verdict:
    reason = "" if passed else "QEMU exited (code 0) without printing 'x'"
    return Verdict(case, "d", "c", "nommu", "default", "pass", observed, passed, seconds, reason, log=f"{case}.log")


def boots() -> list[soak.Boot]:
    return [
        soak.Boot.of(verdict("a", True, 3.0), 1),
        soak.Boot.of(verdict("b", True, 10.0), 1),
        soak.Boot.of(verdict("a", False, 7.5, Outcome.INCOMPLETE), 2),
        soak.Boot.of(verdict("b", True, 12.0), 2),
        soak.Boot.of(verdict("a", True, 4.0), 3),
        soak.Boot.of(verdict("b", True, 11.0), 3),
    ]


def test_aggregate_counts_every_boot_per_case() -> None:
    a, b = soak.aggregate(boots())
    assert (a.case, a.boots, a.passed, a.failed) == ("a", 3, 2, 1)
    assert a.pass_rate == pytest.approx(2 / 3)
    assert (a.slowest_seconds, a.median_seconds) == (7.5, 4.0)
    assert [(f.round, f.observed) for f in a.failures] == [(2, "incomplete")]
    assert (b.boots, b.passed, b.failures, b.slowest_seconds, b.median_seconds) == (3, 3, (), 12.0, 11.0)


def test_a_boot_without_a_time_counts_but_has_no_time() -> None:
    (stats,) = soak.aggregate([soak.Boot("x", 1, False, "not-run", None), soak.Boot("x", 2, True, "pass", 2.0)])
    assert (stats.boots, stats.passed, stats.slowest_seconds, stats.median_seconds) == (2, 1, 2.0, 2.0)
    (never,) = soak.aggregate([soak.Boot("y", 1, False, "not-run", None)])
    assert (never.slowest_seconds, never.median_seconds, never.pass_rate) == (None, None, 0.0)


def test_table_has_a_row_per_case_the_totals_and_each_failure() -> None:
    text = soak.table(soak.aggregate(boots()))
    lines = text.splitlines()
    assert lines[0].split() == ["case", "boots", "passed", "pass", "rate", "slowest", "s", "median", "s"]
    assert lines[2].split() == ["a", "3", "2", "67", "%", "7.50", "4.00"]
    assert lines[3].split() == ["b", "3", "3", "100", "%", "12.00", "11.00"]
    assert "6 boots: 5 passed, 1 failed" in lines
    assert "FAIL a round 2: incomplete: QEMU exited (code 0) without printing 'x'" in lines
    assert "  console: a.log" in lines


def test_report_counts_every_boot_and_is_written_beside_the_summary(tmp_path: Path) -> None:
    run = soak.SoakRun(rounds=3, jobs=2, load_workers=2, load_average_start=0.5, load_average_end=2.5, wall_seconds=9)
    data = soak.report(run, soak.aggregate(boots()))
    assert (data["boots"], data["passed"], data["failed"], data["slowest_seconds"]) == (6, 5, 1, 12.0)
    assert (data["rounds"], data["jobs"], data["load_workers"]) == (3, 2, 2)
    assert data["cases"]["a"]["failures"][0]["round"] == 2
    assert data["cases"]["b"] | {"failures": []} == {
        "boots": 3,
        "passed": 3,
        "failed": 0,
        "pass_rate": 1.0,
        "slowest_seconds": 12.0,
        "median_seconds": 11.0,
        "failures": [],
    }
    path = soak.write_report(data, tmp_path / "reports")
    assert path == tmp_path / "reports" / "soak.json"
    assert json.loads(path.read_text()) == data


def test_cases_are_chosen_by_demo_and_by_name_in_the_matrix_order() -> None:
    assert soak.select_cases(PROJECT) == list(PROJECT.boots)
    slab = soak.select_cases(PROJECT, ["slab"])
    assert slab == ["slab-c-mmu", "slab-c-nommu"]
    both = soak.select_cases(PROJECT, ["slab"], ["fork-c-nommu"])
    assert set(both) == {*slab, "fork-c-nommu"}
    assert both == [case for case in PROJECT.boots if case in both]
    with pytest.raises(ConfigError, match=r"soak: no demo 'slabs' \(configs/demos.toml has: .*slab"):
        soak.select_cases(PROJECT, ["slabs"])
    with pytest.raises(ConfigError, match="soak: no boot case 'slab-c'"):
        soak.select_cases(PROJECT, [], ["slab-c"])


def test_the_build_tasks_are_each_cases_kernel_and_image_once() -> None:
    tasks = soak.build_tasks(PROJECT, ["slab-c-mmu", "slab-c-nommu", "oom-c-mmu", "oom-c-mmu-init-hog"])
    assert tasks == [
        "kernel:mmu",
        "initramfs:slab-c-mmu",
        "kernel:nommu",
        "initramfs:slab-c-nommu",
        "initramfs:oom-c-mmu",
    ]


def test_rounds_follow_one_another_and_every_boot_is_counted() -> None:
    said: list[str] = []
    seen: list[tuple[str, int]] = []

    def fake_boot(case: str, number: int) -> Verdict:
        seen.append((case, number))
        return verdict(case, not (case == "b" and number == 2), float(number))

    result = soak.run_rounds(["a", "b"], 3, 1, fake_boot, said.append)
    assert seen == [("a", 1), ("b", 1), ("a", 2), ("b", 2), ("a", 3), ("b", 3)]
    assert [(b.case, b.round, b.passed) for b in result] == [
        ("a", 1, True),
        ("b", 1, True),
        ("a", 2, True),
        ("b", 2, False),
        ("a", 3, True),
        ("b", 3, True),
    ]
    assert said[3].startswith("soak: [4/6] round 2 b: FAIL (pass: QEMU exited")
    assert said[0] == "soak: [1/6] round 1 a: pass, 1.00 s"


def test_jobs_boot_at_once() -> None:
    """Two jobs: the second boot starts while the first is still running (it waits for it to have started)."""
    import threading

    started = {case: threading.Event() for case in ("a", "b")}

    def fake_boot(case: str, number: int) -> Verdict:
        started[case].set()
        other = started["b" if case == "a" else "a"]
        return verdict(case, other.wait(60), 1.0)  # with one job at a time the other never starts: a fails

    result = soak.run_rounds(["a", "b"], 1, 2, fake_boot, lambda _: None)
    assert [b.passed for b in result] == [True, True]


def boot_in_a_worker(case: str, number: int) -> Verdict:
    """A stand-in boot that says which process ran it (in its log field)."""
    return Verdict(case, "d", "c", "nommu", "default", "pass", Outcome.PASS, True, 1.0, log=str(os.getpid()))


def test_boots_can_run_in_worker_processes() -> None:
    """As the soak runs them: each boot in a spawned worker (Ctrl-C reaches it and it kills its QEMU)."""
    result = soak.run_rounds(["a", "b"], 2, 2, boot_in_a_worker, lambda _: None, processes=True)
    assert [(b.case, b.round, b.passed) for b in result] == [
        ("a", 1, True),
        ("b", 1, True),
        ("a", 2, True),
        ("b", 2, True),
    ]
    assert str(os.getpid()) not in {b.log for b in result}


def boot_that_kills_its_worker(case: str, number: int) -> Verdict:
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


def test_a_worker_killed_under_a_boot_is_one_line() -> None:
    with pytest.raises(UserError, match=r"^soak: a boot's worker process died after 0 of 2 boots \(killed\?\)$"):
        soak.run_rounds(["a"], 2, 1, boot_that_kills_its_worker, lambda _: None, processes=True)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for(condition, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_load_workers_spin_and_stop_when_the_soak_ends() -> None:
    with soak.host_load(2) as workers:
        pids = [w.pid for w in workers]
        assert len(pids) == 2 and all(_alive(pid) for pid in pids)

        def busy() -> bool:  # each has used some CPU time (utime, field 14)
            return all(int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[11]) > 0 for pid in pids)

        assert _wait_for(busy)
    assert not any(_alive(pid) for pid in pids)


def test_load_workers_stop_when_the_soak_fails() -> None:
    with pytest.raises(RuntimeError), soak.host_load(1) as workers:
        pid = workers[0].pid
        raise RuntimeError("a boot went wrong")
    assert not _alive(pid)


def test_load_workers_stop_when_the_soak_is_killed(tmp_path: Path) -> None:
    """SIGKILL leaves no finally: a worker notices its soak is gone and ends by itself."""
    script = (
        "from mmulab.pipeline import soak\nimport time\n"
        "with soak.host_load(2) as w:\n    print(*[p.pid for p in w], flush=True)\n    time.sleep(600)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    pids = [int(pid) for pid in process.stdout.readline().split()]
    assert len(pids) == 2 and all(_alive(pid) for pid in pids)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert _wait_for(lambda: not any(_alive(pid) for pid in pids))


def test_bad_soak_arguments_are_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["soak", "--demo", "nope"]) == 2
    assert capsys.readouterr().err.strip().startswith("mmulab: error: soak: no demo 'nope'")
    with pytest.raises(SystemExit) as exit_info:
        main(["soak", "--rounds", "0"])
    assert exit_info.value.code == 2
    assert "'0': not a whole number >= 1" in capsys.readouterr().err


# --- the hang detector on a busy host ---


class FakeHost:
    """A clock and QEMU's threads as /proc would show them (state, nanoseconds run), advanced by hand."""

    def __init__(self) -> None:
        self.now = 100.0
        self.threads: dict[int, tuple[str, int]] | None = {7: ("S", 0)}

    def clock(self) -> float:
        return self.now

    def states(self, pid: int) -> dict[int, tuple[str, int]] | None:
        return dict(self.threads) if self.threads is not None else None

    def advance(self, seconds: float, ran: float = 0.0, state: str = "S", tid: int = 7) -> None:
        assert self.threads is not None
        self.now += seconds
        old = self.threads.get(tid, ("S", 0))[1]
        self.threads[tid] = (state, old + int(ran * 1e9))


def test_time_spent_waiting_for_a_cpu_does_not_count() -> None:
    host = FakeHost()
    clock = StallClock(1, host.clock, host.states)
    host.advance(2.0, ran=0.1, state="R")  # a busy host: QEMU ran 0.1 s of these 2 s and waits for more
    assert clock.advance() == pytest.approx(0.1)
    host.advance(0.3, ran=0.3, state="R")  # running all along (a live guest, or a hart spinning): all counts
    assert clock.advance() == pytest.approx(0.4)
    host.advance(0.3)  # asleep, as a hart parked in wfi leaves it: all of it counts
    assert clock.advance() == pytest.approx(0.7)
    host.advance(5.0, state="D")  # blocked in the host kernel (a log write): nothing counts
    assert clock.advance() == pytest.approx(0.7)
    host.advance(0.0)  # out of D again
    host.advance(0.5, ran=0.2, state="R", tid=8)  # a thread new since the last look ran only in this interval
    assert clock.advance() == pytest.approx(0.9)
    host.advance(0.0, state="R")
    host.advance(0.5, ran=0.4, state="R", tid=8)  # two runnable: the one that ran most says how long QEMU ran
    assert clock.advance() == pytest.approx(1.3)
    clock.restart()
    assert clock.advance() == 0.0


def test_without_schedstat_wall_time_counts() -> None:
    host = FakeHost()
    host.threads = None
    clock = StallClock(1, host.clock, host.states)
    host.now += 0.6
    assert clock.advance() == pytest.approx(0.6)


def test_a_fault_then_a_starved_qemu_is_not_a_stuck_hart(tmp_path: Path) -> None:
    """The trap log ends in a fault and nothing follows for 3 s of wall time, all of it spent waiting for a CPU:
    not stuck. Then 0.6 s of silence QEMU could have used: stuck, named."""
    log = tmp_path / "run.traps"
    line = "riscv_cpu_do_interrupt: hart:0, async:0, cause:{:016x}, epc:0x{:016x}, tval:0x{:016x}, desc=x\n"
    log.write_text(line.format(1, 0xFFFFFFFF800010FA, 0xFFFFFFFF800010FA))
    host = FakeHost()
    watch = TrapWatch(log, clock=StallClock(1, host.clock, host.states))
    assert watch.poll() is None  # reads the fault
    for _ in range(30):  # runnable, and never given the CPU
        host.advance(0.1, state="R")
        assert watch.poll() is None
    host.advance(0.3)
    assert watch.poll() is None
    host.advance(0.3)
    stuck = watch.poll()
    assert stuck is not None and stuck.kind == "stall" and stuck.trap.cause == 1
    watch.close()


STARVED_QEMU = """
import os, sys, time
log, cpu = sys.argv[2], int(sys.argv[3])
os.sched_setaffinity(0, {cpu})  # the busy competitor's CPU, at the lowest weight there is: starved
os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
try:  # QEMU runs in a session of its own: where sessions share the CPU as groups, lower this one's share too
    with open("/proc/self/autogroup", "w") as group:
        group.write("19")
except OSError:
    pass
line = "riscv_cpu_do_interrupt: hart:0, async:{}, cause:{:016x}, epc:0x{:016x}, tval:0x0, desc=x\\n"
print("start", flush=True)
with open(log, "w") as traps:
    traps.write(line.format(0, 13, 0x10000))  # a load page fault, as a live kernel takes all the time
    traps.flush()
    spent = time.process_time()
    while time.process_time() - spent < 0.03:  # 30 ms of its own work: seconds on a starved CPU
        pass
    traps.write(line.format(1, 5, 0x80002000))  # then a timer interrupt: it was alive all along
print("done", flush=True)
"""


@pytest.fixture
def busy_cpu() -> Iterator[int]:
    """One CPU of ours kept busy by a competitor pinned to it; its number."""
    cpu = min(os.sched_getaffinity(0))
    spin = f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nprint('spinning', flush=True)\nwhile True: pass\n"
    competitor = subprocess.Popen([sys.executable, "-c", spin], stdout=subprocess.PIPE, text=True)
    assert competitor.stdout is not None and competitor.stdout.readline() == "spinning\n"
    yield cpu
    competitor.kill()
    competitor.wait()


@pytest.mark.parametrize("traps", [True, False], ids=["trap-watch", "timeout"])
def test_a_starved_live_boot_is_neither_stuck_nor_timed_out(busy_cpu: int, tmp_path: Path, traps: bool) -> None:
    """A stand-in QEMU on a CPU another process keeps busy: after a fault it needs seconds of wall time for 30 ms of
    work. That wait is neither the trap watch's 0.5 s of silence nor the 2 s timeout: the boot runs to its end.
    (With the old wall-clock rules it failed as hung 3 times out of 3, after 0.7 to 1.1 s.)"""
    script = tmp_path / "qemu.py"
    script.write_text(STARVED_QEMU)
    trap_log = tmp_path / "run.traps"
    live = replace(PROJECT.boots["clone_vm-asm-nommu"], must=("start", "done"), timeout=2, traps=traps)
    command = [sys.executable, str(script), str(trap_log), str(busy_cpu)]
    verdict = qemu.run_captured(
        [command[0], command[1], "-D", *command[2:]], live, tmp_path / "l", None, trap_log if traps else None
    )
    assert verdict.passed, verdict.summary()
    assert "riscv_cpu_do_interrupt: hart:0, async:1" in trap_log.read_text()
    print("starved stand-in: verdict after", verdict.seconds, "s of wall time")


def test_a_real_process_reports_its_threads_and_their_wait() -> None:
    states = qemu.thread_states(os.getpid())
    assert states is not None and os.getpid() in states
    state, waited = states[os.getpid()]
    assert state == "R" and waited >= 0  # it is running: it is reading its own /proc
    assert qemu.thread_states(2**22 + 12345) is None


# --- slow: every memory demo, 3 times, on a loaded host ---


@pytest.mark.slow
def test_every_memory_demo_passes_three_times_on_a_loaded_host(session_build: Path, kernel_tree: Path) -> None:
    """Both kernels, every memory demo's case, 3 rounds, 2 boots at once, one busy worker per core: no failure,
    and soak.json counts every boot. (The session's build directory: the kernels and images are built once. Longer
    soaks are a benchmark: bench/bench_soak.py.)"""
    rounds = 3
    demos = [arg for demo in MEMORY_DEMOS for arg in ("--demo", demo)]
    command = [sys.executable, "-m", "mmulab", "soak", *demos, "--rounds", str(rounds), "--load", "-n", "2"]
    env = {**os.environ, "MMULAB_BUILD_DIR": str(session_build), "MMULAB_PROGRESS": "off"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
    report = json.loads((default_root(session_build) / "reports" / "soak.json").read_text())
    cases = soak.select_cases(PROJECT, MEMORY_DEMOS)
    assert {PROJECT.variants[PROJECT.boots[c].variant].mmu for c in cases} == {True, False}
    assert (report["boots"], report["failed"], report["load_workers"]) == (rounds * len(cases), 0, os.cpu_count())
    assert {case: stats["boots"] for case, stats in report["cases"].items()} == {case: rounds for case in cases}
    print(soak.table([soak.CaseStats(c, s["boots"], s["passed"], s["slowest_seconds"], s["median_seconds"])
                      for c, s in report["cases"].items()]))  # fmt: skip
