"""The doit tasks, declared from the project's data; dodo.py only exposes them.

Declaring does no work: every stage is keyed by its real inputs through `uptodate` checks that compute
them when doit asks (rendered fragments, tool versions, commands), and by doit file_dep for files. A
stage reruns exactly when something it consumes changed; a no-op run starts no make and no QEMU.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmulab.build import busybox, kernel
from mmulab.build.download import Fetched
from mmulab.build.extract import Extracted
from mmulab.core.paths import Layout
from mmulab.core.tools import ToolVersions
from mmulab.pipeline import actions, kernel_versions, matrix
from mmulab.pipeline.actions import layout_of
from mmulab.pipeline.uptodate import Check, InputsUnchanged, RecordedPathExists
from mmulab.project.model import Project, interactive_case

Task = dict[str, Any]
# Bump when what a stage produces changes for the same inputs (a new image layout, say).
INITRAMFS_FORMAT = "initramfs-v1"


# --- inputs: computed when doit checks a task, never at declaration ---


@functools.cache
def _tool_versions(memo: Path) -> ToolVersions:
    return ToolVersions(memo)


def versions(project: Project, *commands: str) -> list[str]:
    """Versions of the tools a stage runs: a new compiler, make or QEMU reruns what it touched."""
    known = _tool_versions(layout_of(project).tool_versions())
    return [known.version(command) for command in commands]


def _compiler(project: Project) -> str:
    from mmulab.build.toolchain import compiler

    return compiler(project.toolchain)


@functools.cache
def _user_tree_fingerprint(tree: Path) -> str:
    from mmulab.build.extract import tree_fingerprint

    return tree_fingerprint(tree)


def _kernel_tree_inputs(project: Project) -> list[str]:
    tree = actions.kernel_tree(project)
    user_tree = project.settings.linux_src
    return [str(tree), _user_tree_fingerprint(user_tree) if user_tree else ""]


def user_tree_settled(project: Project) -> bool:
    """False for a LINUX_SRC that is not a git tree: it cannot be fingerprinted, so make runs every time."""
    user_tree = project.settings.linux_src
    return not user_tree or bool(_user_tree_fingerprint(user_tree))


def fetch_inputs(project: Project, name: str) -> Any:
    return [(o.kind, o.url or o.path or o.file, o.sha256) for o in project.source(name).origins]


def extracted_tree_current(project: Project, name: str) -> bool:
    """The extraction record itself says what the tree was made from: the archive's sha256 and each patch's.
    Compared with the fetch record and the patches, not with doit's memory, so neither a refetch from the
    download cache nor a lost doit database re-extracts (and so rebuilds) a kernel tree."""
    from mmulab.core.errors import UserError
    from mmulab.core.fsutil import sha256_of

    layout = layout_of(project)
    try:
        extracted, fetched = Extracted.read(layout.extracted(name)), Fetched.read(layout.fetched(name))
    except UserError:
        return False
    patches = tuple((p.name, sha256_of(p)) for p in project.source(name).patches)
    return Path(extracted.tree).is_dir() and (extracted.sha256, extracted.patches) == (fetched.sha256, patches)


def kconfig_inputs(project: Project, variant: str) -> Any:
    from mmulab.build.kernelconfig import fragment_inputs
    from mmulab.core.errors import ConfigError
    from mmulab.kconfig.version import tree_version

    info = project.variants[variant]
    try:  # the fragment is rendered for the tree's own version: part of the key
        version = tree_version(actions.kernel_tree(project))
    except ConfigError:  # no tree yet: the stage runs anyway (and then says what is wrong with the tree)
        version = None
    fragment = fragment_inputs(info, project.toolchain, version)
    return [
        fragment,
        info.base_config,
        project.toolchain.arch,
        _kernel_tree_inputs(project),
        versions(project, _compiler(project)),
    ]


def kernel_inputs(project: Project, variant: str) -> Any:
    return [
        _kernel_tree_inputs(project),
        project.toolchain.arch,
        project.toolchain.kernel.image,
        versions(project, _compiler(project), "make"),
        kernel.reproducible_env(project.settings.source_date_epoch),
    ]


def libc_inputs(project: Project, name: str) -> Any:
    libc = project.toolchain.libcs[name]
    return [
        [libc.name, libc.source, libc.configure_args],
        project.toolchain.arch,
        _kernel_tree_inputs(project),
        versions(project, _compiler(project), "make"),
    ]


def program_inputs(project: Project, name: str) -> Any:
    from mmulab.build.toolchain import build_commands, source_roots

    program = project.programs[name]
    commands = build_commands(
        program, project.toolchain, layout_of(project).program(name), source_roots(project.settings)
    )
    return [commands, versions(project, _compiler(project))]


def headers_unchanged(project: Project, name: str) -> bool:
    from mmulab.build.toolchain import headers_unchanged

    return headers_unchanged(layout_of(project).program(name))


def busybox_inputs(project: Project, variant: str) -> Any:
    """The inputs of the busybox build `variant` takes: the same for every variant of its flavour."""
    from mmulab.build.kernelconfig import template_inputs

    spec = project.toolchain.busybox
    assert spec is not None
    context = busybox.template_context(spec, busybox.Flavour.of(project.variants[variant]), project.toolchain)
    fragment = template_inputs(spec.template, context)
    return [
        fragment,
        spec.base_config,
        spec.path,
        versions(project, _compiler(project), "make"),
        kernel.reproducible_env(project.settings.source_date_epoch),
    ]


def initramfs_inputs(project: Project, variant: str, build: str) -> Any:
    spec = project.toolchain.busybox
    return [
        project.variants[variant].elf_rules,
        project.builds[build],
        spec.path if spec and project.builds[build].busybox else "",
        project.settings.source_date_epoch,
        INITRAMFS_FORMAT,
    ]


def smoke_inputs(project: Project, case_name: str) -> Any:
    case = project.boots[case_name]
    return [actions.boot_command(project, case, False), versions(project, project.toolchain.qemu), case]


def _unchanged(inputs: Callable[..., Any], *args: Any) -> InputsUnchanged:
    return InputsUnchanged(functools.partial(inputs, *args))


# --- task declarations ---


def _text_option(name: str, long: str, help: str) -> dict[str, Any]:
    """A command task's `--long TEXT` option (default ""), given to its action as `name`."""
    return {"name": name, "long": long, "type": str, "default": "", "help": help}


