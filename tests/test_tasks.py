"""The orchestration itself, from the task declarations and doit's own dependency checking (no compiler, no
QEMU): which tasks go out of date when one input changes, and which do not.

A build directory is fake-built from the real task declarations: each task's targets and the records its
checks read (fetch and extraction records, the sysroot record, the compile's header lists) are written by a
stand-in for its action, and doit's Dependency saves its success as a run would (the values its
`uptodate` checks leave, the content of its file_dep). After a change, doit's own `get_status` on the newly
declared tasks says which it would run: every `uptodate` check is really called (InputsUnchanged, the
extraction and header checks, the recorded paths) and every file_dep compared. A task that consumes
another's output follows it through that file_dep only when the output's bytes change, which only a real
build can show (the slow tests do): the tasks found here are the ones doit runs directly.
"""

from __future__ import annotations

import pickle
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from conftest import checkout_configs, make_project
from doit.dependency import DbmDB, Dependency
from doit.loader import load_tasks
from doit.task import Task as DoitTask
from doit.task import dict_to_task

from mmulab.build import busybox, toolchain
from mmulab.build.download import Fetched
from mmulab.build.extract import Extracted
from mmulab.core.errors import UserError
from mmulab.core.fsutil import digest_of, sha256_of
from mmulab.core.settings import PROJECT_ROOT
from mmulab.pipeline import actions, tasks
from mmulab.pipeline.actions import layout_of
from mmulab.pipeline.uptodate import Check, InputsUnchanged, RecordedPathExists
from mmulab.project.model import Project

VARIANTS = tuple(checkout_configs().variants)  # every kernel of configs/variants.toml
# The busybox builds (busybox:<key>), one per flavour: what a busybox input reruns (busybox:<variant> names the
# one its variant takes and follows it through its file_dep, when the build's bytes change).
BUSYBOX_BUILDS = tuple(busybox.shared_builds(checkout_configs().variants))


# --- helpers ---


def task_name(task: dict[str, Any]) -> str:
    return f"{task['basename']}:{task['name']}" if "name" in task else task["basename"]


def doit_tasks(project: Project) -> dict[str, DoitTask]:
    """The project's task declarations as doit's own Task objects (what doit's loader makes of them), groups'
    own entries (their docs) left out: the tasks that run."""
    result = {}
    for declared in tasks.all_tasks(project):
        if tasks.is_group(declared):
            continue
        body = {key: value for key, value in declared.items() if key not in ("basename", "name")}
        result[task_name(declared)] = dict_to_task({**body, "name": task_name(declared)})
    return result


def never_cached(task: DoitTask) -> bool:
    """Interactive, publishing and group tasks: doit runs them every time, whatever changed."""
    checks = [check for check, _args, _kwargs in task.uptodate]
    return False in checks or (not task.file_dep and not checks)


def fake_action(project: Project, name: str, targets: list[str]) -> None:
    """What task `name`'s action leaves that the checks read; its other targets get placeholder bytes."""
    layout = layout_of(project)
    kind, _, item = name.partition(":")
    if kind == "fetch":
        source = project.source(item)
        tarball = layout.root / "fake-downloads" / item / source.origins[0].filename
        tarball.parent.mkdir(parents=True, exist_ok=True)
        tarball.write_bytes(f"{item} {source.version}".encode())
        Fetched(item, str(tarball), sha256_of(tarball), source.version, "download cache", "file").write(
            layout.fetched(item)
        )
    elif kind == "extract":
        fetched = Fetched.read(layout.fetched(item))
        layout.tree(item).mkdir(parents=True, exist_ok=True)
        patches = tuple((patch.name, sha256_of(patch)) for patch in project.source(item).patches)
        Extracted(str(layout.tree(item)), fetched.sha256, fetched.version, patches).write(layout.extracted(item))
    elif kind == "libc":
        (layout.sysroot() / "include").mkdir(parents=True, exist_ok=True)
        (layout.sysroot() / "include" / "stdio.h").write_text("/* the C library's header */\n")
        actions.Sysroot(item, str(layout.sysroot()), "0" * 64).write(layout.sysroot_record())
    elif kind == "program":
        program, output = project.programs[item], layout.program(item)
        objects = output.parent / "objects"
        objects.mkdir(parents=True, exist_ok=True)
        headers = (
            [layout.sysroot() / "include" / "stdio.h"] if project.toolchain.languages[program.language].libc else []
        )
        for index, source in enumerate(program.sources):
            depfile = objects / f"{toolchain.object_name(index, source)}.d"
            depfile.write_text(f"{depfile.stem}: {source} {' '.join(map(str, headers))}\n")
        (objects / "headers.sha256").write_text(toolchain._headers_digest(toolchain.recorded_headers(output) or []))
    for target in map(Path, targets):
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(f"{name} output\n".encode())


