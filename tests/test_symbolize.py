"""Faults in names, on recorded real data: a NOMMU oops (a write() from address 0x10) from kernels with and
without KALLSYMS with an excerpt of that kernel's System.map (every line at or next to an address the oops
names), the addrspace child's SIGSEGV resolved in its real -g ELF, and the trap log of the MMU kernel on a
CPU without an MMU (QEMU 7.2, -d int)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mmulab.boot import symbolize
from mmulab.boot.symbolize import SymbolTable, Trap

DATA = Path(__file__).parent / "data"
RECORDED = DATA / "symbolize"
NOMMU_MAP = SymbolTable.load(RECORDED / "nommu-plain.System.map")
MMU_MAP = SymbolTable.load(RECORDED / "mmu.System.map")
# The call trace of the recorded oops, as the KALLSYMS kernel printed it itself.
TRACE = (
    "file_tty_write.constprop.0+0x11c/0x186",
    "tty_write+0xe/0x16",
    "redirected_tty_write+0x3c/0x76",
    "vfs_write+0xe4/0x124",
    "ksys_write+0x68/0xa4",
    "__riscv_sys_write+0x14/0x1c",
    "do_trap_ecall_u+0xc0/0x124",
    "handle_exception+0x134/0x140",
)


def recorded(name: str) -> list[str]:
    return (RECORDED / name).read_text().splitlines()


def test_system_map_resolves_like_the_kernels_own_names() -> None:
    assert NOMMU_MAP is not None
    assert NOMMU_MAP.resolve(0x8008C718) == "vfs_write+0xe4/0x124"
    assert NOMMU_MAP.resolve(0x8008C634) == "vfs_write+0x0/0x124"
    # Two names at one address: the one without underscores (the kernel printed __memcpy, an alias).
    assert NOMMU_MAP.resolve(0x80185A14) == "memcpy+0xd4/0xf8"
    assert NOMMU_MAP.resolve(0x7FFFFFFF) is None  # below the image
    assert NOMMU_MAP.resolve(0x90000000) is None  # past _end


def test_missing_system_map_is_none(tmp_path: Path) -> None:
    assert SymbolTable.load(tmp_path / "System.map") is None


def test_oops_without_kallsyms_is_resolved_from_system_map() -> None:
    (fault,) = symbolize.kernel_faults(recorded("nommu-oops-plain.log"), NOMMU_MAP)
    assert fault.headline == "Oops - load access fault [#1]"
    assert fault.task == "init[1]"
    assert fault.epc == "memcpy+0xd4/0xf8 (0x80185a14)"
    assert fault.ra == "_copy_from_iter+0x6c/0x368 (0x800f88ee)"
    assert (fault.cause, fault.badaddr) == (5, 0x10)
    assert tuple(frame.split(" (")[0] for frame in fault.trace[1:]) == TRACE
    assert fault.panic == "Kernel panic - not syncing: Fatal exception in interrupt"
    text = fault.describe()
    assert "cause 5: load access fault, badaddr 0x10" in text and "(in init[1])" in text


def test_oops_with_kallsyms_keeps_the_kernels_names() -> None:
    (fault,) = symbolize.kernel_faults(recorded("nommu-oops.log"), None)
    assert (fault.epc, fault.ra) == ("__memcpy+0xd4/0xf8", "_copy_from_iter+0x6c/0x368")
    assert fault.trace[1:] == TRACE
    assert fault.panic.endswith("Fatal exception in interrupt")


def test_without_a_map_bare_addresses_stay_addresses() -> None:
    (fault,) = symbolize.kernel_faults(recorded("nommu-oops-plain.log"), None)
    assert fault.epc == "0x80185a14" and fault.trace[0] == "0x80185a14"


def test_a_panic_without_oops_is_a_fault_with_its_trace() -> None:
    (fault,) = symbolize.kernel_faults((DATA / "nommu-panic.log").read_text().splitlines(), None)
    assert fault.headline.startswith("Kernel panic - not syncing: No working init found")
    assert fault.task == "swapper/0[1]" and len(fault.trace) == 7


def test_a_clean_boot_has_no_faults() -> None:
    assert symbolize.kernel_faults(recorded_boot("clone_vm-c-mmu"), MMU_MAP) == []


def recorded_boot(case: str) -> list[str]:
    return (DATA / "boots" / f"{case}.log").read_text().splitlines()


@pytest.mark.parametrize(
    ("language", "pc", "function", "line", "text", "address"),
    [
        ("c", 0x6EA, "main+0x204", "initsrc/addrspace/child.c:34", "*target = 0x3333;", 0x7FFFF7FE9000),
        ("asm", 0x2B4, "parsed+0xa4", "initsrc/addrspace/child.S:61", "sd\tt0, 0(s0)", 0x7FFFF7FF9000),
    ],
)
def test_user_fault_resolves_to_function_and_source_line(
    language: str, pc: int, function: str, line: str, text: str, address: int
) -> None:
    programs = {"addrspace-child": RECORDED / f"addrspace-child-{language}"}
    (fault,) = symbolize.user_faults(recorded_boot(f"addrspace-{language}-mmu"), programs)
    assert (fault.program, fault.pid, fault.signal, fault.address, fault.pc, fault.cause) == (
        "addrspace-child",
        16,
        11,
        address,
        pc,
        15,
    )
    assert fault.where.function == function
    assert f"{fault.where.file}:{fault.where.line}" == line
    assert fault.where.text == text
    said = fault.describe()
    assert said.startswith(f"addrspace-child[16]: SIGSEGV: the store at pc {pc:#x} of addrspace-child, in {function}")
    assert f"touched {address:#x} (cause 15: store/AMO page fault)" in said


def test_user_fault_without_debug_info_names_the_function(tmp_path: Path) -> None:
    stripped = tmp_path / "child"
    shutil.copy(RECORDED / "addrspace-child-c", stripped)
    data = bytearray(stripped.read_bytes())
    at = data.find(b"\0.debug_line\0")
    assert at > 0
    data[at : at + 13] = b"\0.nodebug_ln\0"  # the line table's section renamed: no DWARF lines to read
    stripped.write_bytes(bytes(data))
    (fault,) = symbolize.user_faults(recorded_boot("addrspace-c-mmu"), {"addrspace-child": stripped})
    assert fault.where.function == "main+0x204" and fault.where.line == 0


def test_user_fault_of_an_unknown_program_keeps_the_kernels_numbers() -> None:
    (fault,) = symbolize.user_faults(recorded_boot("addrspace-asm-mmu"), {})
    assert fault.pc == 0x2B4 and fault.where == symbolize.SourceLocation()
    assert "in an unknown place" in fault.describe()


def test_resolver_explains_every_fault_of_a_console() -> None:
    resolver = symbolize.Resolver(NOMMU_MAP, {"addrspace-child": RECORDED / "addrspace-child-c"})
    assert resolver.explain(recorded_boot("fork-c-mmu")) == ()
    (note,) = resolver.explain(recorded_boot("addrspace-c-mmu"))
    assert "initsrc/addrspace/child.c:34" in note
    (note,) = resolver.explain(recorded("nommu-oops-plain.log"))
    assert note.startswith("kernel: Oops - load access fault [#1] (in init[1])")


def test_trap_log_of_the_mmu_kernel_without_mmu() -> None:
    traps = symbolize.parse_traps((RECORDED / "mmu-mmu-off.traps").read_text())
    assert len(traps) == 6
    assert [trap.cause for trap in traps] == [2, 2, 2, 2, 2, 1]  # OpenSBI probing CSRs, then the kernel
    assert symbolize.trap_loop(traps) is None
    stall = symbolize.with_symbols(symbolize.last_fault(traps), MMU_MAP)
    assert stall is not None and stall.trap == Trap(0, False, 1, 0xFFFFFFFF800010FA, 0xFFFFFFFF800010FA)
    said = stall.describe()
    assert said.startswith("stuck after a fault at _start_kernel+0x76/0xf7c (cause 1: instruction access fault")
    assert "kernel virtual address used untranslated: the MMU is off" in said


def test_trap_loop_needs_the_same_fault_again_and_again() -> None:
    fault = Trap(0, False, 12, 0xFFFFFFFF80001094, 0xFFFFFFFF80001094)
    other = Trap(0, False, 12, 0xFFFFFFFF80001004, 0xFFFFFFFF80001004)
    loop = symbolize.trap_loop([other, *[fault] * symbolize.LOOP_REPEATS])
    assert loop is not None and loop.repeats == symbolize.LOOP_REPEATS
    said = symbolize.with_symbols(loop, MMU_MAP).describe()  # type: ignore[union-attr]
    assert said.startswith("trap loop at _start_kernel+0x10/0xf7c (cause 12: instruction page fault")
    assert symbolize.trap_loop([*[fault] * (symbolize.LOOP_REPEATS - 1), other]) is None
    assert symbolize.trap_loop([fault] * (symbolize.LOOP_REPEATS - 1)) is None
    timer = Trap(0, True, 5, 0x80001000, 0)
    assert symbolize.trap_loop([timer] * 20) is None  # interrupts are a live hart, not a loop
    assert symbolize.last_fault([fault, timer]) is None


def test_trap_lines_parse_and_others_are_ignored() -> None:
    text = (
        "some other qemu message\n"
        "riscv_cpu_do_interrupt: hart:0, async:1, cause:0000000000000005, epc:0x0000000080002a10, "
        "tval:0x0000000000000000, desc=supervisor_timer\n"
        "riscv_cpu_do_interrupt: hart:0, async:0, cause:000000000000000d, epc:0x0000000000010"  # cut short
    )
    assert symbolize.parse_traps(text) == [Trap(0, True, 5, 0x80002A10, 0)]
    assert symbolize.cause_name(5, True) == "interrupt 5: supervisor timer"
    assert symbolize.cause_name(13) == "cause 13: load page fault"


# --- assertions that kill surviving mutants (bench/bench_mutation.py): each computes inside the test, since
# what the module computes at import (NOMMU_MAP, MMU_MAP) runs before mutmut switches a mutant on ---


def test_a_system_map_parsed_in_the_test_resolves_like_the_kernel() -> None:
    table = SymbolTable.parse((RECORDED / "nommu-plain.System.map").read_text())
    assert table == NOMMU_MAP
    assert table.resolve(0x8008C718) == "vfs_write+0xe4/0x124"
    assert table.resolve(0x80185A14) == "memcpy+0xd4/0xf8"


def test_system_map_ranks_and_bounds() -> None:
    """A global text symbol beats a local one and an `__` alias at one address; absolute (a/A), undefined (U),
    debugging (N) and weak-object (w) symbols and malformed lines are skipped; _end bounds the image."""
    table = SymbolTable.parse(
        "0000000080000000 t local_start\n"
        "0000000080000000 T _start\n"
        "0000000080000000 T __start_alias\n"
        "0000000080000010 d some_data\n"
        "0000000080000010 t __hidden\n"
        "0000000080000020 A absolute\n"
        "0000000080000030 U undefined\n"
        "0000000080000040 N debug\n"
        "0000000080000050 w weak\n"
        "zz000000 T not_hex\n"
        "0000000080000060 T too many fields\n"
        "0000000080000080 B _end\n"
        "0000000080000090 B after_end\n"
    )
    assert table.names == ("_start", "some_data", "_end", "after_end")
    assert table.end == 0x80000080
    assert table.resolve(0x80000004) == "_start+0x4/0x10"
    assert table.resolve(0x80000010) == "some_data+0x0/0x70"
    assert table.resolve(0x7FFFFFFF) is None and table.resolve(0x80000080) is None
    last = SymbolTable.parse("0000000080000000 T only\n0000000080000008 T last\n")
    assert last.end == 0x80000008 and last.resolve(0x80000004) == "only+0x4/0x8"
    assert SymbolTable.parse("").resolve(0x80000000) is None


def test_annotate_names_bare_kernel_addresses_only() -> None:
    table = SymbolTable.parse((RECORDED / "nommu-plain.System.map").read_text())
    frame = "[    0.788456] [<0000000080185a14>] 0x0000000080185a14"
    assert symbolize.annotate(frame, table) == f"{frame}  <- memcpy+0xd4/0xf8"
    assert symbolize.annotate(frame, None) == frame
    named = "[    0.788456] [<0000000080185a14>] __memcpy+0xd4/0xf8"
    assert symbolize.annotate(named, table) == named  # KALLSYMS printed the name already
    epc = "[    0.788203] epc : 0x0000000080185a14"
    assert symbolize.annotate(epc, table) == f"{epc}  <- memcpy+0xd4/0xf8"
    regs = "[    0.788261] epc : 0000000080185a14 ra : 00000000800f88ee sp : 000000008042fc60"
    assert symbolize.annotate(regs, table) == f"{regs}  <- epc memcpy+0xd4/0xf8, ra _copy_from_iter+0x6c/0x368"
    outside = "[    0.7] [<0000000000001000>] 0x0000000000001000"
    assert symbolize.annotate(outside, table) == outside
    assert symbolize.annotate("[    0.7] epc : 0x0000000000001000 ra : 0000000000001000", table).endswith("1000")
    assert symbolize.annotate("mmulab: a plain line", table) == "mmulab: a plain line"


def test_descriptions_say_only_what_is_known() -> None:
    bare = symbolize.KernelFault("Kernel panic - not syncing: x", panic="Kernel panic - not syncing: x")
    assert bare.describe() == "kernel: Kernel panic - not syncing: x"  # no task, no registers, panic not repeated
    full = symbolize.KernelFault("Oops", "init[1]", "a+0x1/0x2", "b+0x3/0x4", 13, 0, ("f", "g"), "then this")
    assert full.describe().splitlines() == [
        "kernel: Oops (in init[1])",
        "  epc a+0x1/0x2",
        "  ra  b+0x3/0x4",
        "  cause 13: load page fault, badaddr 0x0",
        "  call trace: f <- g",
        "  then: then this",
    ]
    loop = symbolize.TrapDiagnosis("loop", Trap(0, False, 13, 0x80001000, 0x10), 9)
    assert loop.describe() == "trap loop at 0x80001000 (cause 13: load page fault, tval 0x10; 9 times in a row)"
    quiet = symbolize.TrapDiagnosis("stall", Trap(0, True, 5, 0x80001000, 0))
    assert quiet.describe() == (
        "stuck after a fault at 0x80001000 (interrupt 5: supervisor timer): no trap, interrupt or output since"
    )
    assert symbolize.cause_name(99) == "cause 99: unknown" and symbolize.cause_name(99, True) == "interrupt 99: unknown"


def test_an_oops_with_only_a_register_line_and_two_oopses_in_a_row() -> None:
    """The register dump's `epc : X ra : Y` line alone names epc and ra; the status line's hex cause; a frame
    printed without a name; a second oops after a trace is a second fault; the first task line counts."""
    table = SymbolTable.parse((RECORDED / "nommu-plain.System.map").read_text())
    console = [
        "[    0.1] Unable to handle kernel access to user memory   ",
        "[    0.1] CPU: 0 PID: 1 Comm: init Not tainted 6.12",
        "[    0.1] CPU: 0 PID: 2 Comm: other Not tainted 6.12",
        "[    0.1]  epc : 0000000080185a14 ra : 00000000800f88ee sp : 000000008042fc60",
        "[    0.1] status: 0000000200000120 badaddr: 00000000000000ff cause: 000000000000000d",
        "[    0.1] [<000000008008c718>]",
        "[    0.2] Oops - second [#2]",
        "[    0.2] [<000000008008c718>] vfs_write+0xe4/0x124",
    ]
    first, second = symbolize.kernel_faults(console, table)
    assert first.headline == "Unable to handle kernel access to user memory" and first.task == "init[1]"
    assert (first.epc, first.ra) == ("memcpy+0xd4/0xf8 (0x80185a14)", "_copy_from_iter+0x6c/0x368 (0x800f88ee)")
    assert (first.cause, first.badaddr) == (13, 0xFF)
    assert first.trace == ("vfs_write+0xe4/0x124 (0x8008c718)",)
    assert (second.headline, second.trace, second.epc) == ("Oops - second [#2]", ("vfs_write+0xe4/0x124",), "")
    panicked = symbolize.kernel_faults(["Oops - x", "Kernel panic - not syncing: y ---[ end Kernel panic - z"], None)
    assert panicked[0].panic == "Kernel panic - not syncing: y ---[ end Kernel panic - z"
    # "Unable to handle..." then "Oops [#1]": one fault, until its registers or trace have been read
    assert [fault.headline for fault in symbolize.kernel_faults(["Oops - a", "Oops - b"], None)] == ["Oops - a"]
