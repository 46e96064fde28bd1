"""Where a boot faulted or hung, in names: kernel addresses resolved against the variant's System.map, a user
program's fault against its own ELF (symbols and DWARF lines), and QEMU's trap log (`-d int`) read for loops.

Everything here is pure (text and files in, records and sentences out), so recorded consoles, maps, ELFs and
trap logs can be explained in tests; running QEMU and watching its files live in boot.py.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.dwarf.compileunit import CompileUnit
from elftools.dwarf.lineprogram import LineProgram
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from mmulab.core.settings import PROJECT_ROOT
from mmulab.project.model import PANIC_MARKER

# RISC-V mcause/scause codes (privileged spec, table 3.6).
EXCEPTIONS = {
    0: "instruction address misaligned",
    1: "instruction access fault",
    2: "illegal instruction",
    3: "breakpoint",
    4: "load address misaligned",
    5: "load access fault",
    6: "store/AMO address misaligned",
    7: "store/AMO access fault",
    8: "environment call from U-mode",
    9: "environment call from S-mode",
    11: "environment call from M-mode",
    12: "instruction page fault",
    13: "load page fault",
    15: "store/AMO page fault",
}
INTERRUPTS = {1: "supervisor software", 3: "machine software", 5: "supervisor timer", 7: "machine timer"}
INTERRUPTS |= {9: "supervisor external", 11: "machine external"}
# Exceptions that mean "this access went wrong" (not a call into the firmware or an emulated instruction).
FAULTS = frozenset({0, 1, 4, 5, 6, 7, 12, 13, 15})
# Identical faults in a row at one pc: the trap handler lands back on the instruction that faulted.
LOOP_REPEATS = 8

_TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\]\s?")
_HEX = r"(?:0x)?([0-9a-f]{8,16})"


def cause_name(cause: int, asynchronous: bool = False) -> str:
    """`cause 12: instruction page fault`: the number and what the spec calls it."""
    names = INTERRUPTS if asynchronous else EXCEPTIONS
    kind = "interrupt" if asynchronous else "cause"
    return f"{kind} {cause}: {names.get(cause, 'unknown')}"


def strip_timestamp(line: str) -> str:
    return _TIMESTAMP.sub("", line)


# --------------------------------------------------------------------------------------------------------
# Kernel symbols


@dataclass(frozen=True)
class SymbolTable:
    """A kernel's System.map, sorted by address; an address resolves to the symbol at or below it."""

    addresses: tuple[int, ...]
    names: tuple[str, ...]
    end: int  # one past the last address the map covers (_end, else the last symbol)

    @classmethod
    def parse(cls, text: str) -> SymbolTable:
        """System.map lines `ffffffff80001084 T _start_kernel`; absolute and undefined symbols are skipped.

        Of several names at one address, a global one wins (what the kernel's own %pS tends to print)."""
        best: dict[int, tuple[int, str]] = {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) != 3 or parts[1] in "aAUNw" or not re.fullmatch(r"[0-9a-fA-F]+", parts[0]):
                continue
            address, kind, name = int(parts[0], 16), parts[1], parts[2]
            rank = (0 if kind in "TW" else 1 if kind.isupper() else 2) * 2 + (1 if name.startswith("__") else 0)
            if address not in best or rank < best[address][0]:
                best[address] = (rank, name)
        ordered = sorted(best)
        names = tuple(best[a][1] for a in ordered)
        end = next((a for a in reversed(ordered) if best[a][1] == "_end"), ordered[-1] if ordered else 0)
        return cls(tuple(ordered), names, end)

    @classmethod
    def load(cls, path: Path) -> SymbolTable | None:
        """The map at `path`, or None when the kernel has not been built (nothing to resolve against)."""
        try:
            return cls.parse(path.read_text())
        except OSError:
            return None

    def resolve(self, address: int) -> str | None:
        """`func+0x1c/0x40` as the kernel's %pS prints it, or None outside the kernel image."""
        if not self.addresses or not self.addresses[0] <= address < self.end:
            return None
        index = bisect.bisect_right(self.addresses, address) - 1
        start = self.addresses[index]
        following = self.addresses[index + 1] if index + 1 < len(self.addresses) else self.end
        return f"{self.names[index]}+{address - start:#x}/{following - start:#x}"


