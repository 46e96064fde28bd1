"""The doit tasks, declared from the project's data; dodo.py only exposes them.

Every stage is keyed by its real inputs (doit file_dep for files, config_changed for everything else),
so a stage reruns exactly when something it consumes changed, and a no-op run starts no make and no QEMU.
"""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from doit.exceptions import TaskFailed
from doit.tools import config_changed

from . import boot, busybox, elfcheck, initramfs, kconfig, kernel, sources, toolchain
from .configdata import BootCase, Project
from .errors import UserError
from .shell import require_tool, tool_version

Task = dict[str, Any]


def user_errors(function: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a UserError into a doit failure carrying just its message."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            result = function(*args, **kwargs)
        except UserError as exc:
            return TaskFailed(str(exc))
        return result if result is not None else True

    return wrapper


class Layout:
    """Paths of every stage's outputs under the build directory."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.root = project.settings.build_dir

    def fetched(self, source: str) -> Path:
        return self.root / "sources" / f"{source}.fetched.json"

    def extracted(self, source: str) -> Path:
        return self.root / "sources" / f"{source}.extracted.json"

    def tree(self, source: str) -> Path:
        return self.root / "src" / source

    def linux_tree(self) -> Path:
        return self.project.settings.linux_src or self.tree("linux")

    def kernel_dir(self, variant: str) -> Path:
        return self.root / variant / "kernel"

    def kernel_output(self, variant: str, name: str = "Image") -> Path:
        return self.kernel_dir(variant) / "out" / name

    def program(self, name: str) -> Path:
        return self.root / "programs" / name / name

    def sysroot(self) -> Path:
        return self.root / "sysroot"

    def sysroot_record(self) -> Path:
        return self.root / "sources" / "sysroot.json"

    def busybox_dir(self, variant: str) -> Path:
        return self.root / "busybox" / variant

    def busybox_output(self, variant: str, name: str = "busybox") -> Path:
        return self.busybox_dir(variant) / "out" / name

    def image(self, variant: str, build: str) -> Path:
        return self.root / variant / "initramfs" / f"{build}.cpio"

    def verdict(self, case: str) -> Path:
        return self.root / "boots" / f"{case}.json"

    def console_log(self, case: str) -> Path:
        return self.root / "boots" / f"{case}.log"


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@functools.cache
def _tool_versions(compiler: str, qemu: str) -> dict[str, str]:
    return {
        "compiler": f"{compiler}: {tool_version([compiler])}",
        "qemu": tool_version([qemu]),
        "make": tool_version(["make"]),
    }


def _versions(project: Project) -> dict[str, str]:
    """Tool versions in cache keys: a new compiler, make or QEMU reruns what it touched."""
    return _tool_versions(toolchain.compiler(project.toolchain), project.toolchain.qemu)


@functools.cache
def _tree_fingerprint(tree: Path) -> str:
    """A user's kernel tree: git HEAD plus a hash of uncommitted changes; not a git tree: always rebuild."""
    try:
        head = subprocess.run(
            ["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        diff = subprocess.run(["git", "-C", str(tree), "diff", "HEAD"], capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return ""
    return f"{head}+{hashlib.sha256(diff).hexdigest()}"


# --- actions (module-level functions: picklable for `doit -n N`) ---


@user_errors
def do_fetch(project: Project, name: str, record: Path) -> None:
    fetched = sources.fetch(project, name)
    fetched.write(record)
    print(f"{name}: {fetched.version} from {fetched.origin} (sha256 {fetched.sha256[:16]}...)")


@user_errors
def do_extract(fetched_record: Path, tree: Path, record: Path, patches: tuple[Path, ...]) -> None:
    fetched = sources.Fetched.read(fetched_record)
    sources.extract(Path(fetched.path), tree, patches=patches)
    sources.write_atomic(
        record,
        json.dumps(
            {
                "tree": str(tree),
                "sha256": fetched.sha256,
                "version": fetched.version,
                "patches": [[p.name, sources.sha256_of(p)] for p in patches],
            },
            indent=2,
        )
        + "\n",
    )


@user_errors
def do_kconfig(project: Project, variant: str, tree: Path, output: Path) -> None:
    if not (tree / "Makefile").is_file():
        raise UserError(f"{tree}: not a kernel source tree (no Makefile); check LINUX_SRC")
    info = project.variants[variant]
    fragment = kconfig.render_fragment(info)
    work = output.parent
    sources.write_atomic(work / "fragment.config", fragment)
    final = kconfig.configure(tree, work / "obj", info, project.toolchain, fragment, work / "config.log")
    sources.write_atomic(output, final)


@user_errors
def do_kernel(project: Project, variant: str, tree: Path) -> None:
    layout = Layout(project)
    work = layout.kernel_dir(variant)
    settings = project.settings
    print(f"kernel {variant}: make -j{settings.jobs} Image (log: {work / 'build.log'})")
    kernel.build(
        tree,
        work / "config",
        work / "obj",
        work / "out",
        project.toolchain,
        settings.jobs,
        settings.source_date_epoch,
        work / "build.log",
        variant,
    )


@user_errors
def do_libc(project: Project, name: str, linux_tree: Path) -> None:
    layout = Layout(project)
    libc = project.toolchain.libcs[name]
    work = layout.root / "libc"
    print(f"libc {name}: kernel headers + {libc.source} into {layout.sysroot()} (log: {work / 'build.log'})")
    toolchain.build_libc(
        libc, project.toolchain, layout.tree(libc.source), linux_tree, work, layout.sysroot(), project.settings.jobs
    )
    record = {"libc": name, "sysroot": str(layout.sysroot()), "digest": sources.tree_digest(layout.sysroot())}
    sources.write_atomic(layout.sysroot_record(), json.dumps(record, indent=2) + "\n")


@user_errors
def do_program(project: Project, name: str, output: Path) -> None:
    layout = Layout(project)
    toolchain.build_program(
        project.programs[name], project.toolchain, output, output.with_suffix(".log"), layout.sysroot()
    )


@user_errors
def do_busybox(project: Project, variant: str) -> None:
    layout = Layout(project)
    spec = project.toolchain.busybox
    assert spec is not None
    work = layout.busybox_dir(variant)
    print(f"busybox {variant}: configure and build (log: {work / 'make.log'})")
    busybox.build(
        spec,
        project.variants[variant],
        project.toolchain,
        layout.tree(spec.source),
        layout.sysroot(),
        work,
        project.settings.jobs,
        project.settings.source_date_epoch,
    )


def image_entries(project: Project, variant: str, build: str) -> list[initramfs.Entry]:
    """Everything packed for `build` on `variant`; every binary is checked against the variant's ELF rules."""
    layout = Layout(project)
    info = project.builds[build]
    rules = project.variants[variant].elf_rules
    entries = initramfs.base_entries()
    binaries = [("init", layout.program(info.init))] if info.init else []
    binaries += [(path, layout.program(program)) for path, program in info.helpers]
    if info.busybox:
        binaries.append(("bin/busybox", layout.busybox_output(variant)))
        for link in busybox.applet_links(layout.busybox_output(variant, "busybox.links")):
            if link != "bin/busybox":
                entries.append(initramfs.Entry(link, "symlink", 0o777, target="/bin/busybox"))
    for path, binary in binaries:
        elfcheck.check(binary, rules, label=f"{path} of {build} ({binary})")
        entries.append(initramfs.Entry(path, "file", 0o755, source=binary))
    for path, source in info.files:
        mode = 0o755 if path == "init" or source.suffix == ".sh" else 0o644
        entries.append(initramfs.Entry(path, "file", mode, source=source))
    return entries


@user_errors
def do_initramfs(project: Project, variant: str, build: str, output: Path) -> None:
    initramfs.write(image_entries(project, variant, build), output, project.settings.source_date_epoch)


def _boot_command(project: Project, case: BootCase, interactive: bool) -> list[str]:
    layout = Layout(project)
    return boot.qemu_command(
        project.toolchain,
        project.variants[case.variant],
        layout.kernel_output(case.variant),
        layout.image(case.variant, case.build),
        case,
        interactive,
    )


@user_errors
def do_smoke(project: Project, case_name: str) -> None:
    layout = Layout(project)
    case = project.boots[case_name]
    require_tool(project.toolchain.qemu, "qemu-system-misc")
    verdict = boot.run_captured(_boot_command(project, case, False), case, layout.console_log(case_name))
    sources.write_atomic(layout.verdict(case_name), json.dumps(verdict.to_dict(), indent=2) + "\n")
    if not verdict.passed:
        raise UserError(verdict.summary())
    print(verdict.summary())


@user_errors
def do_run(project: Project, case_name: str, append: str = "") -> None:
    require_tool(project.toolchain.qemu, "qemu-system-misc")
    case = project.boots[case_name]
    if append:
        case = replace(case, cmdline=f"{case.cmdline or project.variants[case.variant].cmdline} {append}")
    command = _boot_command(project, case, True)
    print("mmulab: interactive boot; leave QEMU with Ctrl-A X\n$ " + " ".join(command), flush=True)
    code = boot.run_interactive(command)
    if code != 0:
        raise UserError(f"QEMU exited with code {code}")


# --- task declarations ---


def _fetch_tasks(project: Project, layout: Layout) -> Iterator[Task]:
    for name, source in project.sources.items():
        pins = [(o.kind, o.url or o.path or o.file, o.sha256) for o in source.origins]
        yield {
            "basename": "fetch",
            "name": name,
            "doc": f"download {name} {source.version} (sha256-checked)",
            "actions": [(do_fetch, [project, name, layout.fetched(name)])],
            "targets": [layout.fetched(name)],
            "uptodate": [config_changed(_key(pins))],
            "clean": True,
        }
        yield {
            "basename": "extract",
            "name": name,
            "doc": f"unpack {name} into the build directory" + (" and patch it" if source.patches else ""),
            "actions": [
                (do_extract, [layout.fetched(name), layout.tree(name), layout.extracted(name), source.patches])
            ],
            "file_dep": [layout.fetched(name), *source.patches],
            "targets": [layout.extracted(name)],
        }


def _linux_dep(project: Project, layout: Layout) -> tuple[list[Path], str]:
    """What a stage built from the Linux tree depends on: the extraction record, or a user tree's fingerprint."""
    user_tree = project.settings.linux_src
    return ([], _tree_fingerprint(user_tree)) if user_tree else ([layout.extracted("linux")], "")


def _kernel_tasks(project: Project, layout: Layout) -> Iterator[Task]:
    tree = layout.linux_tree()
    tree_dep, tree_key = _linux_dep(project, layout)
    versions = _versions(project)
    for name, variant in project.variants.items():
        verified = layout.kernel_dir(name) / "config"
        fragment = kconfig.render_fragment(variant)
        yield {
            "basename": "kconfig",
            "name": name,
            "doc": f"render, merge and verify the {name} kernel config",
            "actions": [(do_kconfig, [project, name, tree, verified])],
            "file_dep": tree_dep,
            "targets": [verified],
            "uptodate": [
                config_changed(_key(fragment, variant.base_config, str(tree), tree_key, versions["compiler"]))
            ],
        }
        kernel_task: Task = {
            "basename": "kernel",
            "name": name,
            "doc": f"build the {name} kernel Image",
            "actions": [(do_kernel, [project, name, tree])],
            "file_dep": [*tree_dep, verified],
            "targets": [layout.kernel_output(name, output) for output in kernel.OUTPUTS],
            "uptodate": [config_changed(_key(str(tree), tree_key, versions, project.settings.source_date_epoch))],
        }
        if project.settings.linux_src and not tree_key:
            kernel_task["uptodate"] = [False]
        yield kernel_task


def _userspace_tasks(project: Project, layout: Layout) -> Iterator[Task]:
    versions = _versions(project)
    tree_dep, tree_key = _linux_dep(project, layout)
    for name, libc in project.toolchain.libcs.items():
        yield {
            "basename": "libc",
            "name": name,
            "doc": f"build {libc.source} against the kernel's headers into the sysroot",
            "actions": [(do_libc, [project, name, layout.linux_tree()])],
            "file_dep": [*tree_dep, layout.extracted(libc.source)],
            "targets": [layout.sysroot_record()],
            "uptodate": [config_changed(_key(libc, tree_key, versions["compiler"], versions["make"]))],
        }
    for name, program in project.programs.items():
        output = layout.program(name)
        language = project.toolchain.languages[program.language]
        yield {
            "basename": "program",
            "name": name,
            "doc": f"cross-compile {name} ({program.language})",
            "actions": [(do_program, [project, name, output])],
            "file_dep": [
                *program.sources,
                *([layout.sysroot_record()] if language.libc else []),
            ],
            "targets": [output],
            "uptodate": [
                config_changed(
                    _key(toolchain.build_commands(program, project.toolchain, output), versions["compiler"])
                ),
                toolchain.headers_unchanged(output),
            ],
        }
    spec = project.toolchain.busybox
    if spec is not None:
        for name, variant in project.variants.items():
            sysroot = layout.sysroot()
            fragment = busybox.render_fragment(spec, variant, project.toolchain, sysroot)
            yield {
                "basename": "busybox",
                "name": name,
                "doc": f"configure (verified) and build busybox for {name}",
                "actions": [(do_busybox, [project, name])],
                "file_dep": [layout.extracted(spec.source), layout.sysroot_record()],
                "targets": [layout.busybox_output(name, output) for output in busybox.OUTPUTS],
                "uptodate": [config_changed(_key(fragment, spec.base_config, versions))],
            }
    images = sorted({(case.variant, case.build) for case in project.boots.values()})
    for variant, build in images:
        output = layout.image(variant, build)
        info = project.builds[build]
        programs = info.programs()
        yield {
            "basename": "initramfs",
            "name": f"{build}-{variant}",
            "doc": f"check and pack {build} for {variant}",
            "actions": [(do_initramfs, [project, variant, build, output])],
            "file_dep": [
                *(layout.program(program) for program in programs),
                *(source for _path, source in info.files),
                *(
                    [layout.busybox_output(variant), layout.busybox_output(variant, "busybox.links")]
                    if info.busybox
                    else []
                ),
            ],
            "targets": [output],
            "uptodate": [
                config_changed(
                    _key(
                        project.variants[variant].elf_rules,
                        project.builds[build],
                        project.settings.source_date_epoch,
                        "initramfs-v1",
                    )
                )
            ],
        }


def _boot_tasks(project: Project, layout: Layout) -> Iterator[Task]:
    qemu = _versions(project)["qemu"]
    for name, case in project.boots.items():
        needs = [layout.kernel_output(case.variant), layout.image(case.variant, case.build)]
        yield {
            "basename": "smoke",
            "name": name,
            "doc": f"boot {case.build} on {case.variant} ({case.qemu_options} QEMU) and judge the console",
            "actions": [(do_smoke, [project, name])],
            "file_dep": needs,
            "targets": [layout.verdict(name)],
            "uptodate": [config_changed(_key(_boot_command(project, case, False), qemu, case))],
            "verbosity": 2,
        }
        yield {
            "basename": "console",
            "name": name,
            "doc": f"boot {case.build} on {case.variant} on this terminal",
            "actions": [(do_run, [project, name])],
            "file_dep": needs,
            "uptodate": [False],
            "verbosity": 2,
        }
    for variant in project.variants:
        cases = [name for name, case in project.boots.items() if case.variant == variant]
        yield {
            "basename": "boot",
            "name": variant,
            "doc": f"build and boot-smoke every {variant} case (cached)",
            "actions": None,
            "task_dep": [f"smoke:{name}" for name in cases],
        }
        if cases:
            first = project.boots[cases[0]]
            yield {
                "basename": "console",
                "name": variant,
                "doc": f"boot {cases[0]} on this terminal",
                "actions": [(do_run, [project, cases[0]])],
                "file_dep": [layout.kernel_output(variant), layout.image(variant, first.build)],
                "uptodate": [False],
                "verbosity": 2,
            }
    spec = project.toolchain.busybox
    for variant in project.variants:
        shells = [
            name
            for name, case in project.boots.items()
            if case.variant == variant and project.builds[case.build].busybox
        ]
        if spec is not None and shells:
            case = project.boots[shells[0]]
            yield {
                "basename": "shell",
                "name": variant,
                "doc": f"boot {variant} to a busybox shell on this terminal; `exit` powers off",
                "actions": [(do_run, [project, shells[0], spec.shell_cmdline])],
                "file_dep": [layout.kernel_output(variant), layout.image(variant, case.build)],
                "uptodate": [False],
                "verbosity": 2,
            }
    for name, demo in project.demos.items():
        yield {
            "basename": "demo",
            "name": name,
            "doc": demo.description or f"every boot of demo {name}",
            "actions": None,
            "task_dep": [f"smoke:{case}" for case in demo.cases],
        }
    yield {
        "basename": "all",
        "doc": "fetch and build everything, then boot every case",
        "actions": None,
        "task_dep": [f"fetch:{name}" for name in project.sources] + [f"boot:{v}" for v in project.variants],
    }


def all_tasks(project: Project) -> Iterator[Task]:
    layout = Layout(project)
    for declare in (_fetch_tasks, _kernel_tasks, _userspace_tasks, _boot_tasks):
        yield from declare(project, layout)


_GROUP_DOCS = {
    "fetch": "download pinned sources",
    "extract": "unpack (and patch) sources",
    "kconfig": "kernel configs",
    "kernel": "kernel builds",
    "libc": "the C library and kernel headers (sysroot)",
    "program": "init programs",
    "initramfs": "initramfs images",
    "smoke": "boot smoke cases (cached)",
    "console": "interactive boots",
    "boot": "boot a variant's cases",
    "demo": "boot a demo's cases",
    "busybox": "busybox builds (verified config)",
    "shell": "interactive busybox shells",
    "all": "everything",
}


def doit_task_functions(project: Project) -> dict[str, Callable[[], Any]]:
    """`task_<basename>` callables for doit's loader, one per kind of task."""
    grouped: dict[str, list[Task]] = {}
    for task in all_tasks(project):
        grouped.setdefault(task.pop("basename"), []).append(task)
    creators = {}
    for basename, bodies in grouped.items():
        if len(bodies) == 1 and "name" not in bodies[0]:

            def create(body: Task = bodies[0]) -> Task:
                return body
        else:

            def create(bodies: list[Task] = bodies) -> Iterator[Task]:
                yield from bodies

        create.__doc__ = _GROUP_DOCS.get(basename, basename)
        creators[f"task_{basename}"] = create
    return creators