def dependency(build: Path) -> Dependency:
    """doit's dependency database of the fake builds in `build` (doit's default backend and MD5 checker)."""
    build.mkdir(parents=True, exist_ok=True)
    return Dependency(DbmDB, str(build / "fake.doit.db"))


def fake_build(project: Project) -> None:
    """Every cached task of `project`, in declaration order (the pipeline's order): doit checks it, the
    stand-in action runs, doit saves its success with the values its checks left, as `doit run` does."""
    declared = doit_tasks(project)
    database = dependency(project.settings.build_dir)
    try:
        for name, task in declared.items():
            if never_cached(task):
                continue
            database.get_status(task, declared)  # calls the checks: InputsUnchanged leaves its value saver
            fake_action(project, name, task.targets)
            task.save_extra_values()
            database.save_success(task)
    finally:
        database.close()


def statuses(project: Project) -> dict[str, str]:
    """Task name -> what doit's own dependency check says now: up-to-date, run or error (a missing file_dep)."""
    declared = doit_tasks(project)
    database = dependency(project.settings.build_dir)
    try:
        return {name: database.get_status(task, declared).status for name, task in declared.items()}
    finally:
        database.close()


@dataclass(frozen=True)
class Snapshot:
    """A project as loaded, fake-built in its build directory (what doit records at the end of a run)."""

    project: Project
    names: frozenset[str]
    always: frozenset[str]  # the tasks doit runs every time (interactive, publishing, groups)


def project_of(build: Path, checkout: Path = PROJECT_ROOT, **overrides: Any) -> Project:
    """The project of `checkout` (its configs/, whose relative paths resolve from the checkout), built in
    `build`, with none of the caller's environment overrides (overlay, fragments, LINUX_SRC, epoch)."""
    settings: dict[str, Any] = {
        "configs_dir": checkout / "configs",
        "config_overlay": None,
        "linux_src": None,
        "user_fragments": {},
        "source_date_epoch": 0,
        "mirrors": (),
    }
    return make_project(build, **{**settings, **overrides})


def load(build: Path, checkout: Path = PROJECT_ROOT, **overrides: Any) -> Snapshot:
    """The project, built (fake) in `build` unless that directory has been built already."""
    project = project_of(build, checkout, **overrides)
    if not any(build.glob("fake.doit.db*")):
        fake_build(project)
    declared = doit_tasks(project)
    always = frozenset(name for name, task in declared.items() if never_cached(task))
    return Snapshot(project, frozenset(declared), always)


def rerun(before: Snapshot, after: Snapshot) -> set[str]:
    """The tasks doit runs directly after the change from `before` (the built state) to `after`: those its
    dependency check finds out of date, new tasks included, but not those it runs every time anyway."""
    found = statuses(after.project)
    return {name for name, status in found.items() if status != "up-to-date" and name not in before.always}


def edit(path: Path, old: str, new: str) -> None:
    """Replace the first `old` in the file (which must hold it) by `new`."""
    text = path.read_text()
    assert old in text, f"{path}: {old!r} not found (the test's edit no longer applies)"
    path.write_text(text.replace(old, new, 1))


