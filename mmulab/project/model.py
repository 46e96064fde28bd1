"""The project's typed records: frozen values read from configs/*.toml, shared by every later stage."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from mmulab.core.settings import Settings
from mmulab.kconfig.version import KernelVersion, parse_version


class OriginKind(StrEnum):
    """Where an origin's bytes come from (sources.toml `kind`)."""

    URL = "url"
    DEBIAN_SOURCE = "debian-source"
    LOCAL_FILE = "local-file"


class Expect(StrEnum):
    """What a boot case expects its boot to do (demos.toml `expect`): one of the judge's Outcome values."""

    PASS = "pass"
    HANG = "hang"
    PANIC = "panic"


class LanguageKind(StrEnum):
    """How a language's builds are made (toolchain.toml `kind`): compiled programs, or a script run by busybox."""

    COMPILED = "compiled"
    BUSYBOX = "busybox"


class ElfRules(StrEnum):
    """What every packed binary must be for a variant's kernel to load it (variants.toml `elf_rules`).

    NOMMU's FDPIC loader takes static PIE only; an MMU kernel also loads a plain static (ET_EXEC) binary."""

    STATIC_PIE = "static-pie"
    STATIC = "static"


NOASSERTION = "NOASSERTION"  # SPDX's word for a fact the data does not state
# An SPDX license expression of ids (GPL-2.0-only, MIT, LicenseRef-x) joined by AND/OR/WITH, or NOASSERTION.
_SPDX_ID = r"[A-Za-z0-9][A-Za-z0-9.+-]*"
SPDX_EXPRESSION = re.compile(rf"{_SPDX_ID}(?: (?:AND|OR|WITH) {_SPDX_ID})*")
# What a boot expected to panic must print, and what is then no longer forbidden by the defaults' must_not.
PANIC_MARKER = "Kernel panic - not syncing"


@dataclass(frozen=True)
class KnownVersion:
    """One version of a local-file origin's Debian package whose file's sha256 is pinned."""

    package_version: str
    version: str
    sha256: str


def upstream_version(package_version: str) -> str:
    """The upstream part of a Debian version: 6.12.118 from 1:6.12.118-1~deb12u1."""
    version = package_version.split(":", 1)[1] if re.match(r"\d+:", package_version) else package_version
    return version.rsplit("-", 1)[0]


@dataclass(frozen=True)
class Origin:
    """One place a source file can come from, with the version and sha256 of the bytes found there.

    A local-file origin lists every known version of its package (`known`; the first one also fills
    sha256/version/package_version); any of them is accepted as pinned.
    """

    kind: OriginKind
    sha256: str
    version: str
    filename: str
    url: str = ""
    path: str = ""
    package: str = ""
    package_version: str = ""
    file: str = ""
    component: str = "main"
    hash_source: str = ""
    known: tuple[KnownVersion, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", OriginKind(self.kind))  # a member, also when built from a string

    def pins(self) -> tuple[KnownVersion, ...]:
        """Every (package version, version, sha256) accepted from this origin as pinned."""
        return self.known or (KnownVersion(self.package_version, self.version, self.sha256),)

    def describe(self) -> str:
        if self.kind is OriginKind.URL:
            return self.url
        if self.kind is OriginKind.LOCAL_FILE:
            return f"{self.path} (Debian package {self.package} {self.package_version})".strip()
        return f"Debian source package {self.package}: {self.file}"


@dataclass(frozen=True)
class Source:
    name: str
    version: str
    sha256: str
    filename: str
    origins: tuple[Origin, ...]
    patches: tuple[Path, ...] = ()
    license: str = NOASSERTION  # SPDX license expression
    download_location: str = NOASSERTION  # the upstream URL (SPDX downloadLocation)
    # False for a source the pipeline does not build (Buildroot, for buildroot_ext/): not fetched by `all`,
    # not in a release; only the tasks that use it fetch and extract it.
    pipeline: bool = True
    # Keep symbolic links to absolute paths when extracting (a root file system skeleton's); never followed.
    absolute_links: bool = False


@dataclass(frozen=True)
class KernelSeries:
    """One kernel series of configs/kernels.toml: its name (MMULAB_KERNEL's value, e.g. "6.18"), the pinned point
    release (a Source like any other), and where `mmulab pins` looks for newer ones in Debian's archive."""

    name: str
    source: Source
    debian_package: str = ""
    debian_suites: tuple[str, ...] = ()

    def version_key(self) -> tuple[int, ...]:
        """The series' name as numbers, for ordering (6.1 < 6.12 < 6.18 < 7.1)."""
        return tuple(int(part) if part.isdigit() else 0 for part in self.name.split("."))


@dataclass(frozen=True)
class KernelFacts:
    """What docs/kernel-versions.md reads of each series' build (configs/kernels.toml [facts]): Kconfig symbols, and
    console lines as (case, a text the line holds)."""

    kconfig: tuple[str, ...] = ()
    console: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class QemuSpec:
    machine: str
    bios: str
    memory: str
    smp: int
    extra_args: tuple[str, ...]


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    base_config: str
    template: Path
    mmu: bool
    elf_rules: ElfRules
    kconfig: dict[str, Any]
    fragments: tuple[Path, ...]
    cmdline: str
    qemu: QemuSpec
    console_build: str = ""
    shell_build: str = ""
    # Names the kernel template tests (`{% if "swap" in features %}`): what this kernel is configured for.
    features: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "elf_rules", ElfRules(self.elf_rules))


