"""The project's data: load and validate configs/*.toml (plus a user's overlay) into typed records.

Every mistake is reported as one line naming the file, the field and what to write instead.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from mmulab.core.errors import ConfigError, EnvError
from mmulab.core.settings import FRAGMENT_PREFIX, SERIES_NAME, SERIES_NAME_ACCEPTS, Settings
from mmulab.kconfig.version import parse_version
from mmulab.project.model import (
    CHART_NAME,
    NOASSERTION,
    PANIC_MARKER,
    SPDX_EXPRESSION,
    BootCase,
    Build,
    BusyboxSpec,
    ChartKind,
    ChartSpec,
    Demo,
    ElfRules,
    Expect,
    KernelFacts,
    KernelSeries,
    KernelSpec,
    KnownVersion,
    Language,
    LanguageKind,
    Libc,
    Origin,
    OriginKind,
    Program,
    Project,
    QemuSpec,
    Source,
    Toolchain,
    Variant,
    upstream_version,
)
from mmulab.project.table import Table, display_path, load_table

E = TypeVar("E", bound=StrEnum)


def _member(table: Table, key: str, kind: type[E], default: Any = ...) -> E:
    """The field `key` as a member of `kind`: parsed here, once; a bad value names the field and every value."""
    return kind(table.choice(key, tuple(kind), default))


def _sources(table: Table) -> dict[str, Source]:
    return {name: _source(name, entry) for name, entry in table.entries("sources")}


def _source(name: str, entry: Table) -> Source:
    """One pinned source (a configs/sources.toml entry, or a kernel series of configs/kernels.toml)."""
    version = entry.get("version", str)
    sha256 = _check_sha256(entry, entry.get("sha256", str))
    filename = entry.get("filename", str)
    hash_source = entry.get("hash_source", str, "unconfirmed")
    origins = []
    raw_origins = entry.get("origins", list, hint="a list of [[sources.NAME.origins]] tables")
    for index, raw in enumerate(raw_origins):
        if not isinstance(raw, dict):
            raise entry.fail(f"origins[{index}]", "expected a table")
        origin = Table(raw, entry.file, f"{entry.where}.origins[{index}]", entry.base_dir)
        kind = _member(origin, "kind", OriginKind)
        required = {
            OriginKind.URL: ("url",),
            OriginKind.LOCAL_FILE: ("path",),
            OriginKind.DEBIAN_SOURCE: ("package", "file"),
        }[kind]
        values = {key: origin.get(key, str) for key in required}
        if kind is OriginKind.LOCAL_FILE and not Path(values["path"]).is_absolute():
            values["path"] = str(origin.path(values["path"]))  # relative to the checkout
        optional = {k: origin.get(k, str, "") for k in ("package", "package_version") if k not in values}
        known = _known_versions(origin, kind, optional.get("package", ""))
        if known:
            optional["package_version"] = known[0].package_version
        origin_sha = known[0].sha256 if known else origin.get("sha256", str, sha256)
        origins.append(
            Origin(
                kind=kind,
                sha256=_check_sha256(origin, origin_sha),
                version=known[0].version if known else origin.get("version", str, version),
                filename=origin.get("filename", str, values.get("file", filename)),
                component=origin.get("component", str, "main"),
                hash_source=origin.get("hash_source", str, hash_source),
                known=known,
                **values,
                **optional,
            )
        )
    if not origins:
        raise entry.fail("origins", "no origin listed (add at least one [[...origins]] table)")
    patches = tuple((entry.file.parent / p).resolve() for p in entry.strings("patches", ()))
    for patch in patches:
        if not patch.is_file():
            raise entry.fail("patches", f"{patch}: no such file")
    license = entry.get("license", str, NOASSERTION)
    if not SPDX_EXPRESSION.fullmatch(license):
        raise entry.fail("license", f"{license!r} is not an SPDX license id (e.g. GPL-2.0-only, MIT)")
    download_location = entry.get("download_location", str, NOASSERTION)
    if download_location != NOASSERTION and not re.fullmatch(r"https?://\S+", download_location):
        raise entry.fail("download_location", f"{download_location!r} is not an http(s) URL (or NOASSERTION)")
    pipeline = entry.get("pipeline", bool, True)
    absolute_links = entry.get("absolute_links", bool, False)
    return Source(
        name, version, sha256, filename, tuple(origins), patches, license, download_location, pipeline, absolute_links
    )


KERNEL_SOURCE = "linux"  # the name the chosen series' source has in the project (fetch:linux, the SBOM's package)


def _kernel_facts(table: Table) -> KernelFacts:
    facts = table.table("facts", {})
    console = []
    for index, raw in enumerate(facts.get("console", list, [])):
        entry = Table(
            raw if isinstance(raw, dict) else {}, facts.file, f"{facts.where}.console[{index}]", facts.base_dir
        )
        console.append((entry.get("case", str), entry.get("line", str)))
    return KernelFacts(facts.strings("kconfig", ()), tuple(console))


def _kernel_series(table: Table) -> tuple[str, dict[str, KernelSeries]]:
    """configs/kernels.toml: the default series' name and every series, in version order."""
    series = {}
    for name, entry in table.entries("series"):
        if not SERIES_NAME.fullmatch(name):
            raise entry.fail("", f"{name!r} is not a series name ({SERIES_NAME_ACCEPTS}, e.g. 6.18)")
        debian = Table(entry.get("debian", dict, {}), entry.file, f"{entry.where}.debian", entry.base_dir)
        source = _source(KERNEL_SOURCE, entry)
        for where, pinned in [
            ("version", source.version),
            *((f"origins: {o.describe()}", o.version) for o in source.origins),
        ]:
            version = parse_version(pinned)
            if version is None or version.series != name:
                raise entry.fail(where, f"{pinned!r} is not a point release of series {name} ({name}.N)")
        series[name] = KernelSeries(name, source, debian.get("package", str, ""), debian.strings("suites", ()))
    if not series:
        raise table.fail("series", 'no kernel series (add a [series."6.12"] table)')
    default = table.get("default", str, hint='the series built when MMULAB_KERNEL is unset, e.g. default = "6.12"')
    if default not in series:
        raise table.fail("default", f"{default!r} is not a series of this file ({', '.join(series)})")
    return default, dict(sorted(series.items(), key=lambda item: item[1].version_key()))


