"""busybox for each variant: render its config fragment, verify it after oldconfig, build it static PIE
against the pipeline's musl, and list its applet links."""

from __future__ import annotations

from pathlib import Path

import jinja2

from .configdata import BusyboxSpec, Toolchain, Variant
from .errors import UserError
from .kconfig import apply_fragment, template_environment
from .kconfig_tree import KconfigSource
from .kernel import reproducible_env
from .shell import run_logged
from .sources import copy_atomic
from .toolchain import compiler, gcc_dirs, require_sysroot

OUTPUTS = {"busybox": "busybox", "busybox.links": "busybox.links", "config": ".config"}


def render_fragment(spec: BusyboxSpec, variant: Variant, toolchain: Toolchain, sysroot: Path) -> str:
    """The busybox fragment for `variant`, from the template and the sysroot it builds against."""
    template = template_environment(spec.template.parent).get_template(spec.template.name)
    try:
        return template.render(
            variant=variant.name,
            mmu=variant.mmu,
            cross_prefix=toolchain.cross_prefix,
            sysroot=str(sysroot),
            gcc_include=gcc_dirs(compiler(toolchain))["gcc_include"],
            extra=spec.kconfig,
        )
    except jinja2.TemplateError as exc:
        raise UserError(f"{spec.template}: template error: {exc} (variant {variant.name})") from None


def build(
    spec: BusyboxSpec,
    variant: Variant,
    toolchain: Toolchain,
    tree: Path,
    sysroot: Path,
    work: Path,
    jobs: int,
    epoch: int,
) -> None:
    """Configure (verified), build and collect busybox for `variant` into work/out, each output atomically."""
    require_sysroot(sysroot, f"busybox {variant.name}")
    objdir = work / "obj"
    log = work / "build.log"
    fragment = render_fragment(spec, variant, toolchain, sysroot)
    (work).mkdir(parents=True, exist_ok=True)
    (work / "fragment.config").write_text(fragment)
    make = ["make", "-C", str(tree), f"O={objdir}"]
    # kconfig reads the Config.in files it generates in the objdir first, then the source tree's
    source = KconfigSource((objdir, tree), "Config.in")
    apply_fragment(
        make, objdir, spec.base_config, fragment, log, f"busybox config {variant.name}", ["oldconfig"], source
    )
    build_log = work / "make.log"
    build_log.unlink(missing_ok=True)
    run_logged(
        [*make, f"-j{jobs}", "busybox", "busybox.links"],
        build_log,
        f"busybox build {variant.name}",
        env=reproducible_env(epoch),
    )
    for name, source in OUTPUTS.items():
        copy_atomic(objdir / source, work / "out" / name, 0o755 if name == "busybox" else 0o644)


def applet_links(links_file: Path) -> list[str]:
    """Applet paths (e.g. bin/sh, sbin/poweroff) from busybox.links, relative to the image root."""
    return sorted({line.strip().lstrip("/") for line in links_file.read_text().splitlines() if line.strip()})
