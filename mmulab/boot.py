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
import selectors
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from .configdata import PANIC_MARKER, BootCase, Toolchain, Variant
from .fsutil import JsonRecord
from .symbolize import (
    LOOP_REPEATS,
    Resolver,
    SymbolTable,
    Trap,
    TrapDiagnosis,
    annotate,
    last_fault,
    parse_traps,
    trap_loop,
    with_symbols,
)

PANIC_GRACE_SECONDS = 1.0
# A case's timeout is counted like the stall below, in time QEMU could have run (a loaded host slows a boot
# down without hanging it); in wall time a boot never lasts more than this many times its timeout.
SLOW_HOST_LIMIT = 5
# A hart whose last trap was a fault and that then takes no trap (not even a timer interrupt) and prints
# nothing for this long is parked for good: a running kernel takes timer interrupts many times a second.
# Counted on a StallClock: time QEMU could have run, not wall time (a busy host's wait does not count).
STALL_SECONDS = 0.5
TRAP_TAIL_BYTES = 1 << 16  # of a fast-growing trap log, only the end matters
EXCERPT_BEFORE, EXCERPT_AFTER = 8, 25


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
    toolchain: Toolchain, variant: Variant, case: BootCase, files: BootFiles, resolver: Resolver | None = None
) -> Verdict:
    """The one way a case is booted and judged: its command, console capture, trap watch and fault notes."""
    command = case_command(toolchain, variant, case, files)
    return run_captured(command, case, files.console_log, resolver, files.trap_log if case.traps else None)


class Outcome(StrEnum):
    """What a boot did, read from its console."""

    PASS = "pass"
    HANG = "hang"
    PANIC = "panic"
    FORBIDDEN_LINE = "forbidden-line"
    INCOMPLETE = "incomplete"
    QEMU_ERROR = "qemu-error"
    NOT_RUN = "not-run"


@dataclass(frozen=True)
class Verdict(JsonRecord):
    """What a boot showed, compared with what the case expected (written beside its console log)."""

    case: str
    demo: str
    build: str
    variant: str
    qemu: str
    expected: str
    observed: Outcome
    passed: bool
    seconds: float | None
    reason: str = ""
    excerpt: str = ""
    missing: tuple[str, ...] = ()
    log: str = ""
    notes: tuple[str, ...] = ()  # faults resolved to names: kernel oopses, user programs' signals, trap loops

    def __post_init__(self) -> None:
        object.__setattr__(self, "observed", Outcome(self.observed))

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "observed": self.observed.value,
            "missing": list(self.missing),
            "notes": list(self.notes),
        }

    def facts(self) -> dict[str, Any]:
        """Which case it was and what it showed, without timings or paths: what a release manifest keeps."""
        return {
            "case": self.case,
            "demo": self.demo,
            "variant": self.variant,
            "qemu": self.qemu,
            "expected": self.expected,
            "observed": self.observed.value,
            "passed": self.passed,
        }

    @classmethod
    def not_run(cls, case: BootCase | str, reason: str = "not run: a task it depends on failed") -> Verdict:
        """The verdict of a case whose boot never happened."""
        if isinstance(case, str):
            return cls(case, "", "", "", "", "", Outcome.NOT_RUN, False, None, reason)
        return cls(
            case.name,
            case.demo,
            case.build,
            case.variant,
            case.qemu_options,
            case.expect,
            Outcome.NOT_RUN,
            False,
            None,
            reason,
        )

    def summary(self) -> str:
        head = (
            f"boot {self.case}: {'PASS' if self.passed else 'FAIL'} (expected {self.expected}, observed "
            f"{self.observed.value}, {self.seconds or 0:.1f} s)"
        )
        notes = "".join(f"\n{_indent(note)}" for note in self.notes)
        if self.passed:
            return f"{head}: {self.reason}{notes}" if self.reason else f"{head}{notes}"
        detail = f"{head}: {self.reason}{notes}\nconsole log: {self.log}"
        return f"{detail}\n{self.excerpt}" if self.excerpt else detail


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


def _excerpt(lines: list[str], index: int | None, symbols: SymbolTable | None = None) -> str:
    """The console around `index` (else its end); bare kernel addresses get their System.map names."""
    start = len(lines) - EXCERPT_AFTER if index is None else index - EXCERPT_BEFORE
    chosen = lines[max(0, start) : start + EXCERPT_BEFORE + EXCERPT_AFTER]
    return "\n".join(f"  | {annotate(line, symbols)}" for line in chosen)