def chosen_series(settings: Settings, default: str, series: dict[str, KernelSeries]) -> KernelSeries:
    """MMULAB_KERNEL's series, else the default; an unknown name is one line naming every known series (exit 2)."""
    name = settings.kernel_series or default
    if name not in series:
        raise EnvError(
            variable="MMULAB_KERNEL",
            value=name,
            problem="no such kernel series in configs/kernels.toml",
            accepts=f"one of {', '.join(series)} (the default is {default})",
        )
    return series[name]


def _known_versions(origin: Table, kind: OriginKind, package: str) -> tuple[KnownVersion, ...]:
    """A local-file origin's `known = [{ package_version, version, sha256 }, ...]`, checked field by field."""
    if "known" not in origin.data:
        return ()
    if kind is not OriginKind.LOCAL_FILE:
        raise origin.fail("known", "only a local-file origin lists known package versions")
    if not package:
        raise origin.fail("package", 'missing (known versions are versions of a Debian package: package = "...")')
    for key in ("sha256", "version", "package_version"):
        if key in origin.data:
            raise origin.fail(key, "give it in each entry of known = [...] instead (both were given)")
    raw_known = origin.get("known", list, hint='known = [{ package_version = "...", sha256 = "..." }]')
    if not raw_known:
        raise origin.fail("known", 'empty (list at least one { package_version = "...", sha256 = "..." })')
    known: list[KnownVersion] = []
    for index, raw in enumerate(raw_known):
        if not isinstance(raw, dict):
            raise origin.fail(f"known[{index}]", 'expected { package_version = "...", sha256 = "..." }')
        entry = Table(raw, origin.file, f"{origin.where}.known[{index}]", origin.base_dir)
        unknown = sorted(set(raw) - {"package_version", "version", "sha256"})
        if unknown:
            raise entry.fail(unknown[0], "unknown field (known entries have package_version, version, sha256)")
        package_version = entry.get("package_version", str, hint=f"the Debian version of {package}")
        if not re.fullmatch(r"[0-9][A-Za-z0-9.+~:-]*", package_version):
            raise entry.fail(
                "package_version", f"{package_version!r} is not a Debian version (e.g. 6.12.117-1~deb12u1)"
            )
        version = entry.get("version", str, upstream_version(package_version))
        digest = _check_sha256(entry, entry.get("sha256", str))
        for previous in known:
            if package_version == previous.package_version:
                raise entry.fail("package_version", f"{package_version!r} is listed twice")
            if digest == previous.sha256:
                raise entry.fail("sha256", f"also the sha256 of {previous.package_version} (each version once)")
        known.append(KnownVersion(package_version, version, digest))
    return tuple(known)


