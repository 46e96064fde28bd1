"""Kernel build: make Image out of tree with the cross toolchain, keep Image, System.map and .config."""

from __future__ import annotations

import shutil
from pathlib import Path

from .configdata import Toolchain
from .kconfig import make_args
from .shell import run_logged
from .sources import copy_atomic

OUTPUTS = {"Image": "arch/{arch}/boot/Image", "System.map": "System.map", "config": ".config"}


def reproducible_env(source_date_epoch: int) -> dict[str, str]:
    """Fixed build identity so the same inputs give the same Image (TuxMake does likewise)."""
    return {
        "KBUILD_BUILD_TIMESTAMP": f"@{source_date_epoch}",
        "KBUILD_BUILD_USER": "mmulab",
        "KBUILD_BUILD_HOST": "mmulab",
        "KBUILD_BUILD_VERSION": "1",
        "SOURCE_DATE_EPOCH": str(source_date_epoch),
    }


def build(
    source: Path,
    config: Path,
    objdir: Path,
    outdir: Path,
    toolchain: Toolchain,
    jobs: int,
    epoch: int,
    log: Path,
    label: str,
) -> None:
    """Build with the verified `config` in `objdir` (log to `log`); copy the outputs into `outdir` atomically.

    The verified config is put back first: a failed kconfig attempt may have left another .config behind.
    """
    log.unlink(missing_ok=True)
    current = objdir / ".config"
    if not current.is_file() or current.read_bytes() != config.read_bytes():
        shutil.copyfile(config, current)
    run_logged(
        [*make_args(source, objdir, toolchain), f"-j{jobs}", "Image"],
        log,
        f"kernel build {label}",
        env=reproducible_env(epoch),
    )
    for name, relative in OUTPUTS.items():
        copy_atomic(objdir / relative.format(arch=toolchain.arch), outdir / name)
