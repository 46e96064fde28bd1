"""busybox for each variant: render its config fragment, verify it after oldconfig, build it static PIE
against the pipeline's musl, and list its applet links."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mmulab.build.kernel import reproducible_env
from mmulab.build.kernelconfig import apply_fragment, fragment_context, render_template, source_tree_arg
from mmulab.build.toolchain import require_sysroot, resolve
from mmulab.core.fsutil import copy_atomic, write_atomic
from mmulab.core.progress import Progress, ProgressSpec
from mmulab.core.tools import RUNNER, Runner
from mmulab.kconfig.tree import KconfigSource
from mmulab.project.model import BusyboxSpec, Toolchain, Variant

OUTPUTS = {"busybox": "busybox", "busybox.links": "busybox.links", "config": ".config"}
# kbuild-style quiet output of busybox's make: one line per compiled file.
BUSYBOX_PROGRESS = r"^\s+(CC|AS|LD|AR)\s"


def render_fragment(spec: BusyboxSpec, variant: Variant, toolchain: Toolchain) -> str:
    """The busybox fragment for `variant`, with {sysroot} and {gcc_include} still placeholders."""
    return render_template(spec.template, fragment_context(variant, toolchain, spec.base_config, spec.kconfig))


@dataclass(frozen=True)
class BusyboxBuild:
    """One busybox build: the spec, the variant it is configured for, its tree, sysroot and work directory."""

    spec: BusyboxSpec
    variant: Variant
    toolchain: Toolchain
    tree: Path
    sysroot: Path
    work: Path
    jobs: int
    source_date_epoch: int
    progress: str = "auto"


def build(request: BusyboxBuild, runner: Runner = RUNNER) -> None:
    """Configure (verified), build and collect busybox for the variant into work/out, each output atomically.

    SOURCE_DATE_EPOCH is set for the config step too: busybox writes its build stamp (the banner's date)
    into include/autoconf.h there.
    """
    name = request.variant.name
    require_sysroot(request.sysroot, f"busybox {name}")
    work, objdir = request.work, request.work / "obj"
    # The sysroot as seen from the object directory (busybox compiles and links from there): the config,
    # like the binary, then names no absolute build path and is the same in every build directory.
    sysroot = Path(os.path.relpath(request.sysroot, objdir))
    fragment = resolve(
        render_fragment(request.spec, request.variant, request.toolchain), request.toolchain, sysroot, runner
    )
    write_atomic(work / "fragment.config", fragment)
    make = ["make", "-C", str(request.tree), f"O={objdir}", *source_tree_arg(request.tree, objdir)]
    env = reproducible_env(request.source_date_epoch)
    apply_fragment(
        make,
        objdir,
        request.spec.base_config,
        fragment,
        work / "build.log",
        f"busybox config {name}",
        ["oldconfig"],
        # kconfig reads the Config.in files it generates in the objdir first, then the source tree's
        KconfigSource((objdir, request.tree), "Config.in"),
        env=env,
        runner=runner,
    )
    progress = Progress.for_terminal(
        ProgressSpec(f"busybox {name}", BUSYBOX_PROGRESS, work / "progress.json", request.spec.progress_estimate),
        request.progress,
    )
    runner.log(work / "make.log").run(
        [*make, f"-j{request.jobs}", "busybox", "busybox.links"], f"busybox build {name}", env=env, progress=progress
    )
    for output, source in OUTPUTS.items():
        copy_atomic(objdir / source, work / "out" / output, 0o755 if output == "busybox" else 0o644)


def applet_links(links_file: Path) -> list[str]:
    """Applet paths (e.g. bin/sh, sbin/poweroff) from busybox.links, relative to the image root."""
    return sorted({line.strip().lstrip("/") for line in links_file.read_text().splitlines() if line.strip()})
