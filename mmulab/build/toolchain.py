"""Userspace: the pipeline's C library and the init programs, cross-compiled into static-PIE binaries."""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mmulab.build.kernelconfig import make_args
from mmulab.core.errors import UserError
from mmulab.core.fsutil import relative_from
from mmulab.core.progress import Progress, ProgressMode, ProgressSpec
from mmulab.core.settings import PROJECT_ROOT, Settings
from mmulab.core.tools import RUNNER, Runner, require
from mmulab.project.model import Libc, Program, Toolchain

# musl's make prints one "<compiler> ... -c -o obj/..." line per object.
LIBC_PROGRESS = r" -c -o "


def compiler(toolchain: Toolchain) -> str:
    return f"{toolchain.cross_prefix}gcc"


@functools.cache
def gcc_dirs(gcc: str, runner: Runner = RUNNER) -> dict[str, str]:
    """The cross compiler's own header dir (stddef.h...) and library dir (libgcc, crtbeginS.o)."""
    require(gcc)
    include = runner.query([gcc, "-print-file-name=include"])
    return {"gcc_include": include, "gcc_lib": str(Path(runner.query([gcc, "-print-libgcc-file-name"])).parent)}


def resolve(text: str, toolchain: Toolchain, sysroot: Path, runner: Runner = RUNNER) -> str:
    """Fill in the placeholders of flags and fragments: {sysroot}, {gcc_include}, {gcc_lib}."""
    values = {"sysroot": str(sysroot), **gcc_dirs(compiler(toolchain), runner)}
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


def object_name(index: int, source: Path) -> str:
    """Each source's object, named by position: two init.S in different folders must not collide."""
    return f"{index}-{source.stem}.o"


# Inside a program's folder, the names its commands use for what lies elsewhere: `src/<n>` links to the folder
# each source is named from (the checkout, an overlay...), `sysroot` to the C library's sysroot.
SOURCE_LINKS = "src"
SYSROOT_LINK = "sysroot"


def source_roots(settings: Settings) -> tuple[Path, ...]:
    """The folders sources are named from, innermost first: the overlay's, the configs' checkout, this one."""
    roots = [settings.config_overlay, settings.configs_dir.parent, PROJECT_ROOT]
    return tuple(dict.fromkeys(root.resolve() for root in roots if root is not None))


def root_of(source: Path, roots: Sequence[Path]) -> Path:
    """The first of `roots` holding `source` (debug info names the source relative to it), else its own folder."""
    return next((root for root in roots if source.is_relative_to(root)), source.parent)


def source_links(program: Program, roots: Sequence[Path]) -> dict[str, Path]:
    """`src/<n>` -> the folder the program's n-th distinct source root is, in source order."""
    distinct = dict.fromkeys(root_of(source, roots) for source in program.sources)
    return {f"{SOURCE_LINKS}/{index}": root for index, root in enumerate(distinct)}


def build_commands(
    program: Program, toolchain: Toolchain, output: Path, roots: Sequence[Path] = (), resolved: bool = False
) -> list[list[str]]:
    """One compile command per source (into output's objects/ folder, with its header list), then the link, each
    run in output's folder.

    Every path a command names is relative to that folder, through the links of `source_links` and
    `SYSROOT_LINK`: the commands are the same wherever the checkout and the build directory are, so the compile
    cache has no path to rewrite (its base_dir rewriting turned absolute paths relative before the prefix maps
    could match them, and the bytes depended on where the build directory was). The prefix maps name the
    debug info's sources `./<path in their root>`, the C library's headers `/sysroot/...` and the compile
    folder `.`. Separate objects keep the binary reproducible (a one-step build of .S files records random
    temporary names) and let gcc list the headers each source includes (-MMD). Unless `resolved`, the
    placeholders stay (the form used in cache keys).
    """
    language = toolchain.languages[program.language]
    links = source_links(program, roots)
    link_of = {root: name for name, root in links.items()}
    flags = [*language.flags, "-ffile-prefix-map={program_dir}=."]
    flags += [f"-ffile-prefix-map={name}/=./" for name in links]
    if language.libc:
        flags.append(f"-ffile-prefix-map={SYSROOT_LINK}/=/sysroot/")
    commands = []
    for index, source in enumerate(program.sources):
        obj = f"objects/{object_name(index, source)}"
        root = root_of(source, roots)
        named = f"{link_of[root]}/{source.relative_to(root).as_posix()}"
        commands.append([compiler(toolchain), *flags, "-MMD", "-MF", f"{obj}.d", "-c", "-o", obj, named])
    link = [compiler(toolchain), *flags, "-o", output.name, *language.startfiles]
    link += [f"objects/{object_name(i, source)}" for i, source in enumerate(program.sources)]
    commands.append([*link, *language.endfiles])
    if not resolved:
        return commands
    program_dir = str(output.parent.resolve())
    return [
        [resolve(part, toolchain, Path(SYSROOT_LINK)).replace("{program_dir}", program_dir) for part in command]
        for command in commands
    ]