# --------------------------------------------------------------------------------------------------------
# Kernel oopses and panics


@dataclass(frozen=True)
class KernelFault:
    """An oops or panic on the console, with its addresses resolved."""

    headline: str
    task: str = ""
    epc: str = ""
    ra: str = ""
    cause: int | None = None
    badaddr: int | None = None
    trace: tuple[str, ...] = ()
    panic: str = ""

    def describe(self) -> str:
        lines = [f"kernel: {self.headline}" + (f" (in {self.task})" if self.task else "")]
        if self.epc:
            lines.append(f"  epc {self.epc}")
        if self.ra:
            lines.append(f"  ra  {self.ra}")
        if self.cause is not None:
            lines.append(f"  {cause_name(self.cause)}, badaddr {self.badaddr or 0:#x}")
        if self.trace:
            lines.append("  call trace: " + " <- ".join(self.trace))
        if self.panic and self.panic != self.headline:
            lines.append(f"  then: {self.panic}")
        return "\n".join(lines)


_OOPS_START = ("Unable to handle kernel", "Oops", "Kernel BUG", "kernel BUG")
_REGS = re.compile(rf"\bepc\s*:\s*{_HEX}\s+ra\s*:\s*{_HEX}")
_NAMED = re.compile(r"^\s*(epc|ra)\s*:\s*(\S+)\s*$")  # show_regs' " epc : func+0x1c/0x40" (KALLSYMS)
_STATUS = re.compile(rf"badaddr:\s*{_HEX}\s+cause:\s*{_HEX}")
_TASK = re.compile(r"\bPID: (\d+) Comm: (\S+)")
_FRAME = re.compile(r"\[<([0-9a-f]+)>\]\s*(\S+)?")
_BARE_ADDRESS = re.compile(r"(?:0x)?[0-9a-f]+")  # printed without KALLSYMS: no name, only the number


def _name(printed: str, symbols: SymbolTable | None) -> str:
    """What the kernel printed if it is a name (KALLSYMS), else the map's name for the address, else the address."""
    if not _BARE_ADDRESS.fullmatch(printed):
        return printed
    address = int(printed.removeprefix("0x"), 16)
    resolved = symbols.resolve(address) if symbols else None
    return f"{resolved} ({address:#x})" if resolved else f"{address:#x}"


def _fresh(headline: str) -> dict[str, Any]:
    return {"headline": headline, "task": "", "epc": "", "ra": "", "cause": None, "badaddr": None, "trace": []}


def kernel_faults(lines: Iterable[str], symbols: SymbolTable | None) -> list[KernelFault]:
    """Every oops or panic in a console, its epc/ra and call trace named (the kernel's names where KALLSYMS
    printed them, System.map's where it printed bare addresses)."""
    faults: list[KernelFault] = []
    current: dict[str, Any] | None = None

    def close() -> None:
        if current is not None:
            faults.append(KernelFault(**{**current, "trace": tuple(current["trace"])}))

    for raw in lines:
        line = strip_timestamp(raw).rstrip()
        if line.startswith(_OOPS_START) and (current is None or current["epc"] or current["trace"]):
            close()
            current = _fresh(line)
            continue
        if PANIC_MARKER in line:
            if current is None:
                current = _fresh(line)
            current.setdefault("panic", line[line.index(PANIC_MARKER) :])  # not the closing "---[ end Kernel panic"
            continue
        if current is None:
            continue
        if (match := _TASK.search(line)) and not current["task"]:
            current["task"] = f"{match[2]}[{match[1]}]"
        elif match := _NAMED.match(line):
            current[match[1]] = _name(match[2], symbols)
        elif (match := _REGS.search(line)) and not current["epc"]:
            current["epc"], current["ra"] = _name(match[1], symbols), _name(match[2], symbols)
        elif (match := _STATUS.search(line)) and current["cause"] is None:
            current["badaddr"], current["cause"] = int(match[1], 16), int(match[2], 16)
        elif match := _FRAME.search(line):
            current["trace"].append(_name(match[2] if match[2] else match[1], symbols))
    close()
    return faults