@dataclass(frozen=True)
class Language:
    name: str
    suffixes: tuple[str, ...]
    flags: tuple[str, ...]
    libc: str = ""
    startfiles: tuple[str, ...] = ()
    endfiles: tuple[str, ...] = ()
    kind: LanguageKind = LanguageKind.COMPILED

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", LanguageKind(self.kind))


@dataclass(frozen=True)
class Libc:
    name: str
    source: str
    configure_args: tuple[str, ...]
    progress_estimate: int = 0


@dataclass(frozen=True)
class KernelSpec:
    """What the kernels build from and what they produce: the source entry and the image QEMU boots."""

    source: str
    image: str
    progress_estimate: int = 0


@dataclass(frozen=True)
class BusyboxSpec:
    """How busybox is configured and built for every variant."""

    source: str
    base_config: str
    template: Path
    libc: str
    kconfig: dict[str, Any]
    shell_cmdline: str
    path: str = "bin/busybox"
    progress_estimate: int = 0


@dataclass(frozen=True)
class Toolchain:
    cross_prefix: str
    arch: str
    qemu: str
    kernel: KernelSpec
    languages: dict[str, Language]
    libcs: dict[str, Libc] = field(default_factory=dict)
    busybox: BusyboxSpec | None = None


@dataclass(frozen=True)
class Program:
    """One binary: compiled from `sources` in `language`."""

    name: str
    language: str
    sources: tuple[Path, ...]


@dataclass(frozen=True)
class Build:
    """One implementation of a demo: the init program and the helper programs packed beside it."""

    name: str
    demo: str
    language: str
    init: str
    helpers: tuple[tuple[str, str], ...] = ()
    files: tuple[tuple[str, Path], ...] = ()
    busybox: bool = False

    def programs(self) -> list[str]:
        """The compiled programs packed: the init (unless a script is) and the helpers."""
        return [*([self.init] if self.init else []), *(program for _path, program in self.helpers)]


@dataclass(frozen=True)
class BootCase:
    """One cell of the boot matrix: a build booted on a variant with some QEMU options, and what must show."""

    name: str
    variant: str
    build: str
    demo: str
    run: str
    must: tuple[str, ...]
    must_not: tuple[str, ...]
    timeout: float
    expect: Expect
    qemu_args: tuple[str, ...] = ()
    qemu_options: str = "default"
    cmdline: str = ""
    shows: str = ""
    traps: bool = False  # QEMU logs every trap (-d int): a stuck hart ends the boot at once, named
    # Why a boot that hangs before the kernel writes its first line is booted once more (empty: never). For a
    # fault below the kernel, in the firmware, that the run names; the verdict says it happened.
    reboot_before_kernel: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "expect", Expect(self.expect))


