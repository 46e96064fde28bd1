"""Boot verdicts: judged from the console, on recorded real logs of every case and on real processes
that hang or panic."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from conftest import LazyProject, checkout_configs

from mmulab.boot import judge, qemu, symbolize
from mmulab.project.model import BootCase

DATA = Path(__file__).parent / "data"
PROJECT = LazyProject()
CASES = sorted(checkout_configs().boots)


def lines(name: str) -> list[str]:
    return (DATA / name).read_text().splitlines()


def recorded(case: str) -> list[str]:
    return lines(f"boots/{case}.log")


def judge_recorded(case: BootCase, log: list[str]) -> judge.Verdict:
    """Judge a log as the harness would have seen it: a hang case ends at its timeout, others exit 0."""
    hung = case.expect == "hang"
    return judge.judge(case, log, timed_out=hung, exit_code=None if hung else 0, seconds=1)


@pytest.fixture
def case() -> BootCase:
    return PROJECT.boots["clone_vm-asm-nommu"]


def test_every_case_has_a_recorded_log() -> None:
    assert sorted(p.stem for p in (DATA / "boots").glob("*.log")) == CASES


@pytest.mark.parametrize("name", CASES)
def test_recorded_log_of_every_case_passes(name: str) -> None:
    verdict = judge_recorded(PROJECT.boots[name], recorded(name))
    assert verdict.passed, verdict.summary()
    assert verdict.observed == PROJECT.boots[name].expect


@pytest.mark.parametrize("name", CASES)
def test_every_case_fails_when_its_last_marker_is_missing(name: str) -> None:
    case = PROJECT.boots[name]
    last = case.must[-1]
    log = [line for line in recorded(name) if last not in line]
    verdict = judge_recorded(case, log)
    assert not verdict.passed
    assert last in verdict.missing


@pytest.mark.parametrize(
    ("name", "other"),
    [
        (f"{demo}-{language}-{variant}", f"{demo}-{language}-{other}")
        for demo in ("addrspace", "fork")
        for language in ("asm", "c")
        for variant, other in (("nommu", "mmu"), ("mmu", "nommu"))
    ]
    + [
        (f"{demo}-c-{variant}", f"{demo}-c-{other}")
        for demo in ("pagetables", "kspace", "oom")
        for variant, other in (("nommu", "mmu"), ("mmu", "nommu"))
    ]
    + [("pagetables-c-mmu", "pagetables-c-mmu-sv39"), ("pagetables-c-mmu-sv39", "pagetables-c-mmu")],
)
def test_isolation_demos_tell_the_kernels_apart(name: str, other: str) -> None:
    """The MMU log fails the NOMMU expectations and the other way round: the demos show the difference."""
    verdict = judge_recorded(PROJECT.boots[name], recorded(other))
    assert not verdict.passed and verdict.missing


def test_slab_shows_the_same_on_both_kernels() -> None:
    """Slab allocation does not depend on the MMU: each kernel's log meets the other's expectations."""
    for variant, other in (("nommu", "mmu"), ("mmu", "nommu")):
        assert judge_recorded(PROJECT.boots[f"slab-c-{variant}"], recorded(f"slab-c-{other}")).passed


def test_asm_and_c_builds_print_the_same_markers() -> None:
    for name, case in PROJECT.boots.items():
        if case.build.endswith("-asm"):
            twin = name.replace("-asm-", "-c-", 1)
            assert judge_recorded(PROJECT.boots[twin], recorded(name)).passed, (name, twin)


def test_panic_fails_even_though_qemu_exited_zero(case: BootCase) -> None:
    verdict = judge.judge(case, lines("nommu-panic.log"), timed_out=False, exit_code=0, seconds=0.4)
    assert not verdict.passed
    assert verdict.observed == "forbidden-line"
    assert "Kernel panic - not syncing: No working init found" in verdict.reason
    assert "Kernel panic" in verdict.excerpt and "Run /init as init process" in verdict.excerpt
    assert "FAIL" in verdict.summary()


def test_a_boot_that_stops_early_is_a_hang_naming_the_missing_line(case: BootCase) -> None:
    log = recorded(case.name)
    cut = next(i for i, line in enumerate(log) if "before clone" in line)
    verdict = judge.judge(case, log[: cut + 1], timed_out=True, exit_code=None, seconds=60)
    assert (verdict.passed, verdict.observed) == (False, "hang")
    assert "never saw \"mmulab: child: writing 'B' into the shared byte\"" in verdict.reason
    assert verdict.excerpt.splitlines()[-1].endswith("shared byte before clone = A")


def test_markers_must_come_in_order(case: BootCase) -> None:
    log = [line for line in recorded(case.name) if "before clone" not in line]
    log.append("mmulab: parent: shared byte before clone = A")
    verdict = judge.judge(case, log, timed_out=False, exit_code=0, seconds=1)
    assert verdict.observed == "incomplete"
    assert verdict.missing == (
        "mmulab: child: writing 'B' into the shared byte",
        "mmulab: parent: shared byte after child exit = B",
        "reboot: Power down",
    )


def test_expected_hang_passes_only_when_it_hangs() -> None:
    hang_case = PROJECT.boots["clone_vm-asm-mmu-mmu-off"]
    assert judge_recorded(hang_case, recorded(hang_case.name)).passed
    finished = judge.judge(hang_case, recorded(hang_case.name), timed_out=False, exit_code=0, seconds=1)
    assert not finished.passed and "expected the boot to hang" in finished.reason
    silent = judge.judge(hang_case, [], timed_out=True, exit_code=None, seconds=5)
    assert not silent.passed and "never printed" in silent.reason
    booted = judge.judge(hang_case, recorded("clone_vm-asm-mmu"), timed_out=True, exit_code=None, seconds=5)
    assert not booted.passed and booted.observed == "forbidden-line"


def fake_case(case: BootCase, timeout: float) -> BootCase:
    return replace(case, must=("start", "done"), timeout=timeout)


def test_real_process_that_hangs_is_killed_at_the_timeout(case: BootCase, tmp_path: Path) -> None:
    """Killed, not waited for: the stand-in would note that it lived to the end of its sleep."""
    survived = tmp_path / "survived"
    script = f"echo start; sleep 60; touch {survived}"
    verdict = qemu.run_captured(["sh", "-c", script], fake_case(case, 1.5), tmp_path / "l")
    assert (verdict.passed, verdict.observed) == (False, "hang")
    assert verdict.reason.startswith("no power-off within 1.5 s"), verdict.reason
    assert (tmp_path / "l").read_text().splitlines()[-1] == "start"
    assert not survived.exists()


def test_real_process_that_panics_is_stopped_at_once(case: BootCase, tmp_path: Path) -> None:
    """Stopped by the panic line, not by the timeout: the stand-in would outlive neither."""
    survived = tmp_path / "survived"
    script = f"echo start; echo '[ 0.1] Kernel panic - not syncing: test'; echo trace; sleep 60; touch {survived}"
    verdict = qemu.run_captured(["sh", "-c", script], fake_case(case, 600), tmp_path / "l")
    assert verdict.observed == "forbidden-line" and "trace" in verdict.excerpt
    assert "Kernel panic - not syncing: test" in verdict.reason and "600" not in verdict.reason
    assert not survived.exists()


def test_real_process_that_finishes_passes(case: BootCase, tmp_path: Path) -> None:
    verdict = qemu.run_captured(["sh", "-c", "echo start; echo done"], fake_case(case, 20), tmp_path / "l")
    assert verdict.passed, verdict.summary()
    failing = qemu.run_captured(["sh", "-c", "echo start; echo done; exit 3"], fake_case(case, 20), tmp_path / "l")
    assert (failing.passed, failing.observed) == (False, "qemu-error")


# ---------------------------------------------------------------------------------------------------
# Expected panics, named faults and trap-watched hangs

SYMBOLS = DATA / "symbolize"


def panic_case(case: BootCase) -> BootCase:
    return replace(
        case,
        expect="panic",
        must=("Run /init as init process", "Kernel panic - not syncing: No working init found"),
        must_not=("Oops", "Unable to handle kernel"),
    )


def test_expected_panic_passes_only_when_it_panics(case: BootCase) -> None:
    expected = panic_case(case)
    verdict = judge.judge(expected, lines("nommu-panic.log"), timed_out=False, exit_code=0, seconds=0.4)
    assert (verdict.passed, verdict.observed) == (True, "panic"), verdict.summary()
    assert verdict.reason.startswith("panicked as expected: 'Kernel panic - not syncing: No working init found")
    assert verdict.summary().startswith("boot clone_vm-asm-nommu: PASS (expected panic, observed panic")
    finished = judge.judge(expected, recorded(case.name), timed_out=False, exit_code=0, seconds=1)
    assert (finished.passed, finished.observed) == (False, "incomplete")
    assert finished.reason.startswith("expected a kernel panic: QEMU exited (code 0) without printing")
    other = replace(expected, must=("Run /init as init process", "Kernel panic - not syncing: Out of memory"))
    wrong = judge.judge(other, lines("nommu-panic.log"), timed_out=False, exit_code=0, seconds=0.4)
    assert not wrong.passed and wrong.reason == "panicked as expected but never printed " + repr(other.must[1])
    oops = judge.judge(expected, (SYMBOLS / "nommu-oops.log").read_text().splitlines(), False, 0, 1)
    assert (oops.passed, oops.observed) == (False, "forbidden-line")  # an oops is not the panic expected


def test_a_panic_not_forbidden_is_still_not_a_pass(case: BootCase) -> None:
    lenient = replace(case, must_not=("Oops",))
    verdict = judge.judge(lenient, lines("nommu-panic.log"), timed_out=False, exit_code=0, seconds=0.4)
    assert (verdict.passed, verdict.observed) == (False, "panic")
    assert "No working init found" in verdict.reason and "Kernel panic" in verdict.excerpt


PANIC_AFTER_ALL = "[    9.9] Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b"


@pytest.mark.parametrize("name", [name for name in CASES if PROJECT.boots[name].expect == "pass"])
def test_a_panic_after_every_must_line_is_still_not_a_pass(name: str) -> None:
    """Every must line printed, then a panic no must_not line forbids: a panic, never a pass."""
    lenient = replace(PROJECT.boots[name], must_not=())
    verdict = judge.judge(lenient, [*recorded(name), PANIC_AFTER_ALL], timed_out=False, exit_code=0, seconds=1)
    assert verdict.missing == ()
    assert (verdict.passed, verdict.observed) == (False, "panic"), verdict.summary()
    assert "Attempted to kill init" in verdict.reason


def test_verdict_names_the_faults_the_console_shows() -> None:
    mmu_case = PROJECT.boots["addrspace-c-mmu"]
    resolver = qemu.Resolver(None, {"addrspace-child": SYMBOLS / "addrspace-child-c"})
    verdict = judge.judge(mmu_case, recorded(mmu_case.name), False, 0, 1, resolver=resolver)
    assert verdict.passed
    (note,) = verdict.notes
    assert "in main+0x204 at initsrc/addrspace/child.c:34: `*target = 0x3333;`, touched 0x7ffff7fe9000" in note
    assert note in verdict.summary() and note in verdict.to_dict()["notes"]
    oops_case = PROJECT.boots["clone_vm-c-nommu"]
    symbols = qemu.Resolver(symbolize.SymbolTable.load(SYMBOLS / "nommu-plain.System.map"))
    failed = judge.judge(
        oops_case, (SYMBOLS / "nommu-oops-plain.log").read_text().splitlines(), False, 0, 1, None, symbols
    )
    assert not failed.passed and "epc memcpy+0xd4/0xf8 (0x80185a14)" in failed.summary()
    assert "vfs_write+0xe4/0x124" in failed.notes[0]
    assert "[<000000008008c718>] 0x000000008008c718  <- vfs_write+0xe4/0x124" in failed.excerpt
    assert "sp : 000000008042fc60  <- epc memcpy+0xd4/0xf8, ra _copy_from_iter+0x6c/0x368" in failed.excerpt


def test_hang_proven_by_the_trap_log_names_symbol_and_cause() -> None:
    hang_case = PROJECT.boots["clone_vm-asm-mmu-mmu-off"]
    assert hang_case.traps
    traps = symbolize.parse_traps((SYMBOLS / "mmu-mmu-off.traps").read_text())
    stuck = symbolize.with_symbols(symbolize.last_fault(traps), symbolize.SymbolTable.load(SYMBOLS / "mmu.System.map"))
    verdict = judge.judge(hang_case, recorded(hang_case.name), False, None, 0.8, stuck=stuck)
    assert (verdict.passed, verdict.observed) == (True, "hang")
    assert verdict.reason.startswith(
        "hung as expected: stuck after a fault at _start_kernel+0x76/0xf7c (cause 1: instruction access fault"
    )
    assert verdict.reason in verdict.summary()
    booted = judge.judge(hang_case, recorded("clone_vm-asm-mmu"), False, None, 0.8, stuck=stuck)
    assert not booted.passed and booted.observed == "forbidden-line"


def fake_qemu(tmp_path: Path, body: str) -> list[str]:
    """A stand-in for QEMU: prints a console and writes its trap log where `-D` says, as QEMU does."""
    script = tmp_path / "qemu.sh"
    script.write_text(f'log="$2"\n{body}\n')
    return ["sh", str(script), "-D", str(tmp_path / "run.traps")]


TRAP_LINE = "riscv_cpu_do_interrupt: hart:0, async:{a}, cause:{c:016x}, epc:0x{pc:016x}, tval:0x{pc:016x}, desc=x"


def test_a_stuck_hart_ends_the_boot_at_once(case: BootCase, tmp_path: Path) -> None:
    hang_case = replace(case, expect="hang", must=("OpenSBI",), timeout=20, traps=True)
    recorded_traps = SYMBOLS / "mmu-mmu-off.traps"
    command = fake_qemu(tmp_path, f'echo OpenSBI; cat {recorded_traps} > "$log"; exec sleep 60')
    resolver = qemu.Resolver(symbolize.SymbolTable.load(SYMBOLS / "mmu.System.map"))
    verdict = qemu.run_captured(command, hang_case, tmp_path / "l", resolver, tmp_path / "run.traps")
    assert verdict.passed, verdict.summary()
    # Proven by the trap log, not by the timeout (which would give a bare "hung as expected").
    assert verdict.reason.startswith("hung as expected: stuck after a fault at _start_kernel+0x76/0xf7c (cause 1:")


def test_a_trap_loop_ends_the_boot_at_once(case: BootCase, tmp_path: Path) -> None:
    hang_case = replace(case, expect="hang", must=("start",), timeout=20, traps=True)
    line = TRAP_LINE.format(a=0, c=12, pc=0xFFFFFFFF80001094)
    command = fake_qemu(tmp_path, f'echo start; while :; do echo "{line}"; done > "$log"')
    verdict = qemu.run_captured(command, hang_case, tmp_path / "l", None, tmp_path / "run.traps")
    assert verdict.passed, verdict.summary()
    assert verdict.reason.startswith("hung as expected: trap loop at 0xffffffff80001094 (cause 12: instruction page")


def test_a_live_hart_is_not_stopped_by_the_trap_watch(case: BootCase, tmp_path: Path) -> None:
    """Timer interrupts keep coming after a page fault: not stuck; the boot runs on to its end."""
    live = replace(case, must=("start", "done"), timeout=20, traps=True)
    fault, timer = TRAP_LINE.format(a=0, c=13, pc=0x10000), TRAP_LINE.format(a=1, c=5, pc=0x80002000)
    ticks = f'for i in 1 2 3 4 5 6 7 8 9 10; do sleep 0.15; echo "{timer}" >> "$log"; done'
    body = f'echo start; echo "{fault}" > "$log"; {ticks}; echo done'
    verdict = qemu.run_captured(fake_qemu(tmp_path, body), live, tmp_path / "l", None, tmp_path / "run.traps")
    assert verdict.passed, verdict.summary()  # "done" comes after the last tick: it ran to its end
    assert (tmp_path / "run.traps").read_text().count("async:1") == 10


def test_trap_log_option_is_in_the_qemu_command(tmp_path: Path) -> None:
    hang_case = PROJECT.boots["clone_vm-asm-mmu-mmu-off"]
    variant = PROJECT.variants["mmu"]
    command = qemu.qemu_command(PROJECT.toolchain, variant, Path("I"), Path("R"), hang_case, False, tmp_path / "t")
    assert command[-4:] == ["-d", "int", "-D", str(tmp_path / "t")]
    assert "-d" not in qemu.qemu_command(PROJECT.toolchain, variant, Path("I"), Path("R"), hang_case, False)


# --- assertions that kill surviving mutants of the judge (bench/bench_mutation.py) ---


def test_every_outcome_is_judged_with_its_exact_reason(case: BootCase) -> None:
    """One small console per outcome, each verdict compared field by field."""
    small = replace(case, must=("start", "done"), must_not=("Oops",), timeout=3, expect="pass")
    log = Path("/logs/x.log")

    def judged(console: list[str], timed_out: bool = False, code: int | None = 0, expect: str = "pass"):
        return judge.judge(replace(small, expect=expect), console, timed_out, code, 1.234, log)

    ok = judged(["start", "done"])
    assert (ok.observed, ok.passed, ok.reason, ok.excerpt, ok.missing) == ("pass", True, "", "", ())
    assert (ok.seconds, ok.log, ok.expected, ok.case, ok.notes) == (1.23, "/logs/x.log", "pass", case.name, ())
    assert ok.to_dict()["observed"] == "pass" and ok.to_dict()["missing"] == []
    assert judged(["start", "done"], code=None).passed  # no exit code (killed after power-off) is not an error
    error = judged(["start", "done"], code=3)
    assert (error.observed, error.passed, error.reason) == ("qemu-error", False, "QEMU exited with code 3")
    short = judged(["start"], code=1)
    assert (short.observed, short.missing) == ("incomplete", ("done",))
    assert short.reason == "QEMU exited (code 1) without printing 'done'"
    backwards = judged(["done", "start"])
    assert (backwards.observed, backwards.missing) == ("incomplete", ("done",))  # markers in order only
    hung = judged(["start"], timed_out=True, code=None)
    assert (hung.observed, hung.reason) == ("hang", "no power-off within 3 s; never saw 'done'")
    silent_hang = judged(["start", "done"], timed_out=True, code=None)
    assert (silent_hang.observed, silent_hang.reason) == ("hang", "no power-off within 3 s")
    bad = judged(["start", "  Oops here  ", "done"])
    assert (bad.observed, bad.reason) == ("forbidden-line", "console printed 'Oops here'")
    panic = judged(["start", "[ 1.0] Kernel panic - not syncing: boom  ", "done"])
    assert (panic.observed, panic.reason) == ("panic", "the kernel panicked: 'Kernel panic - not syncing: boom'")
    expected_hang = judged(["start", "done"], timed_out=True, code=None, expect="hang")
    assert (expected_hang.passed, expected_hang.reason) == (True, "hung as expected: no power-off within 3 s")
    finished = judged(["start", "done"], expect="hang")
    assert (finished.passed, finished.reason) == (False, "expected the boot to hang, but it finished")
    no_panic = judged(["start", "done"], expect="panic")
    assert (no_panic.passed, no_panic.reason) == (False, "expected a kernel panic, but the boot finished")
    unfinished = judged(["start"], timed_out=True, code=None, expect="hang")
    assert (unfinished.passed, unfinished.reason) == (False, "hung as expected but never printed 'done'")
    assert judged(["start", "done"], code=0).seconds == 1.23


def test_the_excerpt_is_the_console_around_the_failure(case: BootCase) -> None:
    small = replace(case, must=("start", "done"), must_not=("Oops",), expect="pass")
    console = [f"line {i}" for i in range(100)]
    at_end = judge.judge(small, console, False, 0, 1).excerpt.splitlines()
    assert at_end == [f"  | line {i}" for i in range(100 - judge.EXCERPT_AFTER, 100)]
    console[50] = "Oops: here"
    around = judge.judge(small, console, False, 0, 1).excerpt.splitlines()
    first = 50 - judge.EXCERPT_BEFORE
    assert around == [f"  | {console[i]}" for i in range(first, first + judge.EXCERPT_BEFORE + judge.EXCERPT_AFTER)]
    console[2] = "Oops: early"
    early = judge.judge(small, console, False, 0, 1).excerpt.splitlines()
    assert early[0] == "  | line 0" and len(early) == 2 + judge.EXCERPT_AFTER  # from the top, as far after
    assert judge.judge(small, ["a", "b"], False, 0, 1).excerpt == "  | a\n  | b"


def test_a_failed_hang_notes_what_the_trap_log_proved(case: BootCase) -> None:
    stuck = symbolize.TrapDiagnosis("loop", symbolize.Trap(0, False, 12, 0x80001000, 0x80001000), 8)
    hang_case = replace(case, must=("start", "done"), expect="hang")
    missing = judge.judge(hang_case, ["start"], False, None, 1, stuck=stuck)
    assert (missing.observed, missing.passed) == ("hang", False)
    assert missing.notes == (f"trap log: {stuck.describe()}",)
    assert missing.reason == "hung as expected but never printed 'done'"
    proven = judge.judge(hang_case, ["start", "done"], False, None, 1, stuck=stuck)
    assert proven.passed and proven.notes == () and proven.reason == f"hung as expected: {stuck.describe()}"
    passing = replace(case, must=("start",), expect="pass")
    wrong = judge.judge(passing, ["start"], False, 0, 1, stuck=stuck)
    assert (wrong.observed, wrong.reason) == ("hang", stuck.describe())


def test_verdicts_read_back_and_summarize(case: BootCase, tmp_path: Path) -> None:
    small = replace(case, must=("start", "done"), expect="pass")
    verdict = judge.judge(small, ["start"], False, 0, 2.5, tmp_path / "c.log")
    verdict.write(tmp_path / "v.json")
    again = judge.Verdict.read(tmp_path / "v.json")
    assert again == verdict and again.observed is judge.Outcome.INCOMPLETE
    assert verdict.summary() == (
        f"boot {case.name}: FAIL (expected pass, observed incomplete, 2.5 s): QEMU exited (code 0) without "
        f"printing 'done'\nconsole log: {tmp_path / 'c.log'}\n  | start"
    )
    assert verdict.facts() == {
        "case": case.name,
        "demo": case.demo,
        "variant": case.variant,
        "qemu": case.qemu_options,
        "expected": "pass",
        "observed": "incomplete",
        "passed": False,
    }
    not_run = judge.Verdict.not_run(small)
    assert (not_run.observed, not_run.passed, not_run.seconds) == ("not-run", False, None)
    assert not_run.reason == "not run: a task it depends on failed" and not_run.variant == case.variant
    bare = judge.Verdict.not_run("x", "why")
    assert bare.summary() == "boot x: FAIL (expected , observed not-run, 0.0 s): why\nconsole log: "


def test_the_trap_watch_reads_whole_lines_as_they_come(tmp_path: Path) -> None:
    log = tmp_path / "traps"
    watch = qemu.TrapWatch(log)
    assert watch.poll() is None  # no log yet
    line = TRAP_LINE.format(a=0, c=12, pc=0x80001094) + "\n"
    log.write_text(line * (symbolize.LOOP_REPEATS - 1) + line[:30])  # the last line cut in the middle
    assert watch.poll() is None and len(watch.recent) == symbolize.LOOP_REPEATS - 1
    with log.open("a") as handle:
        handle.write(line[30:])
    loop = watch.poll()
    assert loop is not None and loop.kind == "loop" and loop.repeats == symbolize.LOOP_REPEATS
    assert loop.trap == symbolize.Trap(0, False, 12, 0x80001094, 0x80001094)
    watch.close()


def test_the_trap_watch_keeps_only_the_end_of_a_storm(tmp_path: Path) -> None:
    log = tmp_path / "traps"
    other = TRAP_LINE.format(a=0, c=13, pc=0x80002000) + "\n"
    loop = TRAP_LINE.format(a=0, c=12, pc=0x80001094) + "\n"
    log.write_text(other * (qemu.TRAP_TAIL_BYTES // len(other) + 10) + loop * symbolize.LOOP_REPEATS)
    watch = qemu.TrapWatch(log)
    found = watch.poll()
    assert found is not None and found.trap.cause == 12
    assert len(watch.recent) == symbolize.LOOP_REPEATS * 4 and watch.partial == b""
    watch.close()


def test_verdict_fields_of_an_unrun_case_and_of_notes(case: BootCase) -> None:
    unrun = judge.Verdict.not_run(case)
    assert (unrun.case, unrun.demo, unrun.build, unrun.variant, unrun.qemu, unrun.expected) == (
        case.name,
        case.demo,
        case.build,
        case.variant,
        case.qemu_options,
        case.expect,
    )
    assert (unrun.passed, unrun.log, unrun.excerpt) == (False, "", "")
    named = judge.Verdict.not_run("x")
    assert (named.case, named.demo, named.build, named.variant, named.qemu, named.expected) == ("x", "", "", "", "", "")
    assert named.passed is False
    noted = replace(judge.judge(case, recorded(case.name), False, 0, 1), notes=("one\ntwo", "three"))
    assert noted.passed and noted.build == case.build and noted.log == ""
    assert noted.summary().endswith("\n  one\n  two\n  three")
    assert noted.to_dict()["notes"] == ["one\ntwo", "three"] and noted.to_dict()["observed"] == "pass"
    assert noted.summary().split("\n")[0].endswith(" s)")  # a pass without a reason says none


def test_the_excerpt_of_a_panic_is_around_the_panic(case: BootCase) -> None:
    console = [f"line {i}" for i in range(100)]
    console[60] = "[ 2.0] Kernel panic - not syncing: here"
    verdict = judge.judge(replace(case, must=("line 0",), must_not=()), console, False, 0, 1)
    assert verdict.observed == "panic"
    assert verdict.excerpt.splitlines()[judge.EXCERPT_BEFORE] == f"  | {console[60]}"