def named(kind: str, names: Any) -> set[str]:
    return {f"{kind}:{name}" for name in names}


# --- fixtures ---


@pytest.fixture(params=["tools-as-installed", "tools-missing"])
def build(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh build directory (its own tool-version memo). Every comparison runs twice: with this machine's
    cross compiler, make and QEMU (when installed), and with none of them found: the answer is the same,
    since a missing tool only gives a constant "missing" version."""
    if request.param == "tools-missing":
        monkeypatch.setattr("mmulab.core.tools.shutil.which", lambda *args, **kwargs: None)
    return tmp_path / "build"


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the checkout's configs/ and initsrc/ that a test may edit."""
    root = tmp_path / "checkout"
    for folder in ("configs", "initsrc"):
        shutil.copytree(PROJECT_ROOT / folder, root / folder)
    return root


# --- nothing changed ---


def test_two_loads_of_the_same_project_rerun_nothing(build: Path, checkout: Path) -> None:
    assert rerun(load(build), load(build)) == set()
    elsewhere = build.with_name("build-of-the-copy")
    assert rerun(load(elsewhere, checkout), load(elsewhere, checkout)) == set()


def test_every_check_computes_and_a_built_directory_is_up_to_date(build: Path) -> None:
    """Called as doit calls them, on a built directory: every inputs function computes (one that raises makes
    its task always out of date), every other check says up to date, and doit finds every cached task up to
    date; a kind of task that is missing, or never cached, would show here."""
    snapshot = load(build)
    project, declared = snapshot.project, doit_tasks(snapshot.project)
    for kind in ("kconfig", "kernel", "busybox"):
        assert named(kind, VARIANTS) <= snapshot.names
    assert named("program", project.programs) | named("smoke", project.boots) <= snapshot.names
    for name, task in declared.items():
        for check, _args, _kwargs in task.uptodate:
            if isinstance(check, InputsUnchanged):
                digest_of(check.inputs())  # raises, naming the problem, where an input cannot be computed
            elif isinstance(check, Check | RecordedPathExists):
                assert check() is True, f"{name}: {check!r} is false on a built directory"
    cached = {name for name in snapshot.names if name not in snapshot.always}
    assert {name.partition(":")[0] for name in snapshot.always} == {
        "console",
        "shell",
        "boot",
        "demo",
        "all",
        "publish",
        "catalog",
        "repro",
        "matrix",
        "kernel-versions",
        "buildroot-ext",
    }
    found = statuses(project)
    assert {name for name in cached if found[name] != "up-to-date"} == set()
    assert cached >= named("fetch", project.sources) | named("program", project.programs) | {"libc:musl"}


def test_declaring_every_task_starts_no_process_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"a process was started while declaring tasks: {args!r}")

    for name in ("run", "Popen", "call", "check_call", "check_output"):
        monkeypatch.setattr(subprocess, name, refuse)
    build = tmp_path / "build"
    project = project_of(build)
    declared = tasks.all_tasks(project)
    loaded = {task.name: task for task in load_tasks(tasks.doit_task_functions(project))}  # doit's own loader
    assert set(loaded) == tasks.task_names(declared) and len(declared) > 0
    assert {"kconfig", "kernel", "program", "initramfs", "smoke"} <= {t.name for t in loaded.values() if t.has_subtask}
    # Not even the tool-version memo: versions are read when doit checks a task, not when it lists one.
    assert not build.exists() or not any(build.iterdir())


