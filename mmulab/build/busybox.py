"""busybox, one build per flavour: render its config fragment, verify it after oldconfig, build it static PIE
against the pipeline's musl, and list its applet links.

A variant reaches its busybox only through its Flavour (whether its kernel has an MMU). Variants of one flavour
get one build, named by the flavour's key (build/busybox/<key>/), and their images share its binary: `mmu` and
`mmu-full` differ in kernel options only, so their busybox is configured and compiled once.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mmulab.build.kernel import reproducible_env
from mmulab.build.kernelconfig import apply_fragment, render_template, source_tree_arg
from mmulab.build.toolchain import require_sysroot, resolve
from mmulab.core.fsutil import copy_atomic, write_atomic
from mmulab.core.paths import Layout
from mmulab.core.progress import Progress, ProgressMode, ProgressSpec
from mmulab.core.tools import RUNNER, Runner
from mmulab.kconfig.tree import KconfigSource
from mmulab.project.model import BusyboxSpec, Toolchain, Variant

OUTPUTS = {"busybox": "busybox", "busybox.links": "busybox.links", "config": ".config"}
# kbuild-style quiet output of busybox's make: one line per compiled file.
BUSYBOX_PROGRESS = r"^\s+(CC|AS|LD|AR)\s"


@dataclass(frozen=True)
class Flavour:
    """All a variant gives its busybox: whether its kernel has an MMU (the template picks the shell and the
    applets by it). Not its name, kernel options or features: variants that agree here get one build, the same
    bytes. A per-variant busybox setting added later belongs here, and then splits the builds by itself."""

    mmu: bool

    @classmethod
    def of(cls, variant: Variant) -> Flavour:
        return cls(mmu=variant.mmu)

    @property
    def key(self) -> str:
        """The build's name: a digest of the fields (declared data only, so declaring tasks runs nothing). What
        every build shares (the spec, the tree, the sysroot, the compiler) is its tasks' uptodate check."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class SharedBuild:
    """One busybox build and the variants whose images take its binary (in the order variants.toml has them)."""

    flavour: Flavour
    variants: tuple[str, ...]

    @property
    def key(self) -> str:
        return self.flavour.key

    @property
    def label(self) -> str:
        """How messages and the progress line name it: by its variants (mmu+mmu-full), not by its key."""
        return "+".join(self.variants)


def shared_builds(variants: Mapping[str, Variant]) -> dict[str, SharedBuild]:
    """key -> the build, one per flavour among `variants`, in the order of each flavour's first variant."""
    grouped: dict[Flavour, list[str]] = {}
    for name, variant in variants.items():
        grouped.setdefault(Flavour.of(variant), []).append(name)
    return {flavour.key: SharedBuild(flavour, tuple(names)) for flavour, names in grouped.items()}


def build_dir(layout: Layout, variant: Variant) -> Path:
    """The folder of the build `variant`'s images take busybox from (shared with its flavour's variants)."""
    return layout.busybox_dir(Flavour.of(variant).key)


def output(layout: Layout, variant: Variant, name: str = "busybox") -> Path:
    """busybox, busybox.links or config of the build `variant` takes."""
    return layout.busybox_output(Flavour.of(variant).key, name)


def template_context(spec: BusyboxSpec, flavour: Flavour, toolchain: Toolchain) -> dict[str, Any]:
    """The names the busybox template sees: the flavour's, the spec's and the toolchain's, nothing else of a
    variant. The sysroot and the compiler's header directory stay placeholders, as in the kernel's
    (kernelconfig.fragment_context): filled in when the build runs."""
    return {
        **asdict(flavour),
        "base_config": spec.base_config,
        "cross_prefix": toolchain.cross_prefix,
        "sysroot": "{sysroot}",
        "gcc_include": "{gcc_include}",
        "kconfig": dict(spec.kconfig),
    }


def render_fragment(spec: BusyboxSpec, target: Variant | Flavour, toolchain: Toolchain) -> str:
    """The busybox fragment for a variant (as its flavour: nothing else of it reaches the fragment), with
    {sysroot} and {gcc_include} still placeholders."""
    flavour = target if isinstance(target, Flavour) else Flavour.of(target)
    return render_template(spec.template, template_context(spec, flavour, toolchain))


@dataclass(frozen=True)
class BusyboxBuild:
    """One busybox build: the spec, the flavour it is configured for and the name messages give it (its
    variants), its tree, sysroot and work directory."""

    spec: BusyboxSpec
    flavour: Flavour
    label: str
    toolchain: Toolchain
    tree: Path
    sysroot: Path
    work: Path
    jobs: int
    source_date_epoch: int
    progress: ProgressMode = ProgressMode.AUTO


def build(request: BusyboxBuild, runner: Runner = RUNNER) -> None:
    """Configure (verified), build and collect busybox for the flavour into work/out, each output atomically.

    SOURCE_DATE_EPOCH is set for the config step too: busybox writes its build stamp (the banner's date)
    into include/autoconf.h there.
    """
    name = request.label
    require_sysroot(request.sysroot, f"busybox {name}")
    work, objdir = request.work, request.work / "obj"
    # The sysroot as seen from the object directory (busybox compiles and links from there): the config,
    # like the binary, then names no absolute build path and is the same in every build directory.
    sysroot = Path(os.path.relpath(request.sysroot, objdir))
    fragment = resolve(
        render_fragment(request.spec, request.flavour, request.toolchain), request.toolchain, sysroot, runner
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
    for output_name, source in OUTPUTS.items():
        copy_atomic(objdir / source, work / "out" / output_name, 0o755 if output_name == "busybox" else 0o644)


def applet_links(links_file: Path) -> list[str]:
    """Applet paths (e.g. bin/sh, sbin/poweroff) from busybox.links, relative to the image root."""
    return sorted({line.strip().lstrip("/") for line in links_file.read_text().splitlines() if line.strip()})