def _group(basename: str, doc: str) -> Task:
    """A task group's doc, doit's own way: an entry named None, ahead of the group's sub-tasks (doit makes the
    group task from it and adds the sub-tasks to it). `all_tasks` leaves it out when the group has none."""
    return {"basename": basename, "name": None, "doc": doc}


def is_group(task: Task) -> bool:
    """Whether a declaration is a group's own entry (see `_group`), not a task that runs."""
    return "name" in task and task["name"] is None


def _source_tasks(project: Project, layout: Layout) -> Iterator[Task]:
    yield _group("fetch", "download pinned sources")
    yield _group("extract", "unpack (and patch) sources")
    for name, source in project.all_sources().items():
        yield {
            "basename": "fetch",
            "name": name,
            "doc": f"download {name} {source.version} (sha256-checked)",
            "actions": [(actions.fetch, [project, name])],
            "targets": [layout.fetched(name)],
            "uptodate": [
                _unchanged(fetch_inputs, project, name),
                RecordedPathExists(layout.fetched(name), Fetched, "path"),
            ],
            "clean": True,
        }
        yield {
            "basename": "extract",
            "name": name,
            "doc": f"unpack {name} into the build directory" + (" and patch it" if source.patches else ""),
            "actions": [(actions.extract, [project, name])],
            "task_dep": [f"fetch:{name}"],
            "file_dep": list(source.patches),
            "targets": [layout.extracted(name)],
            "uptodate": [Check(extracted_tree_current, project, name)],
        }


def _kernel_dep(project: Project, layout: Layout) -> list[Path]:
    """The pipeline's extracted kernel tree is a file dependency; a user's tree is keyed by its fingerprint."""
    return [] if project.settings.linux_src else [layout.extracted(project.toolchain.kernel.source)]


