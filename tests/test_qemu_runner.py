"""Boot orchestration driven through a fake runner, as kunit_tool tests its LinuxSourceTreeOperations: a scripted
console on a fake clock, so the timeout, the panic grace, the trap watch, the stop and the console log are checked
without starting QEMU or waiting; and the real `Runner.stream` seam on small real processes."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from conftest import LazyProject

from mmulab.boot import qemu, symbolize
from mmulab.core import tools
from mmulab.core.errors import UserError
from mmulab.core.tools import LineBuffer, Output, Runner
from mmulab.project.model import BootCase

PROJECT = LazyProject()
DATA = Path(__file__).parent / "data"
PANIC = "[    0.1] Kernel panic - not syncing: test"
TRAP_LINE = "riscv_cpu_do_interrupt: hart:0, async:{a}, cause:{c:016x}, epc:0x{pc:016x}, tval:0x{pc:016x}, desc=x"


class FakeClock:
    """The time a fake QEMU runs in: it moves only when the boot waits on the fake (a read, a wait)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Step:
    """What the fake QEMU does `at` seconds after it starts: print `console`, append `traps` to its -D log."""

    at: float
    console: bytes = b""
    traps: str = ""


class FakeQemu:
    """Stands in for `tools.Stream`: plays its steps as the clock reaches them; its output ends at `exit_at`
    (`output_ends_at` when earlier), when it exits with `exit_code`; with `exit_at` None it never does."""

    pid = None  # no /proc to read: the boot's StallClocks count the fake clock's time

    def __init__(
        self,
        clock: FakeClock,
        steps: Sequence[Step],
        exit_at: float | None,
        exit_code: int,
        trap_log: Path | None,
        output_ends_at: float | None,
    ) -> None:
        self.clock, self.steps, self.exit_code, self.trap_log = clock, list(steps), exit_code, trap_log
        self.start = clock.now
        self.exit_at = None if exit_at is None else self.start + exit_at
        ends = exit_at if output_ends_at is None else output_ends_at
        self.output_ends_at = None if ends is None else self.start + ends
        self.lines = LineBuffer()

    def _due(self, until: float) -> Step | None:
        if self.steps and self.start + self.steps[0].at <= until:
            return self.steps.pop(0)
        return None

    def _play(self, step: Step) -> Output:
        self.clock.now = max(self.clock.now, self.start + step.at)
        if step.traps:
            assert self.trap_log is not None
            with self.trap_log.open("a") as handle:
                handle.write(step.traps)
        return self.lines.feed(step.console)

    def read(self, timeout: float) -> Output | None:
        until = self.clock.now + max(0.0, timeout)
        if (step := self._due(until)) is not None:
            return self._play(step)
        if self.output_ends_at is not None and self.output_ends_at <= until:
            self.clock.now = max(self.clock.now, self.output_ends_at)
            return None
        self.clock.now = until
        return None if self.poll() is not None else Output()

    def drain(self) -> Output:
        played = [self._play(step) for step in iter(lambda: self._due(self.clock.now), None)]
        return Output(b"".join(o.raw for o in played), tuple(line for o in played for line in o.lines))

    def unfinished(self) -> str:
        return self.lines.rest()

    def poll(self) -> int | None:
        return self.exit_code if self.exit_at is not None and self.exit_at <= self.clock.now else None

    def wait(self, timeout: float) -> int | None:
        if self.exit_at is not None and self.exit_at <= self.clock.now + timeout:
            self.clock.now = max(self.clock.now, self.exit_at)
            return self.exit_code
        self.clock.now += timeout
        return None


class FakeRunner(Runner):
    """A Runner whose one process is a FakeQemu; it records the command and whether the process still ran when
    the boot let go of it (the real runner then stops its group)."""

    def __init__(
        self,
        clock: FakeClock,
        steps: Sequence[Step],
        exit_at: float | None = None,
        exit_code: int = 0,
        trap_log: Path | None = None,
        output_ends_at: float | None = None,
    ) -> None:
        self.clock, self.script = clock, (steps, exit_at, exit_code, trap_log, output_ends_at)
        self.commands: list[list[str]] = []
        self.stopped: list[bool] = []
        self.fake: FakeQemu | None = None

    @contextlib.contextmanager
    def stream(self, command: Sequence[str | Path]) -> Iterator[FakeQemu]:  # type: ignore[override]
        self.commands.append([str(part) for part in command])
        self.fake = FakeQemu(self.clock, *self.script)
        try:
            yield self.fake
        finally:
            self.stopped.append(self.fake.poll() is None)


