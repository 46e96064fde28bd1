"""Boot smoke: run QEMU headless with a hard timeout, capture the console, judge it against expectations.

The verdict always comes from the console, never from QEMU's exit code: with panic=-1 and -no-reboot a
panicking kernel makes QEMU exit 0. A forbidden line (a panic, an oops) stops the boot at once; a boot
that prints nothing more within the timeout is reported as hung, with the last lines it printed. A case
that watches traps has QEMU log every trap (`-d int`) into a file read while it boots: a loop of one fault,
or a fault followed by silence, ends the boot as hung at once, naming the symbol and the cause. Kernel
oopses and user programs' faults are resolved to names (symbolize.py) in the verdict's notes.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from mmulab.boot.judge import Outcome, Verdict, judge
from mmulab.boot.symbolize import (
    LOOP_REPEATS,
    Resolver,
    Trap,
    TrapDiagnosis,
    last_fault,
    parse_traps,
    trap_loop,
    with_symbols,
)
from mmulab.core.tools import RUNNER, Output, Runner, Stream
from mmulab.project.model import PANIC_MARKER, BootCase, Toolchain, Variant

PANIC_GRACE_SECONDS = 1.0
# The kernel's first console line: a console without it never got past the firmware.
KERNEL_FIRST_LINE = b"Linux version "
# A case's timeout is counted like the stall below, in time QEMU could have run (a loaded host slows a boot
# down without hanging it); in wall time a boot never lasts more than this many times its timeout.
SLOW_HOST_LIMIT = 5
# A hart whose last trap was a fault and that then takes no trap (not even a timer interrupt) and prints
# nothing for this long is parked for good: a running kernel takes timer interrupts many times a second.
# Counted on a StallClock: time QEMU could have run, not wall time (a busy host's wait does not count).
STALL_SECONDS = 0.5
TRAP_TAIL_BYTES = 1 << 16  # of a fast-growing trap log, only the end matters


def qemu_command(
    toolchain: Toolchain,
    variant: Variant,
    kernel: Path,
    initrd: Path,
    case: BootCase | None,
    interactive: bool,
    trap_log: Path | None = None,
) -> list[str]:
    """The QEMU command line: variant's machine, then the case's own options (e.g. -cpu rv64,mmu=off), and
    with `trap_log` QEMU's log of every trap the CPU takes (-d int) into that file."""
    spec = variant.qemu
    command = [toolchain.qemu, "-M", spec.machine, "-m", spec.memory, "-smp", str(spec.smp)]
    if spec.bios != "default":
        command += ["-bios", spec.bios]
    command += ["-kernel", str(kernel), "-initrd", str(initrd), "-no-reboot"]
    command += ["-append", (case.cmdline if case and case.cmdline else variant.cmdline)]
    command += ["-nographic"] if interactive else ["-display", "none", "-monitor", "none", "-serial", "stdio"]
    command += [*spec.extra_args, *(case.qemu_args if case else ())]
    if trap_log is not None:
        command += ["-d", "int", "-D", str(trap_log)]
    return command


@dataclass(frozen=True)
class BootFiles:
    """One case's boot, wherever its kernel and image were built (the pipeline's tasks, `mmulab boot-images`):
    what QEMU reads, where the console goes and, for a case that watches traps, QEMU's trap log."""

    kernel: Path
    initrd: Path
    console_log: Path
    trap_log: Path


def case_command(
    toolchain: Toolchain, variant: Variant, case: BootCase, files: BootFiles, interactive: bool = False
) -> list[str]:
    """The QEMU command of `case` (with the trap log when the case watches traps and nobody types)."""
    trap_log = files.trap_log if case.traps and not interactive else None
    return qemu_command(toolchain, variant, files.kernel, files.initrd, case, interactive, trap_log)


def boot_case(
    toolchain: Toolchain,
    variant: Variant,
    case: BootCase,
    files: BootFiles,
    resolver: Resolver | None = None,
    *,
    runner: Runner = RUNNER,
    clock: Callable[[], float] = time.monotonic,
) -> Verdict:
    """The one way a case is booted and judged: its command, console capture, trap watch and fault notes. A case
    with `reboot_before_kernel` that hung before the kernel wrote a line is booted once more; that verdict
    counts, and its notes say so, naming the first boot's console (kept beside it, `<console>.first`)."""
    command = case_command(toolchain, variant, case, files)
    trap_log = files.trap_log if case.traps else None
    verdict = run_captured(command, case, files.console_log, resolver, trap_log, runner=runner, clock=clock)
    if not case.reboot_before_kernel or verdict.passed or verdict.observed is not Outcome.HANG:
        return verdict
    if KERNEL_FIRST_LINE in files.console_log.read_bytes():
        return verdict
    first = files.console_log.with_name(files.console_log.name + ".first")
    files.console_log.replace(first)
    again = run_captured(command, case, files.console_log, resolver, trap_log, runner=runner, clock=clock)
    note = (
        f"the first boot hung before the kernel wrote a line ({case.reboot_before_kernel}); "
        f"booted once more (the first console: {first.name})"
    )
    return replace(again, notes=(note, *again.notes))