def _kernel_tasks(project: Project, layout: Layout) -> Iterator[Task]:
    yield _group("kconfig", "kernel configs")
    yield _group("kernel", "kernel builds")
    tree_dep = _kernel_dep(project, layout)
    for name in project.variants:
        verified = layout.kernel_dir(name) / "config"
        yield {
            "basename": "kconfig",
            "name": name,
            "doc": f"render, merge and verify the {name} kernel config",
            "actions": [(actions.configure_kernel, [project, name])],
            "file_dep": tree_dep,
            "targets": [verified],
            "uptodate": [_unchanged(kconfig_inputs, project, name)],
        }
        yield {
            "basename": "kernel",
            "name": name,
            "doc": f"build the {name} kernel {project.toolchain.kernel.image}",
            "actions": [(actions.build_kernel, [project, name])],
            "file_dep": [*tree_dep, verified],
            "targets": [layout.kernel_output(name, output) for output in kernel.outputs(project.toolchain)],
            "uptodate": [
                _unchanged(kernel_inputs, project, name),
                Check(user_tree_settled, project),
            ],
        }


def _busybox_tasks(project: Project, layout: Layout) -> Iterator[Task]:
    """busybox:<key>, one build per flavour (see build.busybox), and busybox:<variant> naming the one each
    variant takes: no action of its own, up to date while that build's outputs are the ones it last saw."""
    spec = project.toolchain.busybox
    if spec is None:
        return
    builds = busybox.shared_builds(project.variants)
    for key, shared in builds.items():
        yield {
            "basename": "busybox",
            "name": key,
            "doc": f"configure (verified) and build busybox for {', '.join(shared.variants)}",
            "actions": [(actions.build_busybox, [project, key])],
            "file_dep": [layout.extracted(spec.source), layout.sysroot_record()],
            "targets": [layout.busybox_output(key, output) for output in busybox.OUTPUTS],
            "uptodate": [_unchanged(busybox_inputs, project, shared.variants[0])],
        }
    for name, variant in project.variants.items():
        key = busybox.Flavour.of(variant).key
        others = [other for other in builds[key].variants if other != name]
        yield {
            "basename": "busybox",
            "name": name,
            "doc": f"busybox for {name}: the build busybox:{key}"
            + (f", shared with {', '.join(others)}" if others else ""),
            "actions": None,
            "task_dep": [f"busybox:{key}"],
            "file_dep": [layout.busybox_output(key, output) for output in busybox.OUTPUTS],
        }


def _userspace_tasks(project: Project, layout: Layout) -> Iterator[Task]:
    yield _group("libc", "the C library and kernel headers (sysroot)")
    yield _group("program", "init programs")
    yield _group("busybox", "busybox builds (verified config)")
    yield _group("initramfs", "initramfs images")
    tree_dep = _kernel_dep(project, layout)
    for name, libc in project.toolchain.libcs.items():
        yield {
            "basename": "libc",
            "name": name,
            "doc": f"build {libc.source} against the kernel's headers into the sysroot",
            "actions": [(actions.build_libc, [project, name])],
            "file_dep": [*tree_dep, layout.extracted(libc.source)],
            "targets": [layout.sysroot_record()],
            "uptodate": [
                _unchanged(libc_inputs, project, name),
                RecordedPathExists(layout.sysroot_record(), actions.Sysroot, "sysroot"),
            ],
        }
    for name, program in project.programs.items():
        language = project.toolchain.languages[program.language]
        yield {
            "basename": "program",
            "name": name,
            "doc": f"cross-compile {name} ({program.language})",
            "actions": [(actions.build_program, [project, name])],
            "file_dep": [*program.sources, *([layout.sysroot_record()] if language.libc else [])],
            "targets": [layout.program(name)],
            "uptodate": [_unchanged(program_inputs, project, name), Check(headers_unchanged, project, name)],
        }
    yield from _busybox_tasks(project, layout)
    for variant, build in sorted({(case.variant, case.build) for case in project.boots.values()}):
        info = project.builds[build]
        variant_info = project.variants[variant]
        busybox_files = [busybox.output(layout, variant_info), busybox.output(layout, variant_info, "busybox.links")]
        yield {
            "basename": "initramfs",
            "name": f"{build}-{variant}",
            "doc": f"check and pack {build} for {variant}",
            "actions": [(actions.pack_initramfs, [project, variant, build])],
            "file_dep": [
                *(layout.program(program) for program in info.programs()),
                *(source for _path, source in info.files),
                *(busybox_files if info.busybox else []),
            ],
            "targets": [layout.image(variant, build)],
            "uptodate": [_unchanged(initramfs_inputs, project, variant, build)],
        }