def annotate(line: str, symbols: SymbolTable | None) -> str:
    """A console line with the names of the kernel addresses it prints bare (a kernel without KALLSYMS):
    `[<0000000080185a14>] 0x0000000080185a14` gets `  <- memcpy+0xd4/0xf8`."""
    if symbols is None:
        return line
    text = strip_timestamp(line)
    if (match := _FRAME.search(text)) and (not match[2] or _BARE_ADDRESS.fullmatch(match[2])):
        resolved = symbols.resolve(int(match[1], 16))
        return f"{line}  <- {resolved}" if resolved else line
    if (match := _NAMED.match(text)) and _BARE_ADDRESS.fullmatch(match[2]):
        resolved = symbols.resolve(int(match[2].removeprefix("0x"), 16))
        return f"{line}  <- {resolved}" if resolved else line
    if match := _REGS.search(text):
        named = [
            f"{reg} {name}"
            for reg, value in zip(("epc", "ra"), match.groups(), strict=True)
            if (name := symbols.resolve(int(value, 16)))
        ]
        return f"{line}  <- {', '.join(named)}" if named else line
    return line


# --------------------------------------------------------------------------------------------------------
# User programs


@dataclass(frozen=True)
class SourceLocation:
    """Where an address of a program is: its function (+offset) and, with DWARF, file:line and the line."""

    function: str = ""
    file: str = ""
    line: int = 0
    text: str = ""

    def describe(self) -> str:
        where = f"{self.file}:{self.line}" if self.file else ""
        parts = [part for part in (self.function, where) if part]
        said = " at ".join(parts) or "an unknown place"
        return f"{said}: `{self.text}`" if self.text else said


def locate(elf_path: Path, address: int, roots: Sequence[Path] = (PROJECT_ROOT,)) -> SourceLocation:
    """The function and source line of `address` (the ELF's own addresses: link-time, load base 0); the line's
    text is read from the first of `roots` holding the file the debug info names (`./initsrc/...`)."""
    try:
        with elf_path.open("rb") as handle:
            elf = ELFFile(handle)
            function = _function_at(elf, address)
            file, line = _line_at(elf, address)
    except (OSError, ELFError):
        return SourceLocation()
    text = ""
    if file and line:
        candidates = [Path(file)] if Path(file).is_absolute() else [root / file for root in roots]
        for source in candidates:
            try:
                text = source.read_text(errors="replace").splitlines()[line - 1].strip()
                break
            except (OSError, IndexError):
                text = ""
    return SourceLocation(function, file.removeprefix("./"), line, text)


def _function_at(elf: ELFFile, address: int) -> str:
    table = elf.get_section_by_name(".symtab")
    if not isinstance(table, SymbolTableSection):
        return ""
    best: tuple[int, int, str] | None = None  # (start, preference, name)
    for symbol in table.iter_symbols():
        kind, start, size = symbol["st_info"]["type"], symbol["st_value"], symbol["st_size"]
        if kind not in ("STT_FUNC", "STT_NOTYPE") or not symbol.name or symbol.name.startswith((".L", "$")):
            continue
        if symbol["st_shndx"] == "SHN_UNDEF" or start > address or (size and address >= start + size):
            continue
        preference = 1 if kind == "STT_FUNC" else 0
        if best is None or (start, preference) > best[:2]:
            best = (start, preference, symbol.name)
    return f"{best[2]}+{address - best[0]:#x}" if best else ""


def _line_at(elf: ELFFile, address: int) -> tuple[str, int]:
    if not elf.has_dwarf_info():
        return "", 0
    dwarf = elf.get_dwarf_info()
    if dwarf.debug_line_sec is None:  # symbols and other DWARF, but no line table
        return "", 0
    for unit in dwarf.iter_CUs():
        program = dwarf.line_program_for_CU(unit)
        if program is None:
            continue
        previous = None
        for entry in program.get_entries():
            state = entry.state
            if state is None:
                continue
            if previous is not None and previous.address <= address < state.address:
                return _file_name(program, unit, previous.file), previous.line
            previous = None if state.end_sequence else state
    return "", 0


