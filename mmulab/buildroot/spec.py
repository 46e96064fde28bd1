"""configs/buildroot.toml as typed records: which demos become Buildroot packages, for which toolchains.

Loaded only by the Buildroot tasks, so a mistake in it never stops the main pipeline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from mmulab.project.model import Project
from mmulab.project.table import Table, load_table

# --- configs/buildroot.toml: what buildroot_ext/ needs beyond the pipeline's data (loaded only by its tasks) ---

BINFMTS = ("elf", "flat")
BUILDROOT_FORMATS = ("static-pie", "flat")


@dataclass(frozen=True)
class BuildrootLanguage:
    """How one language is compiled and linked in a Buildroot package for one binary format (make syntax)."""

    compile: str
    link: str
    format: str
    flat_stacksize: str = ""


@dataclass(frozen=True)
class BuildrootToolchain:
    """The toolchain Buildroot builds for a variant with (mmu) or without (nommu) an MMU."""

    options: tuple[str, ...]
    libc: str
    binfmt: str


@dataclass(frozen=True)
class BuildrootLicense:
    """The demo programs' license as every package declares it (<PKG>_LICENSE, <PKG>_LICENSE_FILES), so that
    Buildroot's legal-info names it and saves its text instead of reporting it unknown."""

    spdx: str  # Buildroot's _LICENSE: SPDX ids, several joined by ", "
    files: tuple[Path, ...]  # the license texts, in the checkout


@dataclass(frozen=True)
class BuildrootSpec:
    source: str
    name: str
    description: str
    defconfig: str
    package: str
    images_dir: str
    target_dir: str
    arch_options: tuple[str, ...]
    common_options: tuple[str, ...]
    toolchains: dict[str, BuildrootToolchain]
    base_configs: dict[str, str]
    busybox_drop: tuple[str, ...]
    languages: dict[str, dict[str, BuildrootLanguage]]
    license: BuildrootLicense

    def toolchain(self, mmu: bool) -> BuildrootToolchain:
        return self.toolchains["mmu" if mmu else "nommu"]

    def defconfig_name(self, variant: str) -> str:
        return self.defconfig.format(variant=variant)

    def package_name(self, demo: str) -> str:
        return self.package.format(demo=re.sub(r"[^a-z0-9]+", "-", demo.lower()).strip("-"))


_BR2_LINE = re.compile(r"(BR2_[A-Za-z0-9_]+=.*|# BR2_[A-Za-z0-9_]+ is not set)")
_SPDX_ID = r"[A-Za-z0-9.+-]+"
_LICENSE = re.compile(rf"{_SPDX_ID}(?:(?:, | AND | OR | WITH ){_SPDX_ID})*")


def _license(table: Table) -> BuildrootLicense:
    """[license]: an SPDX id Buildroot can print (not its "unknown") and license files that exist."""
    if "license" not in table.data:
        raise table.fail("license", 'missing: the demo programs\' license, spdx = "<SPDX id>" and files = [...]')
    entry = table.table("license")
    spdx = entry.get("spdx", str)
    if not _LICENSE.fullmatch(spdx) or spdx.lower() == "unknown":
        raise entry.fail("spdx", f"{spdx!r}: write SPDX license ids (several joined by ', '), e.g. \"MIT\"")
    files = entry.strings("files")
    if not files:
        raise entry.fail("files", 'empty: name the license text(s) in the checkout, e.g. ["initsrc/LICENSE"]')
    for name in files:
        if not entry.path(name).is_file():
            raise entry.fail("files", f"{name}: no such file (paths are relative to the checkout)")
    return BuildrootLicense(spdx, tuple(entry.path(name) for name in files))


def load_buildroot(project: Project) -> BuildrootSpec:
    """configs/buildroot.toml, checked against the project (its source, languages); ConfigError on a mistake."""
    table = load_table(replace(project.settings, config_overlay=None), "buildroot.toml", ())
    spec = table.table("buildroot")
    source = spec.get("source", str)
    if source not in project.external_sources and source not in project.sources:
        raise spec.fail("source", f"{source!r} is not a source in configs/sources.toml")
    options = {}
    for key in ("arch_options", "common_options"):
        options[key] = spec.strings(key, ())
        for line in options[key]:
            if not _BR2_LINE.fullmatch(line):
                raise spec.fail(key, f"{line!r}: write BR2_X=value or '# BR2_X is not set'")
    toolchains = {}
    for kind in ("mmu", "nommu"):
        entry = table.table("toolchains").table(kind)
        lines = entry.strings("options")
        for line in lines:
            if not _BR2_LINE.fullmatch(line):
                raise entry.fail("options", f"{line!r}: write BR2_X=value or '# BR2_X is not set'")
        toolchains[kind] = BuildrootToolchain(lines, entry.get("libc", str), entry.choice("binfmt", BINFMTS))
    languages: dict[str, dict[str, BuildrootLanguage]] = {}
    for name, entry in table.entries("languages"):
        if name not in project.toolchain.languages:
            raise entry.fail("", f"{name!r} is not a language of configs/toolchain.toml")
        languages[name] = {}
        for binfmt in entry.data:
            if binfmt not in BINFMTS:
                raise entry.fail(binfmt, f"{binfmt!r} is not a binary format ({', '.join(BINFMTS)})")
            rule = entry.table(binfmt)
            languages[name][binfmt] = BuildrootLanguage(
                rule.get("compile", str),
                rule.get("link", str),
                rule.choice("format", BUILDROOT_FORMATS),
                rule.get("flat_stacksize", str, ""),
            )
    for language in {build.language for build in project.builds.values() if not build.busybox}:
        for kind, chain in toolchains.items():
            if chain.binfmt not in languages.get(language, {}):
                raise table.fail(
                    "languages", f"no [languages.{language}.{chain.binfmt}] for the {kind} toolchain (demos use it)"
                )
    kernel = table.table("kernel", {})
    base_configs = kernel.table("base_configs", {})
    return BuildrootSpec(
        source,
        spec.get("name", str),
        spec.get("description", str, ""),
        spec.get("defconfig", str),
        spec.get("package", str),
        spec.get("images_dir", str).strip("/"),
        spec.get("target_dir", str).strip("/"),
        options["arch_options"],
        options["common_options"],
        toolchains,
        {name: base_configs.get(name, str) for name in base_configs.data},
        table.table("busybox", {}).strings("drop", ()),
        languages,
        _license(table),
    )