def recorded_headers(output: Path) -> list[Path] | None:
    """The headers the last build of `output` included (from gcc's .d files), or None before any build."""
    objects = output.parent / "objects"
    depfiles = sorted(objects.glob("*.o.d")) if objects.is_dir() else []
    if not depfiles:
        return None
    headers: set[Path] = set()
    for depfile in depfiles:
        words = dependency_words(depfile.read_text())
        headers.update((output.parent / word).resolve() for word in words if word.endswith((".h", ".inc")))
    return sorted(headers)


_DEPENDENCY_WORD = re.compile(r"(?:\\.|[^\s\\])+")


def dependency_words(text: str) -> list[str]:
    """The prerequisites of a gcc dependency file, unescaped (gcc writes `\\ `, `\\#` and `$$` for a space, # and $)."""
    _target, _, prerequisites = text.replace("\\\n", " ").partition(": ")
    return [re.sub(r"\\(.)", r"\1", word).replace("$$", "$") for word in _DEPENDENCY_WORD.findall(prerequisites)]


def _headers_digest(headers: list[Path]) -> str:
    digest = hashlib.sha256()
    for header in headers:
        content = header.read_bytes() if header.is_file() else b"<missing>"
        digest.update(str(header).encode() + b"\0" + hashlib.sha256(content).digest())
    return digest.hexdigest()


def headers_unchanged(output: Path) -> bool:
    """Whether every header the last build of `output` included still has the content it had then.

    Part of the program task's up-to-date check, next to its sources: the header list is only known after
    a build (gcc -MMD), so it is compared with a digest kept beside the objects, not in doit's database.
    """
    headers = recorded_headers(output)
    stamp = output.parent / "objects" / "headers.sha256"
    return headers is not None and stamp.is_file() and stamp.read_text() == _headers_digest(headers)


def _link(link: Path, target: Path) -> None:
    """`link` -> `target`, replacing whatever was there (the checkout may have moved since the last build)."""
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.exists():
        shutil.rmtree(link)
    link.symlink_to(target, target_is_directory=True)


def require_sysroot(sysroot: Path, what: str) -> None:
    """Fail with the task to run when the C library a build links against is not there yet."""
    if not (sysroot / "lib").is_dir():
        raise UserError(f"{what}: no C library in {sysroot} (run `doit libc`)")