def thread_states(pid: int) -> dict[int, tuple[str, int]] | None:
    """Each thread of process `pid`: its state letter (R running or runnable, D blocked in the host kernel,
    S asleep...) and the nanoseconds it has run on a CPU (schedstat's first field, exact where /proc/<pid>/stat's
    ticks are not). None where /proc does not tell (no such process, a kernel without schedstat)."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    states = {}
    for tid in tids:
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            ran = int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue  # a thread that just ended, or no schedstat
        states[int(tid)] = (stat[stat.rindex(")") + 2 :][:1], ran)
    return states or None


class StallClock:
    """How long a process has gone on in time it could have used, sampled by `advance`: of each interval between
    two samples, one whose end finds threads runnable (R) counts only as long as the one that ran most really ran
    (the rest they waited for a CPU), and one ending with a thread blocked in the host kernel (D: a log write to
    a busy disk) not at all. On a loaded host QEMU waits its turn, and a vCPU that does not run takes no trap and prints
    nothing: that wait says nothing about the guest. A hart parked in wfi leaves QEMU asleep (S), and one spinning
    with interrupts off keeps it running: both count in full. Where /proc does not tell (no schedstat), wall time
    counts."""

    def __init__(
        self,
        pid: int | None,
        clock: Callable[[], float] = time.monotonic,
        states: Callable[[int], dict[int, tuple[str, int]] | None] = thread_states,
    ) -> None:
        self.pid, self.clock, self.states = pid, clock, states
        self.restart()

    def _sample(self) -> tuple[float, dict[int, tuple[str, int]] | None]:
        return self.clock(), self.states(self.pid) if self.pid is not None else None

    def restart(self) -> None:
        """Something happened (a trap, console output): the count starts again now."""
        self.counted = 0.0
        self.last = self._sample()

    def advance(self) -> float:
        """The time so far, in seconds QEMU could have run."""
        (then, before), (now, after) = self.last, self._sample()
        self.last = (now, after)
        elapsed = now - then
        if before is not None and after is not None:
            if any(state == "D" for state, _ in after.values()):
                return self.counted
            # a thread new since the last sample ran only within this interval; one thread that ran is enough
            ran = [(r - before.get(tid, ("", 0))[1]) / 1e9 for tid, (state, r) in after.items() if state == "R"]
            elapsed = max(0.0, min(elapsed, max(ran))) if ran else elapsed
        self.counted += elapsed
        return self.counted


class TrapWatch:
    """Reads QEMU's trap log while it grows and tells when the hart is certainly stuck.

    Stuck means: the same fault `LOOP_REPEATS` times in a row (the handler faults on itself), or a fault
    followed by `STALL_SECONDS` without any trap or console output (the hart parked with interrupts off),
    counted by a StallClock on QEMU's process `pid`: a busy host that keeps QEMU off the CPU is not a stall."""

    def __init__(self, path: Path, pid: int | None = None, clock: StallClock | None = None) -> None:
        self.path = path
        self.handle: BinaryIO | None = None
        self.partial = b""
        self.recent: list[Trap] = []
        self.quiet = clock or StallClock(pid)

    def console_activity(self) -> None:
        self.quiet.restart()

    def poll(self) -> TrapDiagnosis | None:
        # the silence is measured before the log is read: what QEMU wrote meanwhile is read below, so a
        # watcher that was itself kept off the CPU between the two never mistakes a late read for silence
        silent = self.quiet.advance()
        if self.handle is None:
            try:
                self.handle = self.path.open("rb")
            except FileNotFoundError:
                return None
        data = self.handle.read()
        if data:
            self.quiet.restart()
            if len(data) > TRAP_TAIL_BYTES:  # a trap storm: only the last lines can prove a loop
                data, self.partial = data[-TRAP_TAIL_BYTES:].split(b"\n", 1)[-1], b""
            *complete, self.partial = (self.partial + data).split(b"\n")
            self.recent = (self.recent + parse_traps(b"\n".join(complete).decode(errors="replace")))[
                -LOOP_REPEATS * 4 :
            ]
            return trap_loop(self.recent)
        if silent >= STALL_SECONDS:
            return last_fault(self.recent)
        return None

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


class Console:
    """A boot's console as it comes: written to its log at once (a crash leaves what it printed), kept as lines,
    watched for a line that ends the boot (a forbidden one, a panic)."""

    def __init__(self, sink: BinaryIO, case: BootCase) -> None:
        self.sink = sink
        self.forbidden = (*case.must_not, PANIC_MARKER)
        self.lines: list[str] = []

    def ends_boot(self, lines: Iterable[str]) -> bool:
        return any(bad in line for line in lines for bad in self.forbidden)

    def take(self, output: Output) -> bool:
        """Log and keep what QEMU printed; whether a line of it ends the boot."""
        self.sink.write(output.raw)
        self.sink.flush()
        self.lines += output.lines
        return self.ends_boot(output.lines)

    def finish(self, unfinished: str) -> None:
        """The last line, printed without a line ending (already in the log with the rest)."""
        if unfinished:
            self.lines.append(unfinished)