@dataclass(frozen=True)
class InteractiveBoot:
    """An interactive task (console:<case>, console:<variant>, shell:<variant>): the case it boots on the user's
    terminal and what it appends to the kernel command line."""

    basename: str
    name: str
    case: str
    append: str = ""

    @property
    def task(self) -> str:
        return f"{self.basename}:{self.name}"

    @property
    def scripted(self) -> str:
        """What to run instead from a script: the same case as a judged boot (or the variant's every case)."""
        return f"smoke:{self.case}" if self.name == self.case else f"smoke:{self.case} or doit boot:{self.name}"


def interactive_boots(project: Project) -> list[InteractiveBoot]:
    """Every interactive task and its case: declared from here, and refused up front without a terminal."""
    boots = [InteractiveBoot("console", name, name) for name in project.boots]
    spec = project.toolchain.busybox
    for variant, info in project.variants.items():
        console = interactive_case(project, variant, info.console_build) if info.console_build else None
        if console:
            boots.append(InteractiveBoot("console", variant, console.name))
        shell = interactive_case(project, variant, info.shell_build) if info.shell_build and spec else None
        if shell and spec:
            boots.append(InteractiveBoot("shell", variant, shell.name, spec.shell_cmdline))
    return boots


def _interactive(project: Project, layout: Layout, boot: InteractiveBoot) -> Task:
    basename, name, case_name, append = boot.basename, boot.name, boot.case, boot.append
    case = project.boots[case_name]
    doc = f"boot {case.build} on {case.variant} on this terminal" + ("; `exit` powers off" if append else "")
    return {
        "basename": basename,
        "name": name,
        "doc": doc,
        "actions": [(actions.console, [project, case_name, append, boot.scripted])],
        "file_dep": [
            layout.kernel_output(case.variant, project.toolchain.kernel.image),
            layout.image(case.variant, case.build),
        ],
        "uptodate": [False],
        "verbosity": 2,
    }


