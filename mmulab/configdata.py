"""The project's data: load and validate configs/*.toml (plus a user's overlay) into typed records.

Every mistake is reported as one line naming the file, the field and what to write instead.
"""

from __future__ import annotations

import math
import re
import tomllib
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from . import elfcheck
from .errors import ConfigError
from .settings import FRAGMENT_PREFIX, PROJECT_ROOT, Settings

ORIGIN_KINDS = ("url", "debian-source", "local-file")
NOASSERTION = "NOASSERTION"  # SPDX's word for a fact the data does not state
# An SPDX license expression of ids (GPL-2.0-only, MIT, LicenseRef-x) joined by AND/OR/WITH, or NOASSERTION.
_SPDX_ID = r"[A-Za-z0-9][A-Za-z0-9.+-]*"
SPDX_EXPRESSION = re.compile(rf"{_SPDX_ID}(?: (?:AND|OR|WITH) {_SPDX_ID})*")
EXPECTS = ("pass", "hang", "panic")
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

    kind: str
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

    def pins(self) -> tuple[KnownVersion, ...]:
        """Every (package version, version, sha256) accepted from this origin as pinned."""
        return self.known or (KnownVersion(self.package_version, self.version, self.sha256),)

    def describe(self) -> str:
        if self.kind == "url":
            return self.url
        if self.kind == "local-file":
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
    elf_rules: str
    kconfig: dict[str, Any]
    fragments: tuple[Path, ...]
    cmdline: str
    qemu: QemuSpec
    console_build: str = ""
    shell_build: str = ""
    # Names the kernel template tests (`{% if "swap" in features %}`): what this kernel is configured for.
    features: tuple[str, ...] = ()


@dataclass(frozen=True)
class Language:
    name: str
    suffixes: tuple[str, ...]
    flags: tuple[str, ...]
    libc: str = ""
    startfiles: tuple[str, ...] = ()
    endfiles: tuple[str, ...] = ()
    kind: str = "compiled"


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
    expect: str
    qemu_args: tuple[str, ...] = ()
    qemu_options: str = "default"
    cmdline: str = ""
    shows: str = ""
    traps: bool = False  # QEMU logs every trap (-d int): a stuck hart ends the boot at once, named


@dataclass(frozen=True)
class Demo:
    name: str
    description: str
    cases: tuple[str, ...]


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

    def source(self, name: str) -> Source:
        """A pinned source by name, whether the pipeline builds it or not."""
        return self.sources.get(name) or self.external_sources[name]

    def all_sources(self) -> dict[str, Source]:
        return {**self.sources, **self.external_sources}


