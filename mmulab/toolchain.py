"""Userspace: cross-compile init programs with the riscv64 toolchain into static-PIE binaries."""

from __future__ import annotations

import os
from pathlib import Path

from .configdata import Program, Toolchain
from .settings import PROJECT_ROOT
from .shell import require_tool, run_logged


def compiler(toolchain: Toolchain) -> str:
    return f"{toolchain.cross_prefix}gcc"


def compile_command(program: Program, toolchain: Toolchain, output: Path) -> list[str]:
    language = toolchain.languages[program.language]
    prefix_maps = [f"-ffile-prefix-map={PROJECT_ROOT}=."]
    return [compiler(toolchain), *language.flags, *prefix_maps, "-o", str(output), *map(str, program.sources)]


def build_program(program: Program, toolchain: Toolchain, output: Path, log: Path) -> None:
    """Compile and link `program`; the binary appears under `output` only when the link succeeded."""
    require_tool(compiler(toolchain), "gcc-riscv64-linux-gnu")
    output.parent.mkdir(parents=True, exist_ok=True)
    log.unlink(missing_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    try:
        run_logged(compile_command(program, toolchain, tmp), log, f"program {program.name}: compile")
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