def _check_sha256(table: Table, value: str) -> str:
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise table.fail("sha256", f"{value!r} is not a lowercase 64-digit sha256")
    return value


def _toolchain(table: Table, source_names: set[str]) -> Toolchain:
    chain = table.table("toolchain")
    libcs = {}
    for name, entry in table.entries("libc"):
        source = entry.get("source", str)
        if source not in source_names:
            raise entry.fail("source", f"{source!r} is not a source in configs/sources.toml")
        libcs[name] = Libc(name, source, entry.strings("configure_args", ()), entry.get("progress_estimate", int, 0))
    languages = {}
    for name, lang in table.entries("languages"):
        libc = lang.get("libc", str, "")
        if libc and libc not in libcs:
            raise lang.fail("libc", f"{libc!r} is not a [libc.NAME] table of configs/toolchain.toml")
        languages[name] = Language(
            name,
            lang.strings("suffixes"),
            lang.strings("flags"),
            libc,
            lang.strings("startfiles", ()),
            lang.strings("endfiles", ()),
            _member(lang, "kind", LanguageKind, LanguageKind.COMPILED),
        )
    kernel = table.table("kernel")
    kernel_source = kernel.get("source", str, hint='the entry of configs/sources.toml, e.g. source = "linux"')
    if kernel_source not in source_names:
        raise kernel.fail("source", f"{kernel_source!r} is not a source in configs/sources.toml")
    return Toolchain(
        chain.get("cross_prefix", str),
        chain.get("arch", str),
        chain.get("qemu", str),
        KernelSpec(kernel_source, kernel.get("image", str), kernel.get("progress_estimate", int, 0)),
        languages,
        libcs,
        _busybox(table, source_names, libcs),
    )


def _busybox(table: Table, source_names: set[str], libcs: dict[str, Libc]) -> BusyboxSpec | None:
    if "busybox" not in table.data:
        return None
    spec = table.table("busybox")
    template = (table.file.parent / spec.get("template", str)).resolve()
    if not template.is_file():
        raise spec.fail("template", f"{template}: no such file")
    source = spec.get("source", str)
    if source not in source_names:
        raise spec.fail("source", f"{source!r} is not a source in configs/sources.toml")
    libc = spec.get("libc", str)
    if libc not in libcs:
        raise spec.fail("libc", f"{libc!r} is not a [libc.NAME] table of configs/toolchain.toml")
    return BusyboxSpec(
        source,
        spec.get("base_config", str),
        template,
        libc,
        spec.get("kconfig", dict, {}),
        spec.get("shell_cmdline", str, ""),
        spec.get("path", str, "bin/busybox").lstrip("/"),
        spec.get("progress_estimate", int, 0),
    )