class _Table:
    """A TOML table that remembers where it came from, so errors can name file and field."""

    def __init__(
        self, data: dict[str, Any], file: Path, where: str, base_dir: Path, key_files: dict[str, Path] | None = None
    ) -> None:
        self.data, self.file, self.where, self.base_dir = data, file, where, base_dir
        self.key_files = key_files or {}  # keys whose value came from another file (the overlay's)

    def _file_of(self, key: str) -> Path:
        return self.key_files.get(key.split(".", 1)[0], self.file)

    def _field(self, key: str) -> str:
        if not key:
            return self.where
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{_display(self._file_of(key))}: {self._field(key)}: {problem}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ..., hint: str = "") -> Any:
        if key not in self.data:
            if default is ...:
                raise self.fail(key, f"missing{f' ({hint})' if hint else ''}")
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (typing.get_args(kind) or (kind,))
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in kinds):
            names = getattr(kind, "__name__", None) or str(kind).replace(" | ", " or ")
            raise self.fail(key, f"expected {names}, found {value!r}")
        return value

    def strings(self, key: str, default: Any = ...) -> tuple[str, ...]:
        values = self.get(key, list, default)
        if not all(isinstance(v, str) for v in values):
            raise self.fail(key, "expected a list of strings")
        return tuple(values)

    def table(self, key: str, default: Any = ...) -> _Table:
        origins = {sub: file for sub, (file, _base) in self.data.get(f"__origin__{key}", {}).items()}
        return _Table(self.get(key, dict, default), self._file_of(key), self._field(key), self.base_dir, origins)

    def choice(self, key: str, choices: tuple[str, ...], default: Any = ...) -> str:
        value = self.get(key, str, default)
        if value not in choices:
            raise self.fail(key, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def path(self, value: str) -> Path:
        return (self.base_dir / value).resolve()

    def entries(self, key: str) -> list[tuple[str, _Table]]:
        """The named sub-tables of `key`, each with its own origin kept (overlay entries point elsewhere)."""
        tables = self.get(key, dict, {})
        origins = self.data.get(f"__origin__{key}", {})
        result = []
        for name, value in tables.items():
            file, base_dir = origins.get(name, (self._file_of(key), self.base_dir))
            if not isinstance(value, dict):
                raise ConfigError(f"{_display(file)}: {self._field(key)}.{name}: expected a table")
            result.append((name, _Table(value, file, f"{self._field(key)}.{name}", base_dir)))
        return result


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{_display(path)}: missing (restore it from git, or fix MMULAB_CONFIGS)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{_display(path)}: invalid TOML: {exc}") from None


def _load(settings: Settings, name: str, collections: tuple[str, ...]) -> _Table:
    """Load configs/<name>; the overlay's file of the same name adds or replaces named entries."""
    path = settings.configs_dir / name
    data = _read_toml(path)
    overlay = settings.config_overlay / name if settings.config_overlay else None
    if overlay and overlay.exists():
        extra = _read_toml(overlay)
        replaced = {}  # top-level keys the overlay set whole: errors in them name the overlay
        for key, value in extra.items():
            merge = key in collections or key in data
            if isinstance(value, dict) and isinstance(data.get(key, {}), dict) and merge:
                data[key] = {**data.get(key, {}), **value}
                origins = data.setdefault(f"__origin__{key}", {})
                for entry in value:
                    origins[entry] = (overlay, overlay.parent)
            else:
                data[key] = value
                replaced[key] = overlay
        return _Table(data, path, "", settings.configs_dir.parent, replaced)
    return _Table(data, path, "", settings.configs_dir.parent)


def _sources(table: _Table) -> dict[str, Source]:
    sources = {}
    for name, entry in table.entries("sources"):
        version = entry.get("version", str)
        sha256 = _check_sha256(entry, entry.get("sha256", str))
        filename = entry.get("filename", str)
        hash_source = entry.get("hash_source", str, "unconfirmed")
        origins = []
        raw_origins = entry.get("origins", list, hint="a list of [[sources.NAME.origins]] tables")
        for index, raw in enumerate(raw_origins):
            if not isinstance(raw, dict):
                raise entry.fail(f"origins[{index}]", "expected a table")
            origin = _Table(raw, entry.file, f"{entry.where}.origins[{index}]", entry.base_dir)
            kind = origin.choice("kind", ORIGIN_KINDS)
            required = {"url": ("url",), "local-file": ("path",), "debian-source": ("package", "file")}[kind]
            values = {key: origin.get(key, str) for key in required}
            if kind == "local-file" and not Path(values["path"]).is_absolute():
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
        sources[name] = Source(
            name,
            version,
            sha256,
            filename,
            tuple(origins),
            patches,
            license,
            download_location,
            pipeline,
            absolute_links,
        )
    return sources


def _known_versions(origin: _Table, kind: str, package: str) -> tuple[KnownVersion, ...]:
    """A local-file origin's `known = [{ package_version, version, sha256 }, ...]`, checked field by field."""
    if "known" not in origin.data:
        return ()
    if kind != "local-file":
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
        entry = _Table(raw, origin.file, f"{origin.where}.known[{index}]", origin.base_dir)
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


def _check_sha256(table: _Table, value: str) -> str:
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise table.fail("sha256", f"{value!r} is not a lowercase 64-digit sha256")
    return value


def _toolchain(table: _Table, source_names: set[str]) -> Toolchain:
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
            lang.choice("kind", ("compiled", "busybox"), "compiled"),
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


def _busybox(table: _Table, source_names: set[str], libcs: dict[str, Libc]) -> BusyboxSpec | None:
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


def _variants(table: _Table, settings: Settings) -> dict[str, Variant]:
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
            from .kconfig import parse_config  # a junk line in a fragment is a configuration error, found now

            parse_config(fragment.read_text(errors="replace"), _display(fragment))
        template = settings.configs_dir / "kernel" / entry.get("template", str)
        if not template.is_file():
            raise entry.fail("template", f"{_display(template)}: no such template in configs/kernel/")
        variants[name] = Variant(
            name=name,
            description=entry.get("description", str, ""),
            base_config=entry.get("base_config", str, hint='e.g. base_config = "tinyconfig"'),
            template=template,
            mmu=entry.get("mmu", bool),
            elf_rules=entry.choice("elf_rules", elfcheck.RULES),
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


def _sources_list(entry: _Table, key: str, language: Language | None = None) -> tuple[Path, ...]:
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
    # Pinned sources outside the pipeline's builds and releases (pipeline = false in sources.toml).
    external_sources: dict[str, Source] = field(default_factory=dict)

    def source(self, name: str) -> Source:
        """A pinned source by name, whether the pipeline builds it or not."""
        return self.sources.get(name) or self.external_sources[name]

    def all_sources(self) -> dict[str, Source]:
        return {**self.sources, **self.external_sources}


def _demos(table: _Table, toolchain: Toolchain, variants: dict[str, Variant]) -> _Demos:
    """Expand demos.toml: each demo x build language -> programs and a build; x runs -> boot cases."""
    defaults = table.table("defaults", {})
    option_sets = {"default": ()} | {
        name: table.table("qemu_options").strings(name) for name in table.get("qemu_options", dict, {})
    }
    result = _Demos()
    for demo_name, demo in table.entries("demos"):
        description = demo.get("description", str, "")
        builds = []
        for language, build in demo.entries("builds"):
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
            if toolchain.languages[language].kind == "busybox":
                if toolchain.busybox is None:
                    raise build.fail("", "busybox builds need a [busybox] table in configs/toolchain.toml")
                if len(init_sources) != 1:
                    raise build.fail("init", "a busybox build's init is one script")
                result.builds[build_name] = Build(
                    build_name, demo_name, language, "", (), (("init", init_sources[0]), *files), busybox=True
                )
                builds.append(build_name)
                continue
            init = Program(build_name, language, init_sources)
            helpers = []
            for path, helper_sources in build.get("helpers", dict, {}).items():
                helper_table = _Table({"sources": helper_sources}, build.file, f"{build.where}.helpers", build.base_dir)
                program = f"{build_name}-{PurePosixPath(path).name}"
                result.programs[program] = Program(
                    program, language, _sources_list(helper_table, "sources", toolchain.languages[language])
                )
                helpers.append((path.lstrip("/"), program))
            result.programs[build_name] = init
            result.builds[build_name] = Build(build_name, demo_name, language, build_name, tuple(helpers), tuple(files))
            builds.append(build_name)
        if not builds:
            raise demo.fail("builds", "no build (add e.g. [demos.NAME.builds.asm] with init = [...])")
        cases = []
        for run_name, run in demo.entries("runs"):
            variant = run.get("variant", str, run_name)
            if variant not in variants:
                raise run.fail("variant", f"{variant!r} is not a variant in configs/variants.toml")
            options = run.get("qemu", str, "default")
            if options not in option_sets:
                raise run.fail("qemu", f"{options!r} is not in [qemu_options] ({', '.join(option_sets)})")
            timeout = run.get("timeout", int | float, defaults.get("timeout", int | float, 60))
            if not math.isfinite(timeout) or timeout <= 0:
                raise run.fail("timeout", f"{timeout!r}: must be a positive, finite number of seconds")
            expect = run.choice("expect", EXPECTS, defaults.choice("expect", EXPECTS, "pass"))
            must = run.strings("must", ())
            if expect == "pass" and not must:
                raise run.fail("must", "a boot expected to pass needs at least one line it must print")
            cmdline = run.get("cmdline", str, "")
            if append := run.get("append", str, ""):
                cmdline = f"{cmdline or variants[variant].cmdline} {append}"
            if expect == "panic" and not any("Kernel panic" in line for line in must):
                raise run.fail("must", f"a boot expected to panic must print {PANIC_MARKER!r} (add it to must)")
            must_not = run.strings("must_not", ())
            if "must_not" not in run.data:
                must_not = defaults.strings("must_not", ())
                if expect == "panic":  # the panic is the outcome here, not a failure
                    must_not = tuple(line for line in must_not if line not in PANIC_MARKER)
            elif expect == "panic" and (forbidden := [line for line in must_not if line in PANIC_MARKER]):
                raise run.fail("must_not", f"{forbidden[0]!r} forbids the panic this run expects")
            traps = run.get("traps", bool, defaults.get("traps", bool, False))
            for build_name in builds:
                case = f"{build_name}-{run_name}"
                result.boots[case] = BootCase(
                    name=case,
                    variant=variant,
                    build=build_name,
                    demo=demo_name,
                    run=run_name,
                    must=must,
                    must_not=must_not,
                    timeout=float(timeout),
                    expect=expect,
                    qemu_args=option_sets[options],
                    qemu_options=options,
                    cmdline=cmdline,
                    traps=traps,
                    shows=run.get("shows", str, ""),
                )
                cases.append(case)
        result.demos[demo_name] = Demo(demo_name, description, tuple(cases))
    return result


def _check_interactive_builds(variants: dict[str, Variant], boots: dict[str, BootCase], file: Path) -> None:
    """`console` and `shell` of a variant must name a build that boots on it."""
    for variant in variants.values():
        for key, build in (("console", variant.console_build), ("shell", variant.shell_build)):
            if build and not any(c.variant == variant.name and c.build == build for c in boots.values()):
                raise ConfigError(
                    f"{_display(file)}: variants.{variant.name}.{key}: {build!r} is not a build booted on "
                    f"{variant.name} in demos.toml"
                )


def interactive_case(project: Project, variant: str, build: str) -> BootCase | None:
    """The first boot case of `build` on `variant` (what console:<variant> and shell:<variant> boot)."""
    return next((c for c in project.boots.values() if c.variant == variant and c.build == build), None)


def load_project(settings: Settings | None = None) -> Project:
    """Read and check every configs/*.toml file; raise ConfigError on the first mistake."""
    settings = settings or Settings.from_environment()
    sources_table = _load(settings, "sources.toml", ("sources",))
    sources = _sources(sources_table)
    external_sources = {name: source for name, source in sources.items() if not source.pipeline}
    sources = {name: source for name, source in sources.items() if source.pipeline}
    toolchain = _toolchain(_load(settings, "toolchain.toml", ("languages", "libc")), set(sources))
    variants = _variants(_load(settings, "variants.toml", ("variants",)), settings)
    demos = _demos(_load(settings, "demos.toml", ("demos",)), toolchain, variants)
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
    )


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

    def toolchain(self, mmu: bool) -> BuildrootToolchain:
        return self.toolchains["mmu" if mmu else "nommu"]

    def defconfig_name(self, variant: str) -> str:
        return self.defconfig.format(variant=variant)

    def package_name(self, demo: str) -> str:
        return self.package.format(demo=re.sub(r"[^a-z0-9]+", "-", demo.lower()).strip("-"))


_BR2_LINE = re.compile(r"(BR2_[A-Za-z0-9_]+=.*|# BR2_[A-Za-z0-9_]+ is not set)")


def load_buildroot(project: Project) -> BuildrootSpec:
    """configs/buildroot.toml, checked against the project (its source, languages); ConfigError on a mistake."""
    table = _load(replace(project.settings, config_overlay=None), "buildroot.toml", ())
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
    )
