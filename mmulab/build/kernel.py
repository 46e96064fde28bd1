"""Kernel build: make <image> out of tree with the cross toolchain, keep the image, System.map and .config."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from mmulab.build.kernelconfig import make_args
from mmulab.core.fsutil import copy_atomic
from mmulab.core.progress import Progress, ProgressMode, ProgressSpec
from mmulab.core.tools import RUNNER, Runner
from mmulab.project.model import Toolchain

# kbuild's quiet output: one line per compiled, assembled or linked file.
KBUILD_PROGRESS = r"^\s+(CC|AS|LD|AR|CPP|OBJCOPY|GZIP|LDS|HOSTCC|HOSTLD|SYSTBL|MKCAP|VDSO\w*|UPD|GEN)\s"


def outputs(toolchain: Toolchain) -> dict[str, str]:
    """Published name -> path in the object directory."""
    image = toolchain.kernel.image
    return {image: f"arch/{toolchain.arch}/boot/{image}", "System.map": "System.map", "config": ".config"}


def reproducible_env(source_date_epoch: int) -> dict[str, str]:
    """Fixed build identity so the same inputs give the same bytes (TuxMake does likewise). The time zone and
    locale are fixed too: busybox prints SOURCE_DATE_EPOCH in local time into its banner and .config header
    (`doit repro` found it), and sort orders follow the locale."""
    return {
        "TZ": "UTC",
        "LC_ALL": "C",
        "KBUILD_BUILD_TIMESTAMP": f"@{source_date_epoch}",
        "KBUILD_BUILD_USER": "mmulab",
        "KBUILD_BUILD_HOST": "mmulab",
        "KBUILD_BUILD_VERSION": "1",
        "SOURCE_DATE_EPOCH": str(source_date_epoch),
    }


@dataclass(frozen=True)
class KernelBuild:
    """One kernel build: the tree, the verified config, where to build and where the outputs go."""

    label: str
    source: Path
    config: Path
    work: Path
    toolchain: Toolchain
    jobs: int
    source_date_epoch: int
    progress: ProgressMode = ProgressMode.AUTO
    user_tree: bool = False  # the source is LINUX_SRC

    @property
    def objdir(self) -> Path:
        return self.work / "obj"

    @property
    def outdir(self) -> Path:
        return self.work / "out"

    @property
    def log(self) -> Path:
        return self.work / "build.log"


def build(request: KernelBuild, runner: Runner = RUNNER) -> None:
    """Build with the verified config in the object directory; copy the outputs into place atomically.

    The verified config is put back first: a failed kconfig attempt may have left another .config behind,
    and the object directory may be gone altogether (then this is a full build, never a crash).
    """
    objdir = request.objdir
    objdir.mkdir(parents=True, exist_ok=True)
    current = objdir / ".config"
    if not current.is_file() or current.read_bytes() != request.config.read_bytes():
        shutil.copyfile(request.config, current)
    progress = Progress.for_terminal(
        ProgressSpec(
            f"kernel {request.label}",
            KBUILD_PROGRESS,
            request.work / "progress.json",
            request.toolchain.kernel.progress_estimate,
        ),
        request.progress,
    )
    runner.log(request.log).run(
        [
            *make_args(request.source, objdir, request.toolchain, request.user_tree),
            f"-j{request.jobs}",
            request.toolchain.kernel.image,
        ],
        f"kernel build {request.label}",
        env=reproducible_env(request.source_date_epoch),
        progress=progress,
    )
    for name, relative in outputs(request.toolchain).items():
        copy_atomic(objdir / relative, request.outdir / name)