def build_program(
    program: Program,
    toolchain: Toolchain,
    output: Path,
    log: Path,
    sysroot: Path,
    roots: Sequence[Path] = (),
    runner: Runner = RUNNER,
) -> None:
    """Compile and link `program`; the binary appears under `output` only when the link succeeded."""
    require(compiler(toolchain))
    if toolchain.languages[program.language].libc:
        require_sysroot(sysroot, f"program {program.name}")
    folder = output.parent
    objects = folder / "objects"
    if objects.exists():
        shutil.rmtree(objects)
    objects.mkdir(parents=True)
    shutil.rmtree(folder / SOURCE_LINKS, ignore_errors=True)
    for name, root in source_links(program, roots).items():
        _link(folder / name, root)
    _link(folder / SYSROOT_LINK, Path(os.path.relpath(sysroot, folder)))
    logged = runner.log(log)
    tmp = output.with_name(f".{output.name}.tmp")
    # gcc records its directory from PWD when PWD names it, else as getcwd() (symlinks resolved): the prefix map
    # names the resolved folder, so PWD is set to it.
    env = {"PWD": str(folder.resolve())}
    try:
        *compiles, link = build_commands(program, toolchain, output, roots, resolved=True)
        for command in compiles:
            logged.run(command, f"program {program.name}: compile {Path(command[-1]).name}", cwd=folder, env=env)
        link[link.index(output.name)] = tmp.name
        logged.run(link, f"program {program.name}: link", cwd=folder, env=env)
        (objects / "headers.sha256").write_text(_headers_digest(recorded_headers(output) or []))
        os.replace(tmp, output)
    except UserError as error:
        raise UserError(_with_real_paths(str(error), source_links(program, roots))) from None
    finally:
        tmp.unlink(missing_ok=True)


def _with_real_paths(text: str, links: dict[str, Path]) -> str:
    """A compiler's message with the sources named where they really are, not through the compile folder's links."""
    for name, root in links.items():
        text = re.sub(rf"(?<![\w/.]){re.escape(name)}/", f"{root}/", text)
    return text


@dataclass(frozen=True)
class LibcBuild:
    """One C library build: its spec, its tree, the kernel tree for headers, where to build and install."""

    libc: Libc
    toolchain: Toolchain
    libc_tree: Path
    linux_tree: Path
    work: Path
    sysroot: Path
    jobs: int
    progress: ProgressMode = ProgressMode.AUTO
    user_tree: bool = False  # the kernel tree is LINUX_SRC


def build_libc(request: LibcBuild, runner: Runner = RUNNER) -> None:
    """Kernel headers (from the kernels' own tree) plus libc, installed into a new sysroot, swapped in whole."""
    libc, toolchain, work, sysroot = request.libc, request.toolchain, request.work, request.sysroot
    linux_tree, libc_tree, jobs, progress = request.linux_tree, request.libc_tree, request.jobs, request.progress
    require(compiler(toolchain))
    work.mkdir(parents=True, exist_ok=True)
    logged = runner.log(work / "build.log")
    headers_obj = work / "headers-obj"
    logged.run([*make_args(linux_tree, headers_obj, toolchain, request.user_tree), "headers"], "kernel headers")
    objdir = work / f"{libc.name}-obj"
    if objdir.exists():
        shutil.rmtree(objdir)
    objdir.mkdir()
    # configure named by its path relative to the object directory: musl's build then names its tree
    # relatively (srcdir), so no compile command holds the build directory's path (another checkout's
    # commands are the same, and ccache rewrites nothing). -MD: every compile lists the headers it read,
    # which lets the compile cache skip the second preprocessor run on a miss (depend mode). Neither
    # changes a byte of the library.
    configure = relative_from(objdir, libc_tree / "configure") or str(libc_tree / "configure")
    env = {"CROSS_COMPILE": toolchain.cross_prefix, "CC": compiler(toolchain), "CFLAGS": "-MD"}
    logged.run(["sh", configure, *libc.configure_args], f"{libc.name}: configure", cwd=objdir, env=env)
    spec = ProgressSpec(f"libc {libc.name}", LIBC_PROGRESS, work / "progress.json", libc.progress_estimate)
    logged.run(["make", f"-j{jobs}"], f"{libc.name}: make", cwd=objdir, progress=Progress.for_terminal(spec, progress))
    sysroot.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=sysroot.parent, prefix=f".{sysroot.name}.", suffix=".tmp"))
    try:
        logged.run(["make", "install", f"DESTDIR={staging}"], f"{libc.name}: install", cwd=objdir)
        shutil.copytree(
            headers_obj / "usr" / "include",
            staging / "include",
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns(".*"),
        )
        if sysroot.exists():
            shutil.rmtree(sysroot)
        os.replace(staging, sysroot)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
