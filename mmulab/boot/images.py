"""`mmulab boot-images`: boot images built elsewhere (Buildroot's, through buildroot_ext/'s post-image script)
with mmulab's own checks, QEMU command and verdicts, and print the same boot matrix as the pipeline.

Before any boot it proves what Buildroot never checks: every option the kernel (and busybox) fragments asked
for survived in the final .config. Each demo root (a folder per build: init, helpers, files, links) is packed
into a deterministic initramfs by the pipeline's own packer, its ELF programs checked against the variant's
rules first.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from mmulab.boot import judge, qemu, summary
from mmulab.boot.symbolize import Resolver, SymbolTable
from mmulab.build import elfcheck as build_elfcheck
from mmulab.build.initramfs import Entry, base_entries, pack
from mmulab.core.errors import UserError
from mmulab.core.tools import require
from mmulab.kconfig.dotconfig import parse_config, verify
from mmulab.kconfig.tree import KconfigSource, linux_source
from mmulab.project.model import ElfRules, Project

FLAT_MAGIC = b"bFLT"


@dataclass(frozen=True)
class ConfigCheck:
    """A final .config, the fragments it must honour, and the Kconfig tree that explains a dropped option."""

    what: str
    config: Path
    fragments: tuple[Path, ...]
    source: KconfigSource | None = None


def config_problems(check: ConfigCheck) -> list[str]:
    """One line per requested option the final .config does not hold (Buildroot's olddefconfig drops silently)."""
    requested: dict[str, str] = {}
    for fragment in check.fragments:
        requested |= parse_config(fragment.read_text(), str(fragment))
    final = parse_config(check.config.read_text(errors="replace"), str(check.config))
    return [f"{check.what}: {problem}" for problem in verify(requested, final, check.source)]


def tree_entries(root: Path) -> list[Entry]:
    """The initramfs entries of a folder: base directories and console, then its files, folders and links."""
    entries = base_entries()
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        info = path.lstat()
        mode = stat.S_IMODE(info.st_mode)
        if stat.S_ISLNK(info.st_mode):
            entries.append(Entry(name, "symlink", 0o777, target=os.readlink(path)))
        elif stat.S_ISDIR(info.st_mode):
            entries.append(Entry(name, "dir", mode))
        elif stat.S_ISREG(info.st_mode):
            entries.append(Entry(name, "file", mode, source=path))
    return entries


def check_programs(root: Path, rules: ElfRules, label: str) -> tuple[list[str], dict[str, Path]]:
    """Check every executable ELF file against the variant's rules (FLAT programs are the kernel's FLAT
    loader's). The formats found, e.g. ['init: static-pie', 'bin/addrspace-child: flat'], and the ELF files
    by the name the kernel prints for a faulting process (what a fault note resolves against)."""
    found, elves = [], {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file() or not os.access(path, os.X_OK):
            continue
        with path.open("rb") as handle:
            magic = handle.read(4)
        name = path.relative_to(root).as_posix()
        if magic == b"\x7fELF":
            build_elfcheck.check(path, rules, label=f"{name} of {label} ({path})")
            found.append(f"{name}: {rules}")
            elves[path.name] = path
        elif magic == FLAT_MAGIC:
            found.append(f"{name}: flat")
    return found, elves


def boot_images(
    project: Project,
    variant: str,
    kernel: Path,
    roots: Path,
    out: Path,
    checks: tuple[ConfigCheck, ...] = (),
    system_map: Path | None = None,
) -> list[judge.Verdict]:
    """Check the configs, pack each root, boot every case of `variant` the way the pipeline does (trap watch,
    faults named from `system_map` and the root's programs); the verdicts, in matrix order."""
    if variant not in project.variants:
        raise UserError(f"no variant {variant!r} in configs/variants.toml ({', '.join(project.variants)})")
    if not kernel.is_file():
        raise UserError(f"{kernel}: no kernel image")
    problems = [line for check in checks for line in config_problems(check)]
    if problems:
        raise UserError(
            f"{len(problems)} requested option(s) did not survive:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    for check in checks:
        print(f"mmulab: {check.what}: every option of {', '.join(f.name for f in check.fragments)} survived")
    require(project.toolchain.qemu)
    info = project.variants[variant]
    symbols = SymbolTable.load(system_map) if system_map else None
    cases = [case for case in project.boots.values() if case.variant == variant]
    packed: dict[str, tuple[Path, Resolver]] = {}
    verdicts = []
    for case in cases:
        root = roots / case.build
        if not root.is_dir():
            verdicts.append(judge.Verdict.not_run(case, f"not run: {root} missing (its package is not enabled)"))
            continue
        if case.build not in packed:
            formats, programs = check_programs(root, info.elf_rules, case.build)
            image = out / "initramfs" / f"{case.build}.cpio"
            image.parent.mkdir(parents=True, exist_ok=True)
            image.write_bytes(pack(tree_entries(root), project.settings.source_date_epoch))
            packed[case.build] = (image, Resolver(symbols, programs))
            print(f"mmulab: {case.build}: packed {image} ({', '.join(formats) or 'no programs'})")
        image, resolver = packed[case.build]
        boots = out / "boots"
        files = qemu.BootFiles(kernel, image, boots / f"{case.name}.log", boots / f"{case.name}.traps")
        verdict = qemu.boot_case(project.toolchain, info, case, files, resolver)
        verdict.write(boots / f"{case.name}.json")
        print(verdict.summary(), flush=True)
        verdicts.append(verdict)
    summary.write(verdicts, out)
    return verdicts


def kernel_check(config: Path, fragment: Path, tree: Path | None, arch: str) -> ConfigCheck:
    return ConfigCheck("kernel config", config, (fragment,), linux_source(tree, arch) if tree else None)


def busybox_check(config: Path, fragment: Path) -> ConfigCheck:
    return ConfigCheck("busybox config", config, (fragment,), KconfigSource((config.parent,), "Config.in"))