def console(*lines: str) -> bytes:
    return "".join(f"{line}\r\n" for line in lines).encode()  # a serial console ends its lines with \r\n


@pytest.fixture
def case() -> BootCase:
    return replace(PROJECT.boots["clone_vm-asm-nommu"], must=("start", "done"), timeout=3)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


COMMAND = ["qemu-system-riscv64", "-kernel", "Image"]


def boot(runner: FakeRunner, case: BootCase, log: Path, trap_log: Path | None = None, resolver=None):
    return qemu.run_captured(COMMAND, case, log, resolver, trap_log, runner=runner, clock=runner.clock)


def test_a_scripted_console_that_powers_off_passes_and_is_logged(case: BootCase, clock: FakeClock, tmp_path: Path):
    runner = FakeRunner(clock, [Step(0.2, console("start")), Step(0.4, console("done", "reboot: Power down"))], 0.5)
    verdict = boot(runner, case, tmp_path / "console.log")
    assert (verdict.passed, verdict.observed, verdict.seconds) == (True, "pass", 0.5), verdict.summary()
    assert runner.commands == [COMMAND] and runner.stopped == [False]  # it exited: nothing to stop
    assert (tmp_path / "console.log").read_bytes() == (
        b"$ qemu-system-riscv64 -kernel Image\n" + console("start", "done", "reboot: Power down")
    )
    assert verdict.log == str(tmp_path / "console.log")


def test_a_process_that_never_ends_is_stopped_at_the_timeout(case: BootCase, clock: FakeClock, tmp_path: Path):
    runner = FakeRunner(clock, [Step(0.3, console("start"))], exit_at=None)
    verdict = boot(runner, case, tmp_path / "console.log")
    assert (verdict.passed, verdict.observed) == (False, "hang")
    assert verdict.reason == "no power-off within 3 s; never saw 'done'"
    assert runner.stopped == [True]
    assert case.timeout <= verdict.seconds <= case.timeout + 0.1  # counted on the stall clock, read every 0.1 s
    assert (tmp_path / "console.log").read_text().splitlines()[1:] == ["start"]


def test_a_process_that_exits_early_is_judged_by_what_it_printed(case: BootCase, clock: FakeClock, tmp_path: Path):
    runner = FakeRunner(clock, [Step(0.1, console("start"))], exit_at=0.7, exit_code=0)
    early = boot(runner, case, tmp_path / "console.log")
    assert (early.observed, early.reason, early.seconds) == (
        "incomplete",
        "QEMU exited (code 0) without printing 'done'",
        0.7,
    )
    assert runner.stopped == [False]
    failing = FakeRunner(FakeClock(), [Step(0.1, console("start", "done"))], exit_at=0.2, exit_code=3)
    verdict = boot(failing, case, tmp_path / "console.log")
    assert (verdict.observed, verdict.reason) == ("qemu-error", "QEMU exited with code 3")


def test_output_that_ends_before_the_exit_is_waited_for_not_stopped(case: BootCase, clock: FakeClock, tmp_path: Path):
    """QEMU closes its console, then takes a moment to exit: its exit code counts, nothing is stopped."""
    steps = [Step(0.1, console("start", "done"))]
    runner = FakeRunner(clock, steps, exit_at=2.0, exit_code=5, output_ends_at=0.2)
    verdict = boot(runner, case, tmp_path / "console.log")
    assert (verdict.observed, verdict.reason, verdict.seconds) == ("qemu-error", "QEMU exited with code 5", 2.0)
    assert runner.stopped == [False]