def _boot_tasks(project: Project, layout: Layout) -> Iterator[Task]:
    yield _group("smoke", "boot smoke cases (cached)")
    yield _group("console", "interactive boots")
    yield _group("shell", "interactive busybox shells")
    yield _group("boot", "boot a variant's cases")
    yield _group("demo", "boot a demo's cases")
    for name, case in project.boots.items():
        yield {
            "basename": "smoke",
            "name": name,
            "doc": f"boot {case.build} on {case.variant} ({case.qemu_options} QEMU) and judge the console",
            "actions": [(actions.smoke, [project, name])],
            "file_dep": [
                layout.kernel_output(case.variant, project.toolchain.kernel.image),
                layout.image(case.variant, case.build),
            ],
            "targets": [layout.verdict(name), layout.console_log(name)],
            "uptodate": [_unchanged(smoke_inputs, project, name)],
            "verbosity": 2,
        }
    for boot in interactive_boots(project):
        yield _interactive(project, layout, boot)
    for variant in project.variants:
        cases = [name for name, case in project.boots.items() if case.variant == variant]
        yield {
            "basename": "boot",
            "name": variant,
            "doc": f"build and boot-smoke every {variant} case (cached)",
            "actions": None,
            "task_dep": [f"smoke:{name}" for name in cases],
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


def _release_tasks(project: Project, layout: Layout) -> Iterator[Task]:
    """`doit publish [--release NAME] [--allow-dirty] [--sign KEY]`: after `all`, never cached, not part of `all`."""
    yield {
        "basename": "publish",
        "doc": "publish a release into artifacts/<release>/ and <release>.tar.xz (after doit all)",
        "actions": [(actions.publish, [project])],
        "task_dep": ["all"],
        "params": [
            _text_option(
                "release", "release", "release name (default MMULAB_RELEASE, else mmulab-<version>-<git describe>)"
            ),
            {
                "name": "allow_dirty",
                "long": "allow-dirty",
                "type": bool,
                "default": False,
                "help": "publish from a git tree with uncommitted changes (manifest says dirty)",
            },
            _text_option(
                "sign", "sign", "sign the provenance with this Ed25519 private key (PEM; default MMULAB_SIGNING_KEY)"
            ),
        ],
        "uptodate": [False],
        "verbosity": 2,
    }
    yield {
        "basename": "catalog",
        "doc": "render the demo catalogue docs/demos.md from configs/demos.toml (--from BUILD: draw its charts)",
        "actions": [(actions.catalog, [project])],
        "params": [
            _text_option(
                "source",
                "from",
                "a build directory whose boot consoles draw docs/charts/<case>.svg (default: keep them)",
            ),
        ],
        "uptodate": [False],
        "verbosity": 2,
    }
    yield {
        "basename": "matrix",
        "doc": "build every variant of every kernel series (configs/kernels.toml), boot every case: one table",
        "actions": [(matrix.action, [project])],
        "params": [
            _text_option(
                "series", "series", "only these series, comma-separated (default: every series of configs/kernels.toml)"
            ),
        ],
        "uptodate": [False],
        "verbosity": 2,
    }
    yield {
        "basename": "kernel-versions",
        "doc": "render docs/kernel-versions.md from a build's doit matrix run (--from BUILD, default the build dir)",
        "actions": [(kernel_versions.action, [project])],
        "params": [
            _text_option(
                "source",
                "from",
                "the build directory whose doit matrix run the page shows (default MMULAB_BUILD_DIR's)",
            ),
        ],
        "uptodate": [False],
        "verbosity": 2,
    }
    yield {
        "basename": "repro",
        "doc": "build everything twice (two paths, umask, locale, TZ, clock) and compare every release file",
        "actions": [(actions.repro, [project])],
        "uptodate": [False],
        "verbosity": 2,
    }


def _buildroot_tasks(project: Project, layout: Layout) -> Iterator[Task]:
    """`doit buildroot-ext`: rewrite buildroot_ext/ from configs/ (never cached: it is cheap and the tree is
    committed; a test fails while they differ)."""
    yield {
        "basename": "buildroot-ext",
        "doc": "regenerate buildroot_ext/ (Buildroot external tree) from configs/",
        "actions": [(actions.buildroot_ext, [project])],
        "uptodate": [False],
        "verbosity": 2,
    }


def all_tasks(project: Project) -> list[Task]:
    """Every task doit is given, in the pipeline's order: each group's own entry (its doc) ahead of its sub-tasks,
    and none for a group the project gives no sub-task (a project without demos has no `demo`)."""
    layout = layout_of(project)
    declared = [
        task
        for declare in (_source_tasks, _kernel_tasks, _userspace_tasks, _boot_tasks, _release_tasks, _buildroot_tasks)
        for task in declare(project, layout)
    ]
    grouping = {task["basename"] for task in declared if "name" in task and not is_group(task)}
    return [task for task in declared if not is_group(task) or task["basename"] in grouping]


def task_names(declared: Iterable[Task]) -> frozenset[str]:
    """Every name doit knows the declared tasks by: each group and single task, and each sub-task as group:name."""
    names = set()
    for task in declared:
        names.add(task["basename"])
        if "name" in task and not is_group(task):
            names.add(f"{task['basename']}:{task['name']}")
    return frozenset(names)


def doit_task_functions(project: Project) -> dict[str, Callable[[], Iterator[Task]]]:
    """The one task creator doit's loader is given: every declaration carries its basename, so doit itself makes
    the groups and their sub-tasks. It yields them group by group, in the pipeline's order of the groups: that is
    the order of `doit list --sort definition`."""

    def task_mmulab() -> Iterator[Task]:
        """the mmulab pipeline"""  # doit's doc for a task without one: every task has its own
        declared = all_tasks(project)
        order = {basename: index for index, basename in enumerate(dict.fromkeys(t["basename"] for t in declared))}
        yield from sorted(declared, key=lambda task: order[task["basename"]])

    return {"task_mmulab": task_mmulab}