def test_doit_makes_every_group_with_its_own_doc_and_all_its_sub_tasks(tmp_path: Path) -> None:
    """What `doit list` shows: each group (a basename with sub-tasks) carries the doc its declaration gave it, not
    the task creator's, and doit's loader puts every declared sub-task under it, in the order declared (a group's
    entry declared after a sub-task of its own would lose the sub-tasks before it)."""
    project = project_of(tmp_path / "build")
    declared = tasks.all_tasks(project)
    creator = tasks.doit_task_functions(project)
    loaded = {task.name: task for task in load_tasks(creator)}
    docs = {task["basename"]: task["doc"] for task in declared if tasks.is_group(task)}
    groups = {name: task for name, task in loaded.items() if task.has_subtask}
    assert set(groups) == set(docs) and len(groups) >= 13
    for name, group in groups.items():
        subtasks = [f"{name}:{t['name']}" for t in declared if t["basename"] == name and not tasks.is_group(t)]
        assert group.doc == docs[name] and group.doc not in ("", name), name
        assert group.task_dep == subtasks and subtasks, name
        assert not group.actions, name
    creator_docs = {(create.__doc__ or "").strip() for create in creator.values()}
    for name, task in loaded.items():
        assert task.doc and task.doc not in creator_docs, f"{name}: no doc of its own in doit list"
    singles = {task["basename"]: task["doc"] for task in declared if "name" not in task}
    assert {name: loaded[name].doc for name in singles} == singles
    assert {"all", "publish", "catalog", "repro", "matrix", "buildroot-ext"} <= set(singles)


def test_a_group_the_project_gives_no_sub_task_is_not_declared(tmp_path: Path) -> None:
    """A project without demos has no `demo` group, and without busybox no `busybox` or `shell` group: doit would
    list them with their docs and nothing to run (`doit demo` would do nothing instead of naming no such task)."""
    project = project_of(tmp_path / "build")
    full = {task.name for task in load_tasks(tasks.doit_task_functions(project))}
    assert {"demo", "busybox", "shell"} <= full
    bare = replace(project, demos={}, toolchain=replace(project.toolchain, busybox=None))
    declared = tasks.all_tasks(bare)
    loaded = {task.name for task in load_tasks(tasks.doit_task_functions(bare))}
    assert not {"demo", "busybox", "shell"} & (loaded | {task["basename"] for task in declared})
    assert {"fetch", "kernel", "smoke", "console"} <= loaded