def test_a_panic_stops_the_boot_after_its_grace(case: BootCase, clock: FakeClock, tmp_path: Path):
    """The trace printed within the grace is kept; what comes after it is never read, and QEMU is stopped."""
    steps = [
        Step(0.2, console("start")),
        Step(1.0, console(PANIC)),
        Step(1.5, console("trace")),
        Step(1.0 + qemu.PANIC_GRACE_SECONDS + 0.5, console("after the grace")),
    ]
    runner = FakeRunner(clock, steps, exit_at=None)
    verdict = boot(runner, replace(case, timeout=600), tmp_path / "console.log")
    assert (verdict.passed, verdict.observed) == (False, "forbidden-line")
    assert verdict.reason == f"console printed {PANIC!r}"
    assert "trace" in verdict.excerpt and "after the grace" not in verdict.excerpt
    assert verdict.seconds == 1.0 + qemu.PANIC_GRACE_SECONDS  # not the 600 s timeout
    assert runner.stopped == [True]
    assert (tmp_path / "console.log").read_text().splitlines()[1:] == ["start", PANIC, "trace"]


def test_a_panic_that_powers_off_in_its_grace_is_not_stopped(case: BootCase, clock: FakeClock, tmp_path: Path):
    """With panic=-1 and -no-reboot QEMU exits 0 after a panic: still the panic's verdict."""
    runner = FakeRunner(clock, [Step(0.2, console("start", PANIC))], exit_at=0.4, exit_code=0)
    verdict = boot(runner, case, tmp_path / "console.log")
    assert (verdict.passed, verdict.observed, verdict.seconds) == (False, "forbidden-line", 0.4)
    assert runner.stopped == [False]


def test_an_unfinished_last_line_is_judged_and_logged(case: BootCase, clock: FakeClock, tmp_path: Path):
    runner = FakeRunner(clock, [Step(0.1, console("start") + b"do"), Step(0.2, b"ne")], exit_at=0.3)
    verdict = boot(runner, case, tmp_path / "console.log")
    assert verdict.passed, verdict.summary()
    assert (tmp_path / "console.log").read_bytes().endswith(b"start\r\ndone")


def test_a_fault_then_silence_is_a_stuck_hart_at_once(case: BootCase, clock: FakeClock, tmp_path: Path):
    """The trap log shows a fault, then nothing for STALL_SECONDS: stopped long before the 60 s timeout."""
    hang = replace(case, expect="hang", must=("OpenSBI",), timeout=60, traps=True)
    traps = (DATA / "symbolize" / "mmu-mmu-off.traps").read_text()
    trap_log = tmp_path / "run.traps"
    trap_log.write_text("left over from the previous boot\n")
    runner = FakeRunner(clock, [Step(0.1, console("OpenSBI")), Step(0.2, traps=traps)], trap_log=trap_log)
    resolver = qemu.Resolver(symbolize.SymbolTable.load(DATA / "symbolize" / "mmu.System.map"))
    verdict = boot(runner, hang, tmp_path / "console.log", trap_log, resolver)
    assert verdict.passed, verdict.summary()
    assert verdict.reason.startswith("hung as expected: stuck after a fault at _start_kernel+0x76/0xf7c (cause 1:")
    assert 0.2 + qemu.STALL_SECONDS <= verdict.seconds <= 0.2 + qemu.STALL_SECONDS + 0.2
    assert runner.stopped == [True]
    assert trap_log.read_text() == traps  # the previous boot's log was removed first


def test_a_trap_loop_is_a_stuck_hart_and_a_panic_is_not_overruled(case: BootCase, clock: FakeClock, tmp_path: Path):
    hang = replace(case, expect="hang", must=("start",), timeout=60, traps=True)
    loop = (TRAP_LINE.format(a=0, c=12, pc=0xFFFFFFFF80001094) + "\n") * symbolize.LOOP_REPEATS
    trap_log = tmp_path / "run.traps"
    runner = FakeRunner(clock, [Step(0.1, console("start")), Step(0.3, traps=loop)], trap_log=trap_log)
    verdict = boot(runner, hang, tmp_path / "console.log", trap_log)
    assert verdict.passed and verdict.reason.startswith("hung as expected: trap loop at 0xffffffff80001094")
    assert verdict.seconds == 0.3 and runner.stopped == [True]
    # a panic stops the trap watch: the verdict is the panic's, with the trace its grace let through
    panicking = FakeRunner(
        FakeClock(),
        [Step(0.1, console("start", PANIC)), Step(0.3, console("trace"), traps=loop)],
        trap_log=trap_log,
    )
    verdict = boot(panicking, hang, tmp_path / "console.log", trap_log)
    assert (verdict.observed, verdict.notes) == ("forbidden-line", ())
    assert "trace" in verdict.excerpt and verdict.seconds == 0.1 + qemu.PANIC_GRACE_SECONDS