class CapturedBoot:
    """One boot while it runs: its console read until QEMU ends, is stuck, or runs out of time.

    Time is counted in two ways: the case's timeout on a StallClock (time QEMU could have run), and a wall-time
    deadline of SLOW_HOST_LIMIT times the timeout that only a host starving QEMU reaches. A forbidden line moves
    the deadline to PANIC_GRACE_SECONDS from then (the panic's trace still comes) and stops the other clocks."""

    def __init__(
        self, case: BootCase, qemu: Stream, console: Console, trap_log: Path | None, clock: Callable[[], float]
    ) -> None:
        self.case, self.qemu, self.console, self.clock = case, qemu, console, clock
        self.deadline = clock() + case.timeout * SLOW_HOST_LIMIT
        self.budget = StallClock(qemu.pid, clock)  # the timeout, counted in time QEMU could have run
        self.watch = TrapWatch(trap_log, qemu.pid, StallClock(qemu.pid, clock)) if trap_log is not None else None
        self.stopping = False  # a forbidden line came: only the grace is left
        self.stuck: TrapDiagnosis | None = None

    def take(self, output: Output) -> None:
        if self.watch is not None:
            self.watch.console_activity()
        if self.console.take(output) and not self.stopping:
            self.stopping = True
            self.deadline = min(self.deadline, self.clock() + PANIC_GRACE_SECONDS)

    def out_of_time(self, now: float) -> bool:
        return now >= self.deadline or (not self.stopping and self.budget.advance() >= self.case.timeout)

    def proven_stuck(self) -> bool:
        if self.watch is None or self.stopping:
            return False
        self.stuck = self.watch.poll()
        return self.stuck is not None

    def follow(self) -> bool:
        """Read the console until the boot ends; whether QEMU still ran when it was given up on."""
        while True:
            now = self.clock()
            if self.out_of_time(now):
                return self.qemu.poll() is None
            if self.proven_stuck():
                running = self.qemu.poll() is None
                if (pending := self.qemu.drain()).raw:  # what it printed before it got stuck is in the pipe
                    self.take(pending)
                return running
            output = self.qemu.read(min(0.1, self.deadline - now))
            if output is None:
                return False
            if output.raw:
                self.take(output)

    def run(self) -> tuple[bool, int | None]:
        """Follow the boot to its end: whether it timed out (QEMU given up on while it ran: it is to be stopped),
        else QEMU's exit code."""
        try:
            given_up = self.follow()
        finally:
            if self.watch is not None:
                self.watch.close()
        self.console.finish(self.qemu.unfinished())
        exit_code = self.qemu.wait(0 if given_up else max(0.1, self.deadline - self.clock()))
        if given_up or exit_code is None:
            return True, None
        return False, exit_code


def run_captured(
    command: list[str],
    case: BootCase,
    log: Path,
    resolver: Resolver | None = None,
    trap_log: Path | None = None,
    *,
    runner: Runner = RUNNER,
    clock: Callable[[], float] = time.monotonic,
) -> Verdict:
    """Boot with the console captured to `log`; stop early on a forbidden line or a panic, kill at the timeout,
    or as soon as `trap_log` (QEMU's -d int file, when the command writes one) proves the hart stuck.
    QEMU runs through `runner`, which stops it if it runs on (a test's fake plays a console), in time told by
    `clock`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    if trap_log is not None:
        trap_log.unlink(missing_ok=True)
    started = clock()
    with runner.stream(command) as qemu, log.open("wb") as sink:
        sink.write(("$ " + " ".join(command) + "\n").encode())
        console = Console(sink, case)
        boot = CapturedBoot(case, qemu, console, trap_log, clock)
        timed_out, exit_code = boot.run()
    stuck = boot.stuck
    if stuck is not None and resolver is not None:
        stuck = with_symbols(stuck, resolver.symbols)
    stopped = console.ends_boot(console.lines)
    return judge(
        case,
        console.lines,
        timed_out and not stopped,
        exit_code,
        clock() - started,
        log,
        resolver,
        None if stopped else stuck,
    )


def stdin_is_terminal() -> bool:
    """Whether file descriptor 0 (what QEMU reads) is a terminal; a closed stdin is not."""
    try:
        return os.isatty(0)
    except OSError:
        return False


def run_interactive(command: list[str]) -> int:
    """Boot on this terminal (Ctrl-A X leaves QEMU); the exit code is QEMU's."""
    return subprocess.call(command)