# A chart's name and a series' name, in configs/demos.toml and in a console's `mmulab: data:` lines alike.
CHART_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")


class ChartKind(StrEnum):
    """How a chart draws its series (demos.toml `kind`): see docs/writing-demos.md."""

    LINE = "line"  # numeric x, one line per series
    BARS = "bars"  # label or number x, one bar per series side by side
    RANGES = "ranges"  # x = start address, y = end address; series = <process>.<region>
    FIELDS = "fields"  # series = a mode (sv57), x = field label in print order, y = the field's value


@dataclass(frozen=True)
class ChartSpec:
    """One `[demos.<demo>.charts.<chart>]` declaration: how the data lines of that chart are drawn."""

    name: str
    title: str
    kind: ChartKind
    x: str  # axis label with its unit
    y: str  # axis label with its unit
    log: bool = False  # log scale on the value axis

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ChartKind(self.kind))


@dataclass(frozen=True)
class Demo:
    name: str
    description: str
    cases: tuple[str, ...]
    charts: dict[str, ChartSpec] = field(default_factory=dict)  # the charts its programs print, by name
    answers: tuple[str, ...] = ()  # the lecture's questions its verdicts answer


@dataclass(frozen=True)
class Project:
    settings: Settings
    mirrors: tuple[str, ...]
    sources: dict[str, Source]
    toolchain: Toolchain
    variants: dict[str, Variant]
    programs: dict[str, Program]
    builds: dict[str, Build] = field(default_factory=dict)
    boots: dict[str, BootCase] = field(default_factory=dict)
    demos: dict[str, Demo] = field(default_factory=dict)
    # Pinned sources outside the pipeline's builds and releases (pipeline = false in sources.toml).
    external_sources: dict[str, Source] = field(default_factory=dict)
    # The kernel series this project builds (MMULAB_KERNEL, else configs/kernels.toml's default): its pinned source
    # is sources[toolchain.kernel.source]. Every series known, in version order, for `doit matrix` and `mmulab pins`.
    series: str = ""
    kernel_series: dict[str, KernelSeries] = field(default_factory=dict)
    kernel_facts: KernelFacts = field(default_factory=KernelFacts)

    def source(self, name: str) -> Source:
        """A pinned source by name, whether the pipeline builds it or not."""
        return self.sources.get(name) or self.external_sources[name]

    def all_sources(self) -> dict[str, Source]:
        return {**self.sources, **self.external_sources}

    def pinned_linux_version(self) -> KernelVersion:
        """The kernel version this project's series pins (its first origin's): what a fragment is rendered for when
        no tree is at hand (the Buildroot tree, tests). A build renders for the tree's own Makefile version."""
        version = parse_version(self.source(self.toolchain.kernel.source).version)
        assert version is not None, "the loader checks every series' versions"
        return version

    def build_root(self) -> Path:
        """This project's folder of the build directory: its kernel series' (or the user's tree's)."""
        from mmulab.core.paths import series_root

        return series_root(self.settings.build_dir, self.series, self.settings.linux_src is not None)


def interactive_case(project: Project, variant: str, build: str) -> BootCase | None:
    """The first boot case of `build` on `variant` (what console:<variant> and shell:<variant> boot)."""
    return next((c for c in project.boots.values() if c.variant == variant and c.build == build), None)


def with_cmdline(project: Project, case: BootCase, append: str) -> BootCase:
    """`case` with `append` at the end of its kernel command line (a shell's init: shell:<variant>, the lab)."""
    if not append:
        return case
    return replace(case, cmdline=f"{case.cmdline or project.variants[case.variant].cmdline} {append}")
