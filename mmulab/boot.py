"""Boot smoke: run QEMU headless with a hard timeout, capture the console, judge it against expectations.

The verdict always comes from the console, never from QEMU's exit code: with panic=-1 and -no-reboot a
panicking kernel makes QEMU exit 0. A forbidden line (a panic, an oops) stops the boot at once; a boot
that prints nothing more within the timeout is reported as hung, with the last lines it printed.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from .configdata import BootCase, Toolchain, Variant
from .fsutil import JsonRecord

PANIC_GRACE_SECONDS = 1.0
EXCERPT_BEFORE, EXCERPT_AFTER = 8, 25


def qemu_command(
    toolchain: Toolchain,
    variant: Variant,
    kernel: Path,
    initrd: Path,
    case: BootCase | None,
    interactive: bool,
) -> list[str]:
    """The QEMU command line: variant's machine, then the case's own options (e.g. -cpu rv64,mmu=off)."""
    spec = variant.qemu
    command = [toolchain.qemu, "-M", spec.machine, "-m", spec.memory, "-smp", str(spec.smp)]
    if spec.bios != "default":
        command += ["-bios", spec.bios]
    command += ["-kernel", str(kernel), "-initrd", str(initrd), "-no-reboot"]
    command += ["-append", (case.cmdline if case and case.cmdline else variant.cmdline)]
    command += ["-nographic"] if interactive else ["-display", "none", "-monitor", "none", "-serial", "stdio"]
    command += [*spec.extra_args, *(case.qemu_args if case else ())]
    return command


class Outcome(StrEnum):
    """What a boot did, read from its console."""

    PASS = "pass"
    HANG = "hang"
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "observed", Outcome(self.observed))

    def to_dict(self) -> dict:
        return {**asdict(self), "observed": self.observed.value, "missing": list(self.missing)}

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
        if self.passed:
            return head
        detail = f"{head}: {self.reason}\nconsole log: {self.log}"
        return f"{detail}\n{self.excerpt}" if self.excerpt else detail


def _excerpt(lines: list[str], index: int | None) -> str:
    start = len(lines) - EXCERPT_AFTER if index is None else index - EXCERPT_BEFORE
    chosen = lines[max(0, start) : start + EXCERPT_BEFORE + EXCERPT_AFTER]
    return "\n".join(f"  | {line}" for line in chosen)


def judge(
    case: BootCase,
    lines: list[str],
    timed_out: bool,
    exit_code: int | None,
    seconds: float,
    log: Path | None = None,
) -> Verdict:
    """Compare a console log with the case's expectations; pure, so recorded logs can be judged in tests."""
    forbidden_at = next((i for i, line in enumerate(lines) if any(bad in line for bad in case.must_not)), None)
    missing, position = [], 0
    for wanted in case.must:
        found = next((i for i in range(position, len(lines)) if wanted in lines[i]), None)
        if found is None:
            missing.append(wanted)
        else:
            position = found + 1
    if forbidden_at is not None:
        observed, reason = Outcome.FORBIDDEN_LINE, f"console printed {lines[forbidden_at].strip()!r}"
    elif timed_out:
        observed = Outcome.HANG
        reason = f"no power-off within {case.timeout:g} s" + (f"; never saw {missing[0]!r}" if missing else "")
    elif missing:
        observed, reason = Outcome.INCOMPLETE, f"QEMU exited (code {exit_code}) without printing {missing[0]!r}"
    elif exit_code not in (0, None):
        observed, reason = Outcome.QEMU_ERROR, f"QEMU exited with code {exit_code}"
    else:
        observed, reason = Outcome.PASS, ""
    if case.expect == Outcome.HANG.value:
        passed = observed is Outcome.HANG and not missing
        if observed is Outcome.HANG and missing:
            reason = f"hung as expected but never printed {missing[0]!r}"
        elif observed is not Outcome.HANG:
            reason = reason or "expected the boot to hang, but it finished"
    else:
        passed = observed is Outcome.PASS
    excerpt = "" if passed else _excerpt(lines, forbidden_at)
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
        "" if passed else reason,
        excerpt,
        tuple(missing),
        str(log or ""),
    )


def run_captured(command: list[str], case: BootCase, log: Path) -> Verdict:
    """Boot with the console captured to `log`; stop early on a forbidden line, kill at the timeout."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    deadline = started + case.timeout
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert process.stdout is not None
    os.set_blocking(process.stdout.fileno(), False)
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    buffer, lines, timed_out = b"", [], False
    try:
        with log.open("wb") as sink:
            sink.write(("$ " + " ".join(command) + "\n").encode())
            while True:
                now = time.monotonic()
                if now >= deadline:
                    timed_out = process.poll() is None
                    break
                if not selector.select(timeout=min(0.2, deadline - now)):
                    if process.poll() is not None:
                        break
                    continue
                chunk = process.stdout.read()
                if chunk is None:
                    continue
                if chunk == b"":
                    break
                sink.write(chunk)
                sink.flush()
                buffer += chunk
                *complete, buffer = buffer.split(b"\n")
                fresh = [line.decode(errors="replace").rstrip("\r") for line in complete]
                lines += fresh
                if any(bad in line for line in fresh for bad in case.must_not):
                    deadline = min(deadline, time.monotonic() + PANIC_GRACE_SECONDS)
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
    forbidden = any(bad in line for line in lines for bad in case.must_not)
    return judge(
        case,
        lines,
        timed_out and not forbidden,
        None if timed_out else exit_code,
        time.monotonic() - started,
        log,
    )


def run_interactive(command: list[str]) -> int:
    """Boot on this terminal (Ctrl-A X leaves QEMU); the exit code is QEMU's."""
    return subprocess.call(command)