def judge(
    case: BootCase,
    lines: list[str],
    timed_out: bool,
    exit_code: int | None,
    seconds: float,
    log: Path | None = None,
    resolver: Resolver | None = None,
    stuck: TrapDiagnosis | None = None,
) -> Verdict:
    """Compare a console log with the case's expectations; pure, so recorded logs can be judged in tests.

    `resolver` names the faults the console shows (kernel oopses, user programs' signals) in the notes;
    `stuck` is what the trap log proved when the boot was ended early as hung (it implies `timed_out`)."""
    timed_out = timed_out or stuck is not None
    forbidden_at = next((i for i, line in enumerate(lines) if any(bad in line for bad in case.must_not)), None)
    panic_at = next((i for i, line in enumerate(lines) if PANIC_MARKER in line), None)
    missing, position = [], 0
    for wanted in case.must:
        found = next((i for i in range(position, len(lines)) if wanted in lines[i]), None)
        if found is None:
            missing.append(wanted)
        else:
            position = found + 1
    if forbidden_at is not None:
        observed, reason = Outcome.FORBIDDEN_LINE, f"console printed {lines[forbidden_at].strip()!r}"
    elif panic_at is not None:
        observed, reason = Outcome.PANIC, f"the kernel panicked: {_from_marker(lines[panic_at], PANIC_MARKER)!r}"
    elif timed_out:
        observed = Outcome.HANG
        reason = stuck.describe() if stuck else f"no power-off within {case.timeout:g} s"
        reason += f"; never saw {missing[0]!r}" if missing else ""
    elif missing:
        observed, reason = Outcome.INCOMPLETE, f"QEMU exited (code {exit_code}) without printing {missing[0]!r}"
    elif exit_code not in (0, None):
        observed, reason = Outcome.QEMU_ERROR, f"QEMU exited with code {exit_code}"
    else:
        observed, reason = Outcome.PASS, ""
    expected = Outcome(case.expect)
    passed = observed is expected and not missing
    if passed and expected is Outcome.HANG:
        reason = "hung as expected: " + (stuck.describe() if stuck else f"no power-off within {case.timeout:g} s")
    elif passed and expected is Outcome.PANIC:
        reason = f"panicked as expected: {_from_marker(lines[panic_at or 0], PANIC_MARKER)!r}"
    elif observed is expected and missing:
        verb = {Outcome.HANG: "hung", Outcome.PANIC: "panicked"}.get(expected, "finished")
        reason = f"{verb} as expected but never printed {missing[0]!r}"
    elif expected is Outcome.HANG and observed is not Outcome.HANG:
        reason = reason or "expected the boot to hang, but it finished"
    elif expected is Outcome.PANIC and observed is not Outcome.PANIC:
        reason = f"expected a kernel panic: {reason}" if reason else "expected a kernel panic, but the boot finished"
    notes = resolver.explain(lines) if resolver else ()
    if stuck is not None and not passed:
        notes = (*notes, f"trap log: {stuck.describe()}")
    symbols = resolver.symbols if resolver else None
    excerpt = "" if passed else _excerpt(lines, forbidden_at if forbidden_at is not None else panic_at, symbols)
    return Verdict(
        case.name,
        case.demo,
        case.build,
        case.variant,
        case.qemu_options,
        case.expect,
        observed,
        passed,
        round(seconds, 2),
        reason,
        excerpt,
        tuple(missing),
        str(log or ""),
        notes,
    )


def _from_marker(line: str, marker: str) -> str:
    return line[line.index(marker) :].strip() if marker in line else line.strip()


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
        self.handle = None
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


def run_captured(
    command: list[str],
    case: BootCase,
    log: Path,
    resolver: Resolver | None = None,
    trap_log: Path | None = None,
) -> Verdict:
    """Boot with the console captured to `log`; stop early on a forbidden line or a panic, kill at the timeout,
    or as soon as `trap_log` (QEMU's -d int file, when the command writes one) proves the hart stuck."""
    log.parent.mkdir(parents=True, exist_ok=True)
    if trap_log is not None:
        trap_log.unlink(missing_ok=True)
    stuck: TrapDiagnosis | None = None
    started = time.monotonic()
    deadline = started + case.timeout * SLOW_HOST_LIMIT  # wall time: only a host starving QEMU gets this far
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    watch = TrapWatch(trap_log, process.pid) if trap_log is not None else None
    budget = StallClock(process.pid)  # the timeout, counted in time QEMU could have run
    assert process.stdout is not None
    os.set_blocking(process.stdout.fileno(), False)
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    buffer, lines, timed_out, stopping = b"", [], False, False
    try:
        with log.open("wb") as sink:
            sink.write(("$ " + " ".join(command) + "\n").encode())

            def take(chunk: bytes) -> None:
                nonlocal buffer, lines, stopping, deadline
                sink.write(chunk)
                sink.flush()
                if watch is not None:
                    watch.console_activity()
                buffer += chunk
                *complete, buffer = buffer.split(b"\n")
                fresh = [line.decode(errors="replace").rstrip("\r") for line in complete]
                lines += fresh
                if any(bad in line for line in fresh for bad in (*case.must_not, PANIC_MARKER)):
                    stopping = True
                    deadline = min(deadline, time.monotonic() + PANIC_GRACE_SECONDS)

            while True:
                now = time.monotonic()
                if now >= deadline or (not stopping and budget.advance() >= case.timeout):
                    timed_out = process.poll() is None
                    break
                if watch is not None and not stopping and (stuck := watch.poll()) is not None:
                    timed_out = process.poll() is None
                    if chunk := process.stdout.read():  # what it printed before it got stuck is in the pipe
                        take(chunk)
                    break
                if not selector.select(timeout=min(0.1, deadline - now)):
                    if process.poll() is not None:
                        break
                    continue
                chunk = process.stdout.read()
                if chunk is None:
                    continue
                if chunk == b"":
                    break
                take(chunk)
            if buffer:
                lines.append(buffer.decode(errors="replace").rstrip("\r"))
        try:
            process.wait(timeout=0 if timed_out else max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
    finally:
        if process.poll() is None:  # timed out, or interrupted (Ctrl-C, an error): never leave a QEMU behind
            os.killpg(process.pid, signal.SIGKILL)
        exit_code = process.wait()
        selector.close()
        process.stdout.close()
        if watch is not None:
            watch.close()
    if stuck is not None and resolver is not None:
        stuck = with_symbols(stuck, resolver.symbols)
    stopped = any(bad in line for line in lines for bad in (*case.must_not, PANIC_MARKER))
    return judge(
        case,
        lines,
        timed_out and not stopped,
        None if timed_out else exit_code,
        time.monotonic() - started,
        log,
        resolver,
        None if stopped else stuck,
    )


def run_interactive(command: list[str]) -> int:
    """Boot on this terminal (Ctrl-A X leaves QEMU); the exit code is QEMU's."""
    return subprocess.call(command)
