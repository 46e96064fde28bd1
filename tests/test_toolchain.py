"""Program builds: reproducible bytes wherever they are built, and header dependencies recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import LazyProject

from mmulab import toolchain
from mmulab.errors import UserError
from mmulab.settings import PROJECT_ROOT

PROJECT = LazyProject()
pytestmark = pytest.mark.needs("riscv64-linux-gnu-gcc")


def build(tmp_path: Path, folder: str, name: str) -> Path:
    output = tmp_path / folder / name / name
    toolchain.build_program(
        PROJECT.programs[name], PROJECT.toolchain, output, output.with_suffix(".log"), tmp_path / "no-sysroot"
    )
    return output


def test_same_program_built_in_two_places_is_bit_identical(tmp_path: Path) -> None:
    first, second = build(tmp_path, "a", "fork-asm"), build(tmp_path, "b/deeper", "fork-asm")
    assert first.read_bytes() == second.read_bytes()


def test_headers_a_program_includes_are_recorded_and_watched(tmp_path: Path) -> None:
    output = tmp_path / "pidns-asm" / "pidns-asm"
    assert toolchain.recorded_headers(output) is None and not toolchain.headers_unchanged(output)
    build(tmp_path, ".", "pidns-asm")
    assert toolchain.recorded_headers(output) == [PROJECT_ROOT / "initsrc" / "lib" / "rt.h"]
    assert toolchain.headers_unchanged(output)
    depfile = next((output.parent / "objects").glob("*.o.d"))
    header = tmp_path / "my.h"
    header.write_text("#define X 1\n")
    depfile.write_text(depfile.read_text().rstrip() + f" {header}\n")
    assert not toolchain.headers_unchanged(output)


def test_compile_error_names_the_program_and_source(tmp_path: Path) -> None:
    broken = tmp_path / "broken.S"
    broken.write_text(".globl _start\n_start:\n\tnot_an_instruction a0\n")
    program = PROJECT.programs["fork-asm"].__class__("broken-asm", "asm", (broken,))
    output = tmp_path / "broken" / "broken"
    with pytest.raises(UserError) as error:
        toolchain.build_program(program, PROJECT.toolchain, output, output.with_suffix(".log"), tmp_path)
    first, *details = str(error.value).splitlines()
    assert first == f"program broken-asm: compile broken.S failed (exit 1); full log: {output.with_suffix('.log')}"
    assert details[-1] == f"{broken}:3: Error: unrecognized opcode `not_an_instruction a0'"
    assert not output.exists()


def test_c_programs_without_a_libc_say_which_task_builds_it(tmp_path: Path) -> None:
    output = tmp_path / "fork-c" / "fork-c"
    with pytest.raises(UserError, match=r"program fork-c: no C library in .* \(run `doit libc`\)"):
        toolchain.build_program(
            PROJECT.programs["fork-c"],
            PROJECT.toolchain,
            output,
            output.with_suffix(".log"),
            tmp_path / "missing-sysroot",
        )
