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
from pathlib import Path
from typing import Any

from doit.exceptions import TaskFailed
from doit.tools import config_changed

from . import boot, elfcheck, initramfs, kconfig, kernel, sources, toolchain
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

    def image(self, variant: str, program: str) -> Path:
        return self.root / variant / "initramfs" / f"{program}.cpio"

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
def do_extract(fetched_record: Path, tree: Path, record: Path) -> None:
    fetched = sources.Fetched.read(fetched_record)
    sources.extract(Path(fetched.path), tree)
    sources.write_atomic(
        record,
        json.dumps({"tree": str(tree), "sha256": fetched.sha256, "version": fetched.version}, indent=2) + "\n",
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
def do_program(project: Project, name: str, output: Path) -> None:
    toolchain.build_program(project.programs[name], project.toolchain, output, output.with_suffix(".log"))


@user_errors
def do_initramfs(project: Project, variant: str, program: str, binary: Path, output: Path) -> None:
    elfcheck.check(binary, project.variants[variant].elf_rules, label=f"program {program} ({binary})")
    entries = [*initramfs.base_entries(), initramfs.Entry("init", "file", 0o755, source=binary)]
    initramfs.write(entries, output, project.settings.source_date_epoch)


def _boot_command(project: Project, case: BootCase, interactive: bool) -> list[str]:
    layout = Layout(project)
    return boot.qemu_command(
        project.toolchain,
        project.variants[case.variant],
        layout.kernel_output(case.variant),
        layout.image(case.variant, case.program),
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
def do_run(project: Project, case_name: str) -> None:
    require_tool(project.toolchain.qemu, "qemu-system-misc")
    command = _boot_command(project, project.boots[case_name], True)
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
            "doc": f"unpack {name} into the build directory",
            "actions": [(do_extract, [layout.fetched(name), layout.tree(name), layout.extracted(name)])],
            "file_dep": [layout.fetched(name)],
            "targets": [layout.extracted(name)],
        }


def _kernel_tasks(project: Project, layout: Layout) -> Iterator[Task]:
    user_tree = project.settings.linux_src
    tree = layout.linux_tree()
    tree_dep = [] if user_tree else [layout.extracted("linux")]
    tree_key = _tree_fingerprint(user_tree) if user_tree else ""
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
        if user_tree and not tree_key:
            kernel_task["uptodate"] = [False]
        yield kernel_task


def _userspace_tasks(project: Project, layout: Layout) -> Iterator[Task]:
    compiler = _versions(project)["compiler"]
    for name, program in project.programs.items():
        output = layout.program(name)
        yield {
            "basename": "program",
            "name": name,
            "doc": f"cross-compile {name} ({program.language})",
            "actions": [(do_program, [project, name, output])],
            "file_dep": list(program.sources),
            "targets": [output],
            "uptodate": [config_changed(_key(toolchain.compile_command(program, project.toolchain, output), compiler))],
        }
    images = sorted({(case.variant, case.program) for case in project.boots.values()})
    for variant, program in images:
        output = layout.image(variant, program)
        yield {
            "basename": "initramfs",
            "name": f"{program}-{variant}",
            "doc": f"check and pack {program} as /init for {variant}",
            "actions": [(do_initramfs, [project, variant, program, layout.program(program), output])],
            "file_dep": [layout.program(program)],
            "targets": [output],
            "uptodate": [
                config_changed(
                    _key(
                        project.variants[variant].elf_rules,
                        project.settings.source_date_epoch,
                        "initramfs-v1",
                    )
                )
            ],
        }


def _boot_tasks(project: Project, layout: Layout) -> Iterator[Task]:
    qemu = _versions(project)["qemu"]
    for name, case in project.boots.items():
        command = _boot_command(project, case, False)
        yield {
            "basename": "smoke",
            "name": name,
            "doc": f"boot {case.program} on {case.variant} and judge the console",
            "actions": [(do_smoke, [project, name])],
            "file_dep": [layout.kernel_output(case.variant), layout.image(case.variant, case.program)],
            "targets": [layout.verdict(name)],
            "uptodate": [config_changed(_key(command, qemu, case))],
            "verbosity": 2,
        }
        yield {
            "basename": "console",
            "name": name,
            "doc": f"boot {case.program} on {case.variant} on this terminal",
            "actions": [(do_run, [project, name])],
            "file_dep": [layout.kernel_output(case.variant), layout.image(case.variant, case.program)],
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
            yield {
                "basename": "console",
                "name": variant,
                "doc": f"boot {cases[0]} on this terminal",
                "actions": [(do_run, [project, cases[0]])],
                "file_dep": [
                    layout.kernel_output(variant),
                    layout.image(variant, project.boots[cases[0]].program),
                ],
                "uptodate": [False],
                "verbosity": 2,
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


def _grouped(project: Project) -> dict[str, list[Task]]:
    grouped: dict[str, list[Task]] = {}
    for task in all_tasks(project):
        grouped.setdefault(task["basename"], []).append(task)
    return grouped


def doit_task_functions(project: Project) -> dict[str, Callable[[], Any]]:
    """`task_<basename>` callables for doit's loader, one per kind of task."""
    creators = {}
    for basename, tasks in _grouped(project).items():
        bodies = [{k: v for k, v in task.items() if k != "basename"} for task in tasks]
        if len(bodies) == 1 and "name" not in bodies[0]:

            def create(body: Task = bodies[0]) -> Task:
                return body
        else:

            def create(bodies: list[Task] = bodies) -> Iterator[Task]:
                yield from bodies

        create.__doc__ = {
            "fetch": "download pinned sources",
            "extract": "unpack sources",
            "kconfig": "kernel configs",
            "kernel": "kernel builds",
            "program": "init programs",
            "initramfs": "initramfs images",
            "smoke": "boot smoke cases (cached)",
            "console": "interactive boots",
            "boot": "boot a variant's cases",
            "all": "everything",
        }.get(basename, basename)
        creators[f"task_{basename}"] = create
    return creators