def test_boot_case_boots_the_cases_command_through_the_runner(clock: FakeClock, tmp_path: Path):
    """boot_case: the case's QEMU command (its trap log option included), its console log, its verdict."""
    case = PROJECT.boots["clone_vm-asm-mmu-mmu-off"]
    assert case.traps and case.expect == "hang"
    files = qemu.BootFiles(
        tmp_path / "Image", tmp_path / "init.cpio", tmp_path / "boots" / "c.log", tmp_path / "c.traps"
    )
    loop = (TRAP_LINE.format(a=0, c=1, pc=0x80200076) + "\n") * symbolize.LOOP_REPEATS
    runner = FakeRunner(clock, [Step(0.1, console(*case.must)), Step(0.2, traps=loop)], trap_log=files.trap_log)
    variant = PROJECT.variants[case.variant]
    verdict = qemu.boot_case(PROJECT.toolchain, variant, case, files, runner=runner, clock=clock)
    assert runner.commands == [qemu.case_command(PROJECT.toolchain, variant, case, files)]
    assert runner.commands[0][-4:] == ["-d", "int", "-D", str(files.trap_log)]
    assert verdict.passed and verdict.reason.startswith("hung as expected: trap loop at 0x80200076"), verdict.summary()
    assert files.console_log.read_text().splitlines()[1:] == list(case.must)
    assert runner.stopped == [True]


class ScriptedRunner(FakeRunner):
    """A FakeRunner that plays a script of its own for each boot, in order."""

    def __init__(self, clock: FakeClock, boots: Sequence[tuple[Sequence[Step], float | None]]) -> None:
        super().__init__(clock, [])
        self.boots = list(boots)

    @contextlib.contextmanager
    def stream(self, command: Sequence[str | Path]) -> Iterator[FakeQemu]:  # type: ignore[override]
        steps, exit_at = self.boots.pop(0)
        self.script = (steps, exit_at, 0, None, None)
        with super().stream(command) as fake:
            yield fake


FIRMWARE_ONLY = [Step(0.1, console("OpenSBI v1.1", "Boot HART ID              : 0"))]


@pytest.mark.parametrize(
    ("reason", "first", "boots", "passed"),
    [
        ("a firmware race", FIRMWARE_ONLY, 2, True),  # hung before the kernel: booted once more
        ("a firmware race", [Step(0.1, console("OpenSBI v1.1", "[    0.0] Linux version 6.12"))], 1, False),
        ("", FIRMWARE_ONLY, 1, False),  # a run that names no reason is never booted again
    ],
    ids=["hung-in-firmware", "hung-in-the-kernel", "no-reason-given"],
)
def test_only_a_named_hang_before_the_kernel_is_booted_once_more(
    case: BootCase, clock: FakeClock, tmp_path: Path, reason: str, first: list[Step], boots: int, passed: bool
) -> None:
    """reboot_before_kernel: a boot that hung before the kernel's first line is booted once more and that verdict
    counts, its notes naming the reason and the first console (kept); a hang in the kernel itself is a failure."""
    case = replace(case, reboot_before_kernel=reason)
    files = qemu.BootFiles(tmp_path / "Image", tmp_path / "init.cpio", tmp_path / "c.log", tmp_path / "c.traps")
    good = [Step(0.1, console("[    0.0] Linux version 6.12", "start", "done"))]
    runner = ScriptedRunner(clock, [(first, None), (good, 0.2)])
    verdict = qemu.boot_case(PROJECT.toolchain, PROJECT.variants[case.variant], case, files, runner=runner, clock=clock)
    assert (len(runner.commands), verdict.passed) == (boots, passed), verdict.summary()
    if boots == 2:
        assert verdict.notes[0].startswith(f"the first boot hung before the kernel wrote a line ({reason})")
        assert "c.log.first" in verdict.notes[0]
        assert "Boot HART ID" in (tmp_path / "c.log.first").read_text()
        assert "done" in files.console_log.read_text()
    else:
        assert verdict.observed == "hang" and not (tmp_path / "c.log.first").exists()