def _variants(table: Table, settings: Settings) -> dict[str, Variant]:
    names = {name for name, _entry in table.entries("variants")}
    for name in settings.user_fragments:
        if name not in names:
            raise ConfigError(
                f"{FRAGMENT_PREFIX}{name.upper()}: no variant {name!r} in configs/variants.toml "
                f"(variants: {', '.join(sorted(names))})"
            )
    variants = {}
    for name, entry in table.entries("variants"):
        qemu = entry.table("qemu")
        kconfig = entry.get("kconfig", dict, {})
        for symbol, value in kconfig.items():
            if not isinstance(value, bool | int | str) or symbol.startswith("CONFIG_"):
                raise entry.fail(f"kconfig.{symbol}", 'write SYMBOL = true/false/number/"string" (no CONFIG_)')
        fragments = [entry.path(p) for p in entry.strings("extra_fragments", ())]
        if name in settings.user_fragments:
            fragments.append(settings.user_fragments[name])
        for fragment in fragments:
            if not fragment.is_file():
                raise entry.fail("extra_fragments", f"{fragment}: no such file (fix the path or the variable)")
            from mmulab.kconfig.dotconfig import (
                parse_config,  # a junk line in a fragment is a configuration error, found now
            )

            parse_config(fragment.read_text(errors="replace"), display_path(fragment))
        template = settings.configs_dir / "kernel" / entry.get("template", str)
        if not template.is_file():
            raise entry.fail("template", f"{display_path(template)}: no such template in configs/kernel/")
        variants[name] = Variant(
            name=name,
            description=entry.get("description", str, ""),
            base_config=entry.get("base_config", str, hint='e.g. base_config = "tinyconfig"'),
            template=template,
            mmu=entry.get("mmu", bool),
            elf_rules=_member(entry, "elf_rules", ElfRules),
            kconfig=kconfig,
            fragments=tuple(fragments),
            cmdline=entry.get("cmdline", str),
            qemu=QemuSpec(
                machine=qemu.get("machine", str),
                bios=qemu.get("bios", str, "default"),
                memory=qemu.get("memory", str, "128M"),
                smp=qemu.get("smp", int, 1),
                extra_args=qemu.strings("extra_args", ()),
            ),
            console_build=entry.get("console", str, ""),
            shell_build=entry.get("shell", str, ""),
            features=entry.strings("features", ()),
        )
    return variants


def _sources_list(entry: Table, key: str, language: Language | None = None) -> tuple[Path, ...]:
    sources = tuple(entry.path(p) for p in entry.strings(key))
    if not sources:
        raise entry.fail(key, "empty (name at least one source file)")
    for source in sources:
        if not source.is_file():
            raise entry.fail(key, f"{source}: no such file")
        if language and source.suffix not in language.suffixes:
            raise entry.fail(
                key, f"{source}: not a source of language {language.name} ({', '.join(language.suffixes)})"
            )
    return sources


@dataclass
class _Demos:
    programs: dict[str, Program] = field(default_factory=dict)
    builds: dict[str, Build] = field(default_factory=dict)
    boots: dict[str, BootCase] = field(default_factory=dict)
    demos: dict[str, Demo] = field(default_factory=dict)


def _demos(table: Table, toolchain: Toolchain, variants: dict[str, Variant]) -> _Demos:
    """Expand demos.toml: each demo x build language -> programs and a build; x runs -> boot cases."""
    defaults = table.table("defaults", {})
    option_sets = {"default": ()} | {
        name: table.table("qemu_options").strings(name) for name in table.get("qemu_options", dict, {})
    }
    result = _Demos()
    for demo_name, demo in table.entries("demos"):
        builds = [_build(result, demo_name, language, build, toolchain) for language, build in demo.entries("builds")]
        if not builds:
            raise demo.fail("builds", "no build (add e.g. [demos.NAME.builds.asm] with init = [...])")
        cases = []
        for run_name, run in demo.entries("runs"):
            run_case = _run_case(run_name, run, defaults, option_sets, variants)
            for build_name in builds:
                case = replace(run_case, name=f"{build_name}-{run_name}", build=build_name, demo=demo_name)
                result.boots[case.name] = case
                cases.append(case.name)
        charts = {name: _chart(name, chart) for name, chart in demo.entries("charts")}
        answers = demo.strings("answers", ())
        result.demos[demo_name] = Demo(demo_name, demo.get("description", str, ""), tuple(cases), charts, answers)
    return result