def _file_name(program: LineProgram, unit: CompileUnit, index: int) -> str:
    entries = program["file_entry"]
    version = unit["version"]
    entry = entries[index if version >= 5 else index - 1]
    name: str = entry.name.decode(errors="replace")  # pyelftools' parsed structs are untyped (Any)
    directories = program["include_directory"]
    directory_index = entry.dir_index
    if (version < 5 and directory_index == 0) or not directories:
        return name
    directory = directories[directory_index if version >= 5 else directory_index - 1].decode(errors="replace")
    return name if name.startswith("/") or directory in (".", "") else f"{directory}/{name}"


_SIGNAL = re.compile(
    r"(?P<comm>.+?)\[(?P<pid>\d+)\]: unhandled signal (?P<signal>\d+) code (?P<code>0x[0-9a-f]+) "
    r"at (?P<address>0x[0-9a-f]+) in (?P<file>.+?)"
    r"\[(?:(?P<offset>[0-9a-f]+),)?(?P<start>[0-9a-f]+)\+(?P<size>[0-9a-f]+)\]"
)
ACCESSES = {1: "fetch", 5: "load", 7: "store", 12: "fetch", 13: "load", 15: "store"}
SIGNALS = {4: "SIGILL", 5: "SIGTRAP", 7: "SIGBUS", 8: "SIGFPE", 11: "SIGSEGV"}


@dataclass(frozen=True)
class UserFault:
    """A user program killed by a fault (show_unhandled_signals), resolved in the program's own ELF."""

    program: str
    pid: int
    signal: int
    address: int
    pc: int  # the ELF's own address of the faulting instruction
    cause: int | None
    where: SourceLocation
    kernel_symbol: str = ""  # what the touched address is in System.map, when it lies inside the kernel image

    def describe(self) -> str:
        access = ACCESSES.get(self.cause or -1, "access")
        cause = f" ({cause_name(self.cause)})" if self.cause is not None else ""
        inside = f", inside the kernel: {self.kernel_symbol}" if self.kernel_symbol else ""
        return (
            f"{self.program}[{self.pid}]: {SIGNALS.get(self.signal, f'signal {self.signal}')}: the {access} at pc "
            f"{self.pc:#x} of {self.program}, in {self.where.describe()}, touched {self.address:#x}{cause}{inside}"
        )


def _segment_address(elf_path: Path, offset: int) -> int | None:
    """The ELF's own address of file offset `offset` (from its PT_LOAD segments)."""
    try:
        with elf_path.open("rb") as handle:
            for segment in ELFFile(handle).iter_segments("PT_LOAD"):
                if segment["p_offset"] <= offset < segment["p_offset"] + segment["p_filesz"]:
                    return offset - segment["p_offset"] + segment["p_vaddr"]
    except (OSError, ELFError):
        return None
    return None


def user_faults(
    lines: list[str],
    programs: Mapping[str, Path],
    roots: Sequence[Path] = (PROJECT_ROOT,),
    symbols: SymbolTable | None = None,
) -> list[UserFault]:
    """Every `unhandled signal` the kernel printed, resolved against the program it names (by file name, in
    `programs`: the name in the image -> the built ELF). The kernel prints the faulting pc as a file offset
    in the mapping (`[offset,start+size]`); without it, the epc of the register dump minus the start. A touched
    address inside the kernel image (a user store to the kernel's data) is named from `symbols` too."""
    faults = []
    for index, raw in enumerate(lines):
        match = _SIGNAL.search(strip_timestamp(raw))
        if not match:
            continue
        following = [strip_timestamp(line) for line in lines[index + 1 : index + 16]]
        epc = next((int(m[1], 16) for line in following if (m := _REGS.search(line))), None)
        cause = next((int(m[2], 16) for line in following if (m := _STATUS.search(line))), None)
        start = int(match["start"], 16)
        elf = programs.get(match["file"])
        pc = None
        if match["offset"] is not None and elf is not None:
            pc = _segment_address(elf, int(match["offset"], 16))
        if pc is None and epc is not None:
            pc = epc - start
        where = locate(elf, pc, roots) if elf is not None and pc is not None else SourceLocation()
        address = int(match["address"], 16)
        touched = (symbols.resolve(address) if symbols else None) or ""
        faults.append(
            UserFault(match["file"], int(match["pid"]), int(match["signal"]), address, pc or 0, cause, where, touched)
        )
    return faults