def test_the_two_hart_numa_run_names_its_firmware_race() -> None:
    assert "OpenSBI" in PROJECT.boots["numa-c-mmu-full"].reboot_before_kernel
    assert not [name for name, case in PROJECT.boots.items() if case.reboot_before_kernel and "numa" not in name]


def test_an_error_while_booting_still_lets_go_of_qemu(case: BootCase, clock: FakeClock, tmp_path: Path):
    """An interrupt (Ctrl-C) in the middle of a boot: the runner gets the process back to stop it."""

    class Interrupting(FakeClock):
        def __call__(self) -> float:
            if self.now > 1001.0:
                raise KeyboardInterrupt
            return self.now

    runner = FakeRunner(Interrupting(), [Step(0.1, console("start"))], exit_at=None)
    with pytest.raises(KeyboardInterrupt):
        boot(runner, case, tmp_path / "console.log")
    assert runner.stopped == [True]
    assert (tmp_path / "console.log").read_text().splitlines()[1:] == ["start"]


# --- the real seam: Runner.stream on small real processes ---


def test_line_buffer_cuts_pieces_into_lines() -> None:
    buffer = LineBuffer()
    assert buffer.feed(b"ab") == Output(b"ab", ())
    assert buffer.feed(b"c\r\nd\xffe\nf") == Output(b"c\r\nd\xffe\nf", ("abc", "d\ufffde"))
    assert buffer.rest() == "f" and buffer.rest() == ""


def test_a_stream_reads_a_real_process_line_by_line() -> None:
    with tools.RUNNER.stream(["sh", "-c", "echo one; printf 'two\\nthr'; echo err >&2; exit 4"]) as process:
        assert process.pid is not None
        lines: list[str] = []
        while (output := process.read(1.0)) is not None:
            lines += output.lines
        lines.append(process.unfinished())
        assert process.wait(5.0) == 4
    assert lines == ["one", "two", "threrr", ""]  # stderr in the same pipe, after the unfinished "thr"


def test_a_stream_ends_when_its_process_exits_though_a_child_holds_its_output() -> None:
    """A child left in the background keeps the pipe open: no end of output, the exit alone ends the stream."""
    with tools.RUNNER.stream(["sh", "-c", "sleep 30 & echo started"]) as process:
        try:
            output = process.read(5.0)
            assert output is not None and output.lines == ("started",)
            assert process.wait(5.0) == 0
            assert process.read(0.05) is None
        finally:
            os.killpg(process.pid, signal.SIGKILL)  # the child, not left behind by the test


def test_a_stream_left_running_is_stopped_with_its_whole_group(tmp_path: Path) -> None:
    survived = tmp_path / "survived"
    with tools.RUNNER.stream(["sh", "-c", f"echo start; sleep 60; touch {survived}"]) as process:
        output = process.read(5.0)
        assert output is not None and output.lines == ("start",)
        assert process.read(0.05) == Output() and process.poll() is None
    assert process.process.returncode is not None
    assert process.wait(0) == process.process.returncode  # reaped
    assert not survived.exists()


def test_a_stream_ignoring_sigint_is_killed_after_the_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared _stop_group: SIGINT first, SIGKILL for a group that ignores it once the grace is over."""
    monkeypatch.setattr(tools, "INTERRUPT_GRACE_SECONDS", 0.2)
    ignoring = "trap '' INT; echo ready; i=0; while [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done"  # ends by itself
    with tools.RUNNER.stream(["sh", "-c", ignoring]) as process:
        assert process.read(5.0) == Output(b"ready\n", ("ready",))
    assert process.process.returncode == -signal.SIGKILL


def test_a_stream_that_cannot_start_is_one_line(tmp_path: Path) -> None:
    with (
        pytest.raises(UserError, match=r"^cannot run .*no-such-qemu: not found on PATH"),
        tools.RUNNER.stream([str(tmp_path / "no-such-qemu")]),
    ):
        pass