_CHART_KEYS = ("title", "kind", "x", "y", "log")


def _chart(name: str, chart: Table) -> ChartSpec:
    """One `[demos.NAME.charts.CHART]` table: how the console's `mmulab: data: CHART ...` lines are drawn."""
    if not CHART_NAME.fullmatch(name):
        raise chart.fail("", f"{name!r} is not a chart name (lower case, digits, _ . -; at most 32 characters)")
    unknown = sorted(set(chart.data) - set(_CHART_KEYS))
    if unknown:
        raise chart.fail(unknown[0], f"unknown field (a chart has {', '.join(_CHART_KEYS)})")
    labels = {}
    for key, hint in (
        ("title", 'what the chart shows, in words: title = "free blocks per order"'),
        ("x", 'the x axis label with its unit: x = "MiB allocated"'),
        ("y", 'the y axis label with its unit: y = "free memory (kB)"'),
    ):
        labels[key] = chart.get(key, str, hint=hint).strip()
        if not labels[key]:
            raise chart.fail(key, f"empty ({hint})")
    return ChartSpec(
        name,
        labels["title"],
        _member(chart, "kind", ChartKind),
        labels["x"],
        labels["y"],
        chart.get("log", bool, False),
    )


def _build(result: _Demos, demo_name: str, language: str, build: Table, toolchain: Toolchain) -> str:
    """One `[demos.NAME.builds.LANGUAGE]` table: its build (and its programs) into `result`; the build's name."""
    if language not in toolchain.languages:
        known = ", ".join(toolchain.languages)
        raise build.fail("", f"{language!r} is not a language of configs/toolchain.toml ({known})")
    build_name = f"{demo_name}-{language}"
    init_sources = _sources_list(build, "init", toolchain.languages[language])
    files = []
    for path, source in build.get("files", dict, {}).items():
        source_path = build.path(source) if isinstance(source, str) else None
        if source_path is None or not source_path.is_file():
            raise build.fail(f"files.{path}", f"{source!r}: not an existing file (give one path)")
        files.append((path.lstrip("/"), source_path))
    if toolchain.languages[language].kind is LanguageKind.BUSYBOX:
        if toolchain.busybox is None:
            raise build.fail("", "busybox builds need a [busybox] table in configs/toolchain.toml")
        if len(init_sources) != 1:
            raise build.fail("init", "a busybox build's init is one script")
        result.builds[build_name] = Build(
            build_name, demo_name, language, "", (), (("init", init_sources[0]), *files), busybox=True
        )
        return build_name
    helpers = []
    for path, helper_sources in build.get("helpers", dict, {}).items():
        helper_table = Table({"sources": helper_sources}, build.file, f"{build.where}.helpers", build.base_dir)
        program = f"{build_name}-{PurePosixPath(path).name}"
        result.programs[program] = Program(
            program, language, _sources_list(helper_table, "sources", toolchain.languages[language])
        )
        helpers.append((path.lstrip("/"), program))
    result.programs[build_name] = Program(build_name, language, init_sources)
    result.builds[build_name] = Build(build_name, demo_name, language, build_name, tuple(helpers), tuple(files))
    return build_name


