"""ELF checks on every userspace binary before it is packed: the NOMMU loader is strict and says little.

A binary the kernel cannot load shows up only as a cryptic boot failure ("Failed to execute /init
(error -8)"); these checks name the file and the reason before any QEMU starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmulab.core.errors import UserError
from mmulab.project.model import ElfRules

R_RISCV_RELATIVE = 3


def problems(path: Path, rules: ElfRules) -> list[str]:
    """Every reason `path` breaks `rules` (STATIC_PIE: ET_DYN, no PT_INTERP, no DT_NEEDED, relative relocs)."""
    from elftools.common.exceptions import ELFError  # imported on use: a no-op run checks no binary
    from elftools.elf.elffile import ELFFile

    rules = ElfRules(rules)  # a member, also when given its value
    try:
        with path.open("rb") as handle:
            elf = ELFFile(handle)
            return _problems(elf, rules)
    except ELFError as exc:
        return [f"not an ELF file ({exc})"]
    except OSError as exc:
        return [f"cannot read ({exc.strerror})"]


def _problems(elf: Any, rules: ElfRules) -> list[str]:
    from elftools.elf.constants import SH_FLAGS
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.relocation import RelocationSection

    found = []
    if elf["e_machine"] != "EM_RISCV":
        found.append(f"machine is {elf['e_machine']}, not EM_RISCV (built with the host compiler?)")
    if elf.elfclass != 64:
        found.append(f"ELFCLASS{elf.elfclass}, not ELFCLASS64")
    kind = elf["e_type"]
    if rules is ElfRules.STATIC_PIE and kind != "ET_DYN":
        found.append(f"type is {kind}, not ET_DYN: NOMMU's FDPIC loader needs static PIE (link with -static-pie)")
    elif kind not in ("ET_DYN", "ET_EXEC"):
        found.append(f"type is {kind}, not an executable")
    for segment in elf.iter_segments():
        if segment["p_type"] == "PT_INTERP":
            interp = segment.get_interp_name()
            found.append(f"has PT_INTERP {interp!r}: a static binary needs none (link with -Wl,--no-dynamic-linker)")
    for section in elf.iter_sections():
        if isinstance(section, DynamicSection):
            # pyelftools sets DT_NEEDED's .needed with setattr, out of its type hints' sight
            needed = [tag.needed for tag in section.iter_tags() if tag.entry.d_tag == "DT_NEEDED"]  # type: ignore[attr-defined]
            if needed:
                found.append(f"needs shared libraries {', '.join(needed)} (link statically)")
        if isinstance(section, RelocationSection) and section["sh_flags"] & SH_FLAGS.SHF_ALLOC:
            others = sorted({r["r_info_type"] for r in section.iter_relocations()} - {R_RISCV_RELATIVE})
            if others:
                found.append(f"dynamic relocations other than R_RISCV_RELATIVE (types {others}) in {section.name}")
    return found


def check(path: Path, rules: ElfRules, label: str = "") -> None:
    """Raise a UserError listing every problem of `path` under `rules`."""
    found = problems(path, rules)
    if found:
        raise UserError(f"{label or path}: not loadable as {rules}: " + "; ".join(found))