# --------------------------------------------------------------------------------------------------------
# QEMU's trap log


@dataclass(frozen=True)
class Trap:
    """One trap QEMU took (`-d int`): which hart, interrupt or exception, the cause, pc and tval."""

    hart: int
    asynchronous: bool
    cause: int
    epc: int
    tval: int

    @property
    def is_fault(self) -> bool:
        return not self.asynchronous and self.cause in FAULTS


_TRAP = re.compile(
    r"riscv_cpu_do_interrupt: hart:(\d+), async:(\d), cause:([0-9a-f]+), epc:0x([0-9a-f]+), tval:0x([0-9a-f]+)"
)


def parse_traps(text: str) -> list[Trap]:
    """QEMU 7.2's `riscv_cpu_do_interrupt: hart:0, async:0, cause:..., epc:0x..., tval:0x..., desc=...` lines."""
    return [
        Trap(int(m[1]), m[2] == "1", int(m[3], 16), int(m[4], 16), int(m[5], 16))
        for m in map(_TRAP.match, text.splitlines())
        if m
    ]


@dataclass(frozen=True)
class TrapDiagnosis:
    """Why a hart is stuck: a loop of one fault, or a last fault followed by silence."""

    kind: str  # "loop" or "stall"
    trap: Trap
    repeats: int = 1
    symbols: SymbolTable | None = field(default=None, compare=False, repr=False)

    def describe(self) -> str:
        trap = self.trap
        where = (self.symbols.resolve(trap.epc) if self.symbols else None) or f"{trap.epc:#x}"
        cause = cause_name(trap.cause, trap.asynchronous)
        tval = f", tval {trap.tval:#x}" if trap.tval else ""
        why = ""
        if trap.cause in (1, 5, 7) and trap.tval >> 63 and self.symbols and self.symbols.resolve(trap.tval):
            # Physical addresses have at most 56 bits: an access fault (not a page fault) on an upper-half
            # kernel address means the CPU used the virtual address as it was.
            why = f"; {trap.tval:#x} is a kernel virtual address used untranslated: the MMU is off"
        if self.kind == "loop":
            return f"trap loop at {where} ({cause}{tval}; {self.repeats} times in a row){why}"
        return f"stuck after a fault at {where} ({cause}{tval}): no trap, interrupt or output since{why}"


def trap_loop(traps: list[Trap], repeats: int = LOOP_REPEATS) -> TrapDiagnosis | None:
    """The same fault (cause, pc, tval) `repeats` times in a row at the end of the log: a certain loop."""
    if len(traps) < repeats or not traps[-1].is_fault:
        return None
    last = traps[-1]
    count = 0
    for trap in reversed(traps):
        if trap != last:
            break
        count += 1
    return TrapDiagnosis("loop", last, count) if count >= repeats else None


def last_fault(traps: list[Trap]) -> TrapDiagnosis | None:
    """The log's last trap when it is a fault: where a hart that then went silent stopped."""
    return TrapDiagnosis("stall", traps[-1]) if traps and traps[-1].is_fault else None


def with_symbols(diagnosis: TrapDiagnosis | None, symbols: SymbolTable | None) -> TrapDiagnosis | None:
    return replace(diagnosis, symbols=symbols) if diagnosis is not None else None


# --------------------------------------------------------------------------------------------------------
# Everything a console shows


@dataclass(frozen=True)
class Resolver:
    """What a boot's addresses resolve against: its kernel's System.map and the programs in its image."""

    symbols: SymbolTable | None = None
    programs: Mapping[str, Path] = field(default_factory=dict)
    roots: tuple[Path, ...] = (PROJECT_ROOT,)  # where the programs' sources are named from

    def explain(self, lines: list[str]) -> tuple[str, ...]:
        """One paragraph per kernel fault and per user program fault the console shows."""
        notes = [fault.describe() for fault in kernel_faults(lines, self.symbols)]
        notes += [fault.describe() for fault in user_faults(lines, self.programs, self.roots, self.symbols)]
        return tuple(notes)
