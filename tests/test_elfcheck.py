"""ELF checks on real cross-compiled binaries: what NOMMU can load passes, everything else is named."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mmulab.build import elfcheck as build_elfcheck
from mmulab.build.toolchain import build_program
from mmulab.core.errors import UserError
from mmulab.project.loader import load_project

CC = "riscv64-linux-gnu-gcc"
HELLO_C = '#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n'
ASM = ".globl _start\n_start:\n\tli a7, 93\n\tecall\n"


def compiled(tmp_path: Path, name: str, source: str, suffix: str, *flags: str, cc: str = CC) -> Path:
    src = tmp_path / f"{name}{suffix}"
    src.write_text(source)
    out = tmp_path / name
    subprocess.run([cc, *flags, "-o", str(out), str(src)], check=True, capture_output=True)
    return out


@pytest.mark.needs(CC)
def test_the_projects_own_asm_programs_pass(tmp_path: Path) -> None:
    """The asm demos need no C library (C ones are checked after `doit all`, in test_demos)."""
    project = load_project()
    asm = [program for program in project.programs.values() if program.language == "asm"]
    assert len(asm) >= 5
    for program in asm:
        out = tmp_path / program.name / program.name
        build_program(program, project.toolchain, out, out.with_suffix(".log"), tmp_path / "no-sysroot")
        assert build_elfcheck.problems(out, "static-pie") == []


@pytest.mark.needs(CC)
def test_static_pie_asm_passes(tmp_path: Path) -> None:
    good = compiled(tmp_path, "good", ASM, ".S", "-nostdlib", "-static-pie", "-Wl,--no-dynamic-linker")
    assert build_elfcheck.problems(good, "static-pie") == []
    build_elfcheck.check(good, "static-pie")


@pytest.mark.needs(CC)
def test_pt_interp_is_named(tmp_path: Path) -> None:
    with_interp = compiled(tmp_path, "interp", ASM, ".S", "-nostdlib", "-static-pie")
    (problem,) = build_elfcheck.problems(with_interp, "static-pie")
    assert "has PT_INTERP" in problem and "--no-dynamic-linker" in problem


@pytest.mark.needs(CC)
def test_non_pie_static_is_refused_for_nommu_but_fine_as_static(tmp_path: Path) -> None:
    exec_binary = compiled(tmp_path, "exec", ASM, ".S", "-nostdlib", "-static", "-no-pie")
    (problem,) = build_elfcheck.problems(exec_binary, "static-pie")
    assert "type is ET_EXEC, not ET_DYN" in problem
    assert build_elfcheck.problems(exec_binary, "static") == []


@pytest.mark.needs(CC)
def test_dynamic_glibc_program_lists_interp_and_needed_libraries(tmp_path: Path) -> None:
    dynamic = compiled(tmp_path, "dynamic", HELLO_C, ".c")
    found = " | ".join(build_elfcheck.problems(dynamic, "static-pie"))
    assert "PT_INTERP '/lib/ld-linux-riscv64-lp64d.so.1'" in found
    assert "needs shared libraries libc.so.6" in found
    assert "R_RISCV_RELATIVE" in found
    with pytest.raises(UserError, match=r"^program hello \(.*dynamic\): not loadable as static-pie: "):
        build_elfcheck.check(dynamic, "static-pie", label=f"program hello ({dynamic})")


def test_host_binary_and_non_elf_are_named(tmp_path: Path) -> None:
    host = compiled(tmp_path, "host", HELLO_C, ".c", cc="gcc")
    assert any("not EM_RISCV" in p for p in build_elfcheck.problems(host, "static-pie"))
    text = tmp_path / "script"
    text.write_text("#!/bin/sh\necho hi\n")
    assert build_elfcheck.problems(text, "static-pie")[0].startswith("not an ELF file")
    assert build_elfcheck.problems(tmp_path / "absent", "static-pie")[0].startswith("cannot read")