def _outcome(inputs: Any) -> str:
    try:
        return digest_of(inputs())
    except (UserError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"


def test_every_action_and_uptodate_check_pickles(tmp_path: Path) -> None:
    """`doit -n N` hands tasks to worker processes: their actions and checks must pickle, and an unpickled
    inputs check computes the same digest as the original."""
    project = project_of(tmp_path / "build")
    for task in tasks.all_tasks(project):
        name = task_name(task)
        for field in ("actions", "uptodate"):
            try:
                copy = pickle.loads(pickle.dumps(task.get(field)))
            except Exception as exc:
                pytest.fail(f"{name}: {field} does not pickle: {type(exc).__name__}: {exc}")
            if field == "uptodate":
                for original, restored in zip(task.get(field, []), copy or [], strict=True):
                    if isinstance(original, InputsUnchanged):
                        assert _outcome(restored.inputs) == _outcome(original.inputs), name


# --- init sources ---


def test_editing_an_init_source_rebuilds_only_its_program(build: Path, checkout: Path) -> None:
    before = load(build, checkout)
    source = checkout / "initsrc" / "fork" / "init.S"
    assert source in before.project.programs["fork-asm"].sources
    edit(source, "\n", "\n/* edited */\n")
    # The initramfs images packing program:fork-asm's binary and the boots of those images follow through
    # their file_dep on that binary, when (and only when) the rebuilt binary differs.
    assert rerun(before, load(build, checkout)) == {"program:fork-asm"}


def test_editing_a_shared_source_rebuilds_every_program_that_compiles_it(build: Path, checkout: Path) -> None:
    before = load(build, checkout)
    shared = checkout / "initsrc" / "lib" / "rt.S"
    users = {name for name, program in before.project.programs.items() if shared in program.sources}
    assert users == {name for name, program in before.project.programs.items() if program.language == "asm"}
    assert "addrspace-asm-addrspace-child" in users  # helpers too
    edit(shared, "\n", "\n/* edited */\n")
    assert rerun(before, load(build, checkout)) == named("program", users)


def test_editing_a_user_demo_in_an_overlay_rebuilds_only_its_program(build: Path, tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    shutil.copy(PROJECT_ROOT / "initsrc" / "fork" / "init.S", overlay / "init.S")
    rt = PROJECT_ROOT / "initsrc" / "lib" / "rt.S"
    (overlay / "demos.toml").write_text(
        f'[demos.myfork.builds.asm]\ninit = ["init.S", "{rt}"]\n'
        '[demos.myfork.runs.nommu]\nmust = ["mmulab: fork: parent byte after child exit = B"]\n'
    )
    plain = load(build)
    before = load(build, config_overlay=overlay)
    assert before.project.programs["myfork-asm"].sources == (overlay / "init.S", rt)
    # Adding the demo declares its own tasks (never run yet) and changes none of the others; boot:nommu,
    # whose task_dep gains the new case, is a group that doit runs every time anyway.
    assert rerun(plain, before) == {
        "program:myfork-asm",
        "initramfs:myfork-asm-nommu",
        "smoke:myfork-asm-nommu",
        "console:myfork-asm-nommu",
        "demo:myfork",
    }
    fake_build(before.project)  # the user's demo is built too
    assert rerun(before, load(build, config_overlay=overlay)) == set()
    edit(overlay / "init.S", "\n", "\n/* edited */\n")
    assert rerun(before, load(build, config_overlay=overlay)) == {"program:myfork-asm"}


@pytest.mark.parametrize("script", ["init.sh", "check.sh"])
def test_editing_a_busybox_script_repacks_only_its_images(build: Path, checkout: Path, script: str) -> None:
    """Scripts are packed as they are: no program to compile, the images that hold them are repacked."""
    before = load(build, checkout)
    edit(checkout / "initsrc" / "shell" / script, "\n", "\n# edited\n")
    assert rerun(before, load(build, checkout)) == named("initramfs", [f"shell-busybox-{v}" for v in VARIANTS])


# --- settings ---


def test_source_date_epoch_rebuilds_what_stamps_time_and_nothing_else(build: Path) -> None:
    before = load(build)
    images = {name for name in before.names if name.startswith("initramfs:")}
    assert len(images) == len({(case.variant, case.build) for case in before.project.boots.values()})
    # Kernels (KBUILD_BUILD_TIMESTAMP), busybox (its banner's date) and the cpio mtimes; not the downloads,
    # trees, configs, musl, init programs or boots (those follow only if the kernel or image bytes changed).
    assert rerun(before, load(build, source_date_epoch=1700000000)) == (
        named("kernel", VARIANTS) | named("busybox", BUSYBOX_BUILDS) | images
    )


# --- sources ---


def test_a_patch_re_extracts_only_its_source(build: Path, checkout: Path) -> None:
    before = load(build, checkout)
    patch = checkout / "configs" / "patches" / "musl" / "0001-riscv64-add-vfork.patch"
    assert before.project.sources["musl"].patches == (patch,)
    patch.write_text(patch.read_text() + "\n")
    # libc:musl follows through its file_dep on the extracted tree's record.
    assert rerun(before, load(build, checkout)) == {"extract:musl"}


def test_a_sources_origin_refetches_only_that_source(build: Path, checkout: Path) -> None:
    before = load(build, checkout)
    edit(checkout / "configs" / "sources.toml", 'url = "https://busybox.net/', 'url = "https://www.busybox.net/')
    # extract:busybox reruns only when the refetched archive's sha256 differs from the one it extracted.
    assert rerun(before, load(build, checkout)) == {"fetch:busybox"}


def test_mirrors_refetch_nothing(build: Path, checkout: Path) -> None:
    """A mirror is one more place to look: every byte is still checked against the same sha256."""
    before = load(build, checkout)
    edit(checkout / "configs" / "sources.toml", "urls = []", 'urls = ["https://mirror.example/dl"]')
    after = load(build, checkout, mirrors=("https://other.example/",))
    assert after.project.mirrors == ("https://other.example/", "https://mirror.example/dl")
    assert rerun(before, after) == set()


# --- kernel configuration ---


def test_a_user_fragment_reconfigures_only_its_variant(build: Path, tmp_path: Path) -> None:
    fragment = tmp_path / "extra.config"
    fragment.write_text("CONFIG_PRINTK_TIME=y\n")
    before = load(build)
    with_fragment = load(build, user_fragments={"nommu": fragment})
    # kernel:nommu follows through its file_dep on the verified config, when the final config differs.
    assert rerun(before, with_fragment) == {"kconfig:nommu"}
    fake_build(with_fragment.project)  # built with the fragment
    assert rerun(with_fragment, load(build, user_fragments={"nommu": fragment})) == set()
    fragment.write_text("CONFIG_PRINTK_TIME=n\n")
    assert rerun(with_fragment, load(build, user_fragments={"nommu": fragment})) == {"kconfig:nommu"}


def test_a_variants_kconfig_table_reconfigures_only_that_variant(build: Path, checkout: Path) -> None:
    before = load(build, checkout)
    # The first kconfig table of variants.toml is the nommu variant's.
    edit(checkout / "configs" / "variants.toml", "kconfig = {}", "kconfig = { PRINTK_TIME = true }")
    after = load(build, checkout)
    assert after.project.variants["nommu"].kconfig == {"PRINTK_TIME": True}
    assert after.project.variants["mmu"].kconfig == {}
    assert rerun(before, after) == {"kconfig:nommu"}


def test_the_kernel_template_reconfigures_every_variant(build: Path, checkout: Path) -> None:
    before = load(build, checkout)
    edit(checkout / "configs" / "kernel" / "riscv64.config.j2", "\n", "\n# edited\n")
    assert rerun(before, load(build, checkout)) == named("kconfig", VARIANTS)


def test_a_variants_kernel_cmdline_reconfigures_its_kernel_and_reboots_its_cases(build: Path, checkout: Path) -> None:
    before = load(build, checkout)
    edit(checkout / "configs" / "variants.toml", 'cmdline = "console=ttyS0 panic=-1"', 'cmdline = "console=ttyS0"')
    after = load(build, checkout)
    assert after.project.variants["nommu"].cmdline == "console=ttyS0"
    cases = [name for name, case in before.project.boots.items() if case.variant == "nommu"]
    # The kernel template writes CONFIG_CMDLINE; QEMU's -append carries it to every nommu boot.
    assert rerun(before, after) == {"kconfig:nommu"} | named("smoke", cases)


# --- toolchain ---


def test_busybox_kconfig_rebuilds_only_busybox(build: Path, checkout: Path) -> None:
    before = load(build, checkout)
    edit(checkout / "configs" / "toolchain.toml", "kconfig = {}", "kconfig = { FEATURE_EDITING = true }")
    after = load(build, checkout)
    assert after.project.toolchain.busybox is not None and after.project.toolchain.busybox.kconfig == {
        "FEATURE_EDITING": True
    }
    # The images with busybox follow through their file_dep on busybox and busybox.links.
    assert rerun(before, after) == named("busybox", BUSYBOX_BUILDS)


def test_a_language_flag_rebuilds_only_that_languages_programs(build: Path, checkout: Path) -> None:
    before = load(build, checkout)
    edit(checkout / "configs" / "toolchain.toml", '"-O2", ', '"-Os", ')
    c_programs = [name for name, program in before.project.programs.items() if program.language == "c"]
    assert c_programs
    assert rerun(before, load(build, checkout)) == named("program", c_programs)


def test_the_arch_reconfigures_and_rebuilds_what_make_arch_builds(build: Path, checkout: Path) -> None:
    before = load(build, checkout)
    edit(checkout / "configs" / "toolchain.toml", 'arch = "riscv"', 'arch = "riscv64"')
    after = load(build, checkout)
    assert after.project.toolchain.arch == "riscv64"
    assert rerun(before, after) == named("kconfig", VARIANTS) | named("kernel", VARIANTS) | {"libc:musl"}


_DISPLAY_ONLY = {
    "busybox": ("progress_estimate = 220", "progress_estimate = 221"),
    "kernel": ("progress_estimate = 1070", "progress_estimate = 1071"),
    "libc": ("progress_estimate = 1350", "progress_estimate = 1351"),
}


@pytest.mark.parametrize(
    "stage",
    ["busybox", "kernel", "libc"],
)
def test_a_progress_estimate_rebuilds_nothing(build: Path, checkout: Path, stage: str) -> None:
    """progress_estimate only sizes a progress bar until a build has counted its own lines."""
    before = load(build, checkout)
    old, new = _DISPLAY_ONLY[stage]
    edit(checkout / "configs" / "toolchain.toml", old, new)
    assert rerun(before, load(build, checkout)) == set()


# --- demos ---


def test_a_qemu_option_set_reboots_exactly_the_cases_using_it(build: Path, checkout: Path) -> None:
    before = load(build, checkout)
    edit(
        checkout / "configs" / "demos.toml",
        'mmu-off = ["-cpu", "rv64,mmu=off"]',
        'mmu-off = ["-cpu", "rv64,mmu=off", "-d", "guest_errors"]',
    )
    using = [name for name, case in before.project.boots.items() if case.qemu_options == "mmu-off"]
    assert sorted(using) == [f"clone_vm-{lang}-{v}-mmu-off" for lang in ("asm", "c") for v in ("mmu", "nommu")]
    assert rerun(before, load(build, checkout)) == named("smoke", using)


def test_a_runs_markers_reboot_only_that_runs_cases(build: Path, checkout: Path) -> None:
    before = load(build, checkout)
    edit(
        checkout / "configs" / "demos.toml",
        '"mmulab: fork: the child wrote the parent\'s memory: no page tables, no copy-on-write",',
        '"mmulab: fork: the child wrote the parent\'s memory",',
    )
    after = load(build, checkout)
    assert after.project.boots["fork-asm-nommu"].must != before.project.boots["fork-asm-nommu"].must
    assert rerun(before, after) == {"smoke:fork-asm-nommu", "smoke:fork-c-nommu"}


def test_a_runs_timeout_reboots_only_that_runs_cases(build: Path, checkout: Path) -> None:
    before = load(build, checkout)
    edit(checkout / "configs" / "demos.toml", "timeout = 5\n", "timeout = 7\n")
    assert rerun(before, load(build, checkout)) == {"smoke:clone_vm-asm-mmu-mmu-off", "smoke:clone_vm-c-mmu-mmu-off"}


def test_descriptions_rerun_nothing(build: Path, checkout: Path) -> None:
    before = load(build, checkout)
    configs = checkout / "configs"
    edit(configs / "demos.toml", 'description = "clone(CLONE_VM', 'description = "edited: clone(CLONE_VM')
    edit(configs / "variants.toml", 'description = "M-mode kernel', 'description = "edited: M-mode kernel')
    after = load(build, checkout)
    assert after.project.variants["nommu"].description.startswith("edited")
    assert rerun(before, after) == set()


def test_nothing_outside_the_inputs_reruns(build: Path, checkout: Path) -> None:
    """Comments and the order of tables in the TOML files are not inputs."""
    before = load(build, checkout)
    for name in ("demos.toml", "toolchain.toml", "variants.toml", "sources.toml"):
        path = checkout / "configs" / name
        path.write_text("# edited\n" + path.read_text() + "\n# edited too\n")
    assert rerun(before, load(build, checkout)) == set()
