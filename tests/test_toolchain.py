"""Program builds: reproducible bytes wherever they are built, and header dependencies recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import LazyProject

from mmulab.build import toolchain
from mmulab.core.errors import UserError
from mmulab.core.settings import PROJECT_ROOT

PROJECT = LazyProject()
pytestmark = pytest.mark.needs("riscv64-linux-gnu-gcc")


def build(tmp_path: Path, folder: str, name: str) -> Path:
    output = tmp_path / folder / name / name
    toolchain.build_program(
        PROJECT.programs[name],
        PROJECT.toolchain,
        output,
        output.with_suffix(".log"),
        tmp_path / "no-sysroot",
        toolchain.source_roots(PROJECT.settings),
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


@pytest.mark.needs("ccache")
def test_bytes_name_no_path_with_or_without_the_compile_cache(tmp_path: Path) -> None:
    """A program built without ccache, through ccache with the checkout as its base_dir and through ccache with the
    build directory as its base_dir (each at another depth): the same bytes, holding neither the build
    directory's nor the checkout's path (ccache once rewrote the sysroot's path before the prefix maps matched)."""
    from mmulab.build.ccache import CompileCache
    from mmulab.core.tools import RUNNER

    built = {}
    for name, base_dir in (("off", None), ("checkout", PROJECT_ROOT), ("build", tmp_path / "build" / "deeper")):
        build_dir = tmp_path / "build" / ("deeper" if name == "build" else name)
        output = build_dir / "programs" / "pidns-asm" / "pidns-asm"
        runner = RUNNER
        if base_dir is not None:
            cache = CompileCache(
                True, tmp_path / "ccache", base_dir, build_dir / ".ccache-bin", ("riscv64-linux-gnu-gcc",)
            )
            runner = RUNNER.with_env(cache.environment(build_dir / "stats"))
        toolchain.build_program(
            PROJECT.programs["pidns-asm"],
            PROJECT.toolchain,
            output,
            output.with_suffix(".log"),
            build_dir / "sysroot",
            toolchain.source_roots(PROJECT.settings),
            runner,
        )
        built[name] = output.read_bytes()
        assert b"./initsrc/pidns/init.S" in built[name]  # named from the checkout, as the fault notes expect
    assert built["off"] == built["checkout"] == built["build"]
    for path in (tmp_path, PROJECT_ROOT):
        assert str(path).encode() not in built["off"]
    assert "direct_cache_hit" in (tmp_path / "build" / "deeper" / "stats").read_text()


def test_an_overlay_program_is_the_same_wherever_the_overlay_lies(tmp_path: Path) -> None:
    """Sources in an overlay folder (and one in the checkout) are named from their roots: moving the overlay
    changes no byte, and its path is nowhere in the binary."""
    built = []
    for overlay in (tmp_path / "one", tmp_path / "two" / "deeper"):
        (overlay / "initsrc" / "hello").mkdir(parents=True)
        source = overlay / "initsrc" / "hello" / "init.S"
        source.write_text((PROJECT_ROOT / "initsrc" / "pidns" / "init.S").read_text().replace("../lib/", "lib/"))
        (overlay / "initsrc" / "hello" / "lib").symlink_to(PROJECT_ROOT / "initsrc" / "lib")
        rt = PROJECT_ROOT / "initsrc" / "lib" / "rt.S"
        program = PROJECT.programs["pidns-asm"].__class__("hello-asm", "asm", (source, rt))
        output = overlay / "build" / "hello-asm" / "hello-asm"
        roots = (overlay.resolve(), *toolchain.source_roots(PROJECT.settings))
        toolchain.build_program(program, PROJECT.toolchain, output, output.with_suffix(".log"), tmp_path, roots)
        built.append(output.read_bytes())
        assert str(overlay).encode() not in built[-1]
    assert built[0] == built[1]
    assert b"./initsrc/hello/init.S" in built[0] and b"./initsrc/lib/rt.S" in built[0]


def test_dependency_lists_are_read_with_gcc_escapes_undone() -> None:
    text = "objects/0-init.o: src/0/a\\ b/init.S src/0/x\\#1/rt.h \\\n  src/0/p$$q/r.h sysroot/include/bits/x.h\n"
    assert toolchain.dependency_words(text) == [
        "src/0/a b/init.S",
        "src/0/x#1/rt.h",
        "src/0/p$q/r.h",
        "sysroot/include/bits/x.h",
    ]
