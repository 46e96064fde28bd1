"""The boot judge: a console's lines against a case's expectations give a Verdict with one Outcome.

Pure (no QEMU, no clock): the verdict always comes from the console, never from QEMU's exit code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from mmulab.boot.symbolize import (
    Resolver,
    SymbolTable,
    TrapDiagnosis,
    annotate,
)
from mmulab.core.fsutil import JsonRecord
from mmulab.project.model import PANIC_MARKER, BootCase

EXCERPT_BEFORE, EXCERPT_AFTER = 8, 25


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

    def to_dict(self) -> dict[str, Any]:
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
