"""The orchestration itself, from the task declarations alone (no build, no doit run): which tasks go out
of date when one input changes, and which do not.

A task's signature is what doit compares between two runs: the digest of every InputsUnchanged check in its
`uptodate` (computed as doit would, by calling its inputs function) and the content of each of its file_dep
files. Files of the checkout (configs/, initsrc/, an overlay) are read; outputs under the build directory do
not exist here and count by name only: a task that consumes another's output follows it through that
file_dep when the output's content changes, which only a real build can show (the slow tests do).

The tasks whose signature changes are the ones doit runs directly; both projects of a comparison share one
temporary build directory, as two runs of doit do.
"""

from __future__ import annotations

import pickle
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import checkout_configs, make_project

from mmulab import tasks
from mmulab.configdata import Project
from mmulab.errors import UserError
from mmulab.fsutil import digest_of, sha256_of
from mmulab.settings import PROJECT_ROOT
from mmulab.uptodate import Check, InputsUnchanged, RecordedPathExists

VARIANTS = tuple(checkout_configs().variants)  # every kernel of configs/variants.toml


# --- helpers ---


def task_name(task: dict[str, Any]) -> str:
    return f"{task['basename']}:{task['name']}" if "name" in task else task["basename"]


def _check_part(check: Any, build: Path) -> Any:
    if isinstance(check, InputsUnchanged):
        try:
            return ["inputs", digest_of(check.inputs())]
        except (UserError, OSError) as exc:
            # Inputs read from an earlier stage's record (a build output) are unknown before a build, like
            # the content of a file_dep under the build directory; any other failure is a bug in the inputs.
            if str(build) not in str(exc):
                raise
            return ["inputs from build outputs", type(exc).__name__]
    # The other checks look at the build directory's state (a record's path, recorded headers), not inputs.
    if isinstance(check, Check):
        return ["check", check.function.__module__, check.function.__qualname__]
    if isinstance(check, RecordedPathExists):
        return ["recorded", str(check.record), check.field]
    return ["constant", repr(check)]


def signatures(project: Project) -> dict[str, str]:
    """Task name -> what doit compares between two runs of it."""
    build = project.settings.build_dir
    result = {}
    for task in tasks.all_tasks(project):
        files = []
        for dep in sorted(map(str, task.get("file_dep", []))):
            path = Path(dep)
            if path.is_file():
                assert not path.is_relative_to(build), f"{task_name(task)}: {path} exists before any build"
                files.append([dep, sha256_of(path)])
            else:
                files.append([dep, None])
        parts = [
            [_check_part(check, build) for check in task.get("uptodate", [])],
            files,
            sorted(task.get("task_dep", [])),
        ]
        result[task_name(task)] = digest_of(parts)
    return result


@dataclass(frozen=True)
class Snapshot:
    """A project as loaded, with its task signatures taken then (what doit records at the end of a run)."""

    project: Project
    signatures: dict[str, str]


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
    project = project_of(build, checkout, **overrides)
    return Snapshot(project, signatures(project))


def rerun(before: Snapshot, after: Snapshot) -> set[str]:
    """The tasks doit runs directly after the change from `before` to `after` (new tasks included)."""
    old = before.signatures
    return {name for name, signature in after.signatures.items() if old.get(name) != signature}


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
        monkeypatch.setattr("mmulab.tools.shutil.which", lambda *args, **kwargs: None)
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
    assert rerun(load(build, checkout), load(build, checkout)) == set()


def test_every_task_signature_computes(build: Path) -> None:
    """An inputs function that raises makes its task always out of date (InputsUnchanged answers False)."""
    snapshot = load(build)
    project, names = snapshot.project, set(snapshot.signatures)
    for kind in ("kconfig", "kernel", "busybox"):
        assert named(kind, VARIANTS) <= names
    assert named("program", project.programs) | named("smoke", project.boots) <= names


def test_declaring_every_task_starts_no_process_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"a process was started while declaring tasks: {args!r}")

    for name in ("run", "Popen", "call", "check_call", "check_output"):
        monkeypatch.setattr(subprocess, name, refuse)
    build = tmp_path / "build"
    project = project_of(build)
    declared = list(tasks.all_tasks(project))
    creators = tasks.doit_task_functions(project)
    bodies = []
    for create in creators.values():
        made = create()
        bodies += list(made) if isinstance(made, Iterator) else [made]
    assert len(bodies) == len(declared) > 0
    assert {"task_kconfig", "task_kernel", "task_program", "task_initramfs", "task_smoke"} <= set(creators)
    # Not even the tool-version memo: versions are read when doit checks a task, not when it lists one.
    assert not build.exists() or not any(build.iterdir())


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
    before = load(build, config_overlay=overlay)
    assert before.project.programs["myfork-asm"].sources == (overlay / "init.S", rt)
    # Adding the demo declares its own tasks and changes none of the others.
    assert rerun(load(build), before) == {
        "program:myfork-asm",
        "initramfs:myfork-asm-nommu",
        "smoke:myfork-asm-nommu",
        "console:myfork-asm-nommu",
        "demo:myfork",
        "boot:nommu",
    }
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
    images = {name for name in before.signatures if name.startswith("initramfs:")}
    assert len(images) == len({(case.variant, case.build) for case in before.project.boots.values()})
    # Kernels (KBUILD_BUILD_TIMESTAMP), busybox (its banner's date) and the cpio mtimes; not the downloads,
    # trees, configs, musl, init programs or boots (those follow only if the kernel or image bytes changed).
    assert rerun(before, load(build, source_date_epoch=1700000000)) == (
        named("kernel", VARIANTS) | named("busybox", VARIANTS) | images
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
    assert rerun(before, after) == named("busybox", VARIANTS)


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