def _run_case(
    run_name: str, run: Table, defaults: Table, option_sets: dict[str, tuple[str, ...]], variants: dict[str, Variant]
) -> BootCase:
    """One `[demos.NAME.runs.RUN]` table, checked: the boot case every build of the demo gets (named later)."""
    variant = run.get("variant", str, run_name)
    if variant not in variants:
        raise run.fail("variant", f"{variant!r} is not a variant in configs/variants.toml")
    options = run.get("qemu", str, "default")
    if options not in option_sets:
        raise run.fail("qemu", f"{options!r} is not in [qemu_options] ({', '.join(option_sets)})")
    timeout = run.get("timeout", int | float, defaults.get("timeout", int | float, 60))
    if not math.isfinite(timeout) or timeout <= 0:
        raise run.fail("timeout", f"{timeout!r}: must be a positive, finite number of seconds")
    expect = _member(run, "expect", Expect, _member(defaults, "expect", Expect, Expect.PASS))
    must = run.strings("must", ())
    if expect is Expect.PASS and not must:
        raise run.fail("must", "a boot expected to pass needs at least one line it must print")
    cmdline = run.get("cmdline", str, "")
    if append := run.get("append", str, ""):
        cmdline = f"{cmdline or variants[variant].cmdline} {append}"
    if expect is Expect.PANIC and not any("Kernel panic" in line for line in must):
        raise run.fail("must", f"a boot expected to panic must print {PANIC_MARKER!r} (add it to must)")
    must_not = run.strings("must_not", ())
    if "must_not" not in run.data:
        must_not = defaults.strings("must_not", ())
        if expect is Expect.PANIC:  # the panic is the outcome here, not a failure
            must_not = tuple(line for line in must_not if line not in PANIC_MARKER)
    elif expect is Expect.PANIC and (forbidden := [line for line in must_not if line in PANIC_MARKER]):
        raise run.fail("must_not", f"{forbidden[0]!r} forbids the panic this run expects")
    return BootCase(
        name=run_name,
        variant=variant,
        build="",
        demo="",
        run=run_name,
        must=must,
        must_not=must_not,
        timeout=float(timeout),
        expect=expect,
        qemu_args=option_sets[options],
        qemu_options=options,
        cmdline=cmdline,
        traps=run.get("traps", bool, defaults.get("traps", bool, False)),
        shows=run.get("shows", str, ""),
        reboot_before_kernel=run.get("reboot_before_kernel", str, ""),
    )


def _check_interactive_builds(variants: dict[str, Variant], boots: dict[str, BootCase], file: Path) -> None:
    """`console` and `shell` of a variant must name a build that boots on it."""
    for variant in variants.values():
        for key, build in (("console", variant.console_build), ("shell", variant.shell_build)):
            if build and not any(c.variant == variant.name and c.build == build for c in boots.values()):
                raise ConfigError(
                    f"{display_path(file)}: variants.{variant.name}.{key}: {build!r} is not a build booted on "
                    f"{variant.name} in demos.toml"
                )


def load_project(settings: Settings | None = None) -> Project:
    """Read and check every configs/*.toml file; raise ConfigError on the first mistake."""
    settings = settings or Settings.from_environment()
    sources_table = load_table(settings, "sources.toml", ("sources",))
    sources = _sources(sources_table)
    if KERNEL_SOURCE in sources:
        raise sources_table.fail(f"sources.{KERNEL_SOURCE}", "the kernel is pinned per series in configs/kernels.toml")
    kernels_table = load_table(settings, "kernels.toml", ("series",))
    default_series, kernel_series = _kernel_series(kernels_table)
    series = chosen_series(settings, default_series, kernel_series)
    sources = {KERNEL_SOURCE: series.source, **sources}
    external_sources = {name: source for name, source in sources.items() if not source.pipeline}
    sources = {name: source for name, source in sources.items() if source.pipeline}
    toolchain = _toolchain(load_table(settings, "toolchain.toml", ("languages", "libc")), set(sources))
    variants = _variants(load_table(settings, "variants.toml", ("variants",)), settings)
    demos = _demos(load_table(settings, "demos.toml", ("demos",)), toolchain, variants)
    _check_interactive_builds(variants, demos.boots, settings.configs_dir / "variants.toml")
    mirrors = settings.mirrors + sources_table.table("mirrors", {}).strings("urls", ())
    return Project(
        settings,
        mirrors,
        sources,
        toolchain,
        variants,
        demos.programs,
        demos.builds,
        demos.boots,
        demos.demos,
        external_sources,
        series.name,
        kernel_series,
        _kernel_facts(kernels_table),
    )
