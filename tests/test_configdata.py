"""Configuration data: mistakes are one line naming file and field; a user's overlay adds demos."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import make_project, run_doit

from mmulab.core.errors import UserError
from mmulab.core.settings import PROJECT_ROOT


def copied_configs(tmp_path: Path) -> Path:
    configs = tmp_path / "configs"
    shutil.copytree(PROJECT_ROOT / "configs", configs)
    shutil.copytree(PROJECT_ROOT / "initsrc", tmp_path / "initsrc")
    return configs


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        (
            "kernels.toml",
            'sha256 = "c92591d8',
            'sha256 = "C92591D8',
            r"configs/kernels\.toml: series\.6\.12\.sha256: .* is not a lowercase 64-digit sha256",
        ),
        (
            "sources.toml",
            'kind = "url"',
            'kind = "ftp"',
            r"sources\.toml: sources\.busybox\.origins\[0\]\.kind: 'ftp' is not one of url, debian-source, local-file",
        ),
        (
            "kernels.toml",
            'default = "6.12"',
            'default = "5.4"',
            r"configs/kernels\.toml: default: '5\.4' is not a series of this file \(6\.1, 6\.12, 6\.18, 7\.1\)",
        ),
        (
            "variants.toml",
            'base_config = "nommu_virt_defconfig"\n',
            "",
            r"variants\.toml: variants\.nommu\.base_config: missing \(e\.g\. base_config = \"tinyconfig\"\)",
        ),
        ("variants.toml", "mmu = false", 'mmu = "no"', r"variants\.nommu\.mmu: expected bool, found 'no'"),
        (
            "demos.toml",
            'qemu = "mmu-off"',
            'qemu = "mmu-of"',
            r"demos\.toml: demos\.clone_vm\.runs\.nommu-mmu-off\.qemu: 'mmu-of' is not in \[qemu_options\]",
        ),
        (
            "demos.toml",
            '"initsrc/clone_vm/init.S"',
            '"initsrc/nope.S"',
            r"demos\.clone_vm\.builds\.asm\.init: .*initsrc/nope\.S: no such file",
        ),
        (
            "demos.toml",
            "[demos.fork.builds.c]",
            "[demos.fork.builds.rust]",
            r"demos\.fork\.builds\.rust: 'rust' is not a language of configs/toolchain\.toml \(asm, c, busybox\)",
        ),
        (
            "demos.toml",
            "[demos.fork.runs.mmu]",
            "[demos.fork.runs.mmu2]",
            r"demos\.fork\.runs\.mmu2\.variant: 'mmu2' is not a variant in configs/variants\.toml",
        ),
        (
            "toolchain.toml",
            'libc = "musl"',
            'libc = "glibc"',
            r"toolchain\.toml: languages\.c\.libc: 'glibc' is not a \[libc\.NAME\] table",
        ),
        (
            "variants.toml",
            'elf_rules = "static-pie"',
            'elf_rules = "dynamic"',
            r"variants\.toml: variants\.nommu\.elf_rules: 'dynamic' is not one of static-pie, static$",
        ),
        (
            "toolchain.toml",
            'kind = "busybox"',
            'kind = "script"',
            r"toolchain\.toml: languages\.busybox\.kind: 'script' is not one of compiled, busybox$",
        ),
        ("sources.toml", "patches/musl/0001", "patches/musl/0009", r"sources\.musl\.patches: .*0009.*: no such file"),
        ("demos.toml", "[defaults]", "[defaults", r"demos\.toml: invalid TOML: "),
    ],
)
def test_mistakes_name_file_and_field(tmp_path: Path, file: str, old: str, new: str, message: str) -> None:
    configs = copied_configs(tmp_path)
    path = configs / file
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new, 1))
    with pytest.raises(UserError, match=message):
        make_project(tmp_path / "build", configs_dir=configs)


def _overlay(tmp_path: Path, demos_toml: str, *sources: str) -> Path:
    """A user's config overlay folder: its demos.toml and the (placeholder) init sources it names."""
    overlay = tmp_path / "mine"
    overlay.mkdir()
    for name in sources:
        (overlay / name).write_text("# my init\n")
    (overlay / "demos.toml").write_text(demos_toml)
    return overlay


def test_overlay_adds_a_users_own_demo(tmp_path: Path) -> None:
    overlay = _overlay(
        tmp_path,
        '[demos.hello]\ndescription = "mine"\n[demos.hello.builds.asm]\ninit = ["hello.S"]\n'
        '[demos.hello.runs.nommu]\nmust = ["hello"]\ntimeout = 5\n'
        '[demos.hello.runs.mmu-cpu-off]\nvariant = "mmu"\nqemu = "mmu-off"\nexpect = "hang"\n',
        "hello.S",
    )
    project = make_project(tmp_path / "build", config_overlay=overlay)
    assert project.programs["hello-asm"].sources == ((overlay / "hello.S").resolve(),)
    assert project.demos["hello"].cases == ("hello-asm-nommu", "hello-asm-mmu-cpu-off")
    hang = project.boots["hello-asm-mmu-cpu-off"]
    assert (hang.variant, hang.expect, hang.qemu_args) == ("mmu", "hang", ("-cpu", "rv64,mmu=off"))
    assert project.boots["hello-asm-nommu"].timeout == 5
    assert "clone_vm" in project.demos and "clone_vm-asm-nommu" in project.boots
    assert project.boots["hello-asm-nommu"].must_not == project.boots["fork-c-nommu"].must_not


def test_every_demo_has_a_c_build_and_runs_on_a_kernel_with_and_one_without_an_mmu() -> None:
    project = make_project(PROJECT_ROOT / "build")
    for name, demo in project.demos.items():
        builds = {project.boots[case].build for case in demo.cases}
        if name in ("clone_vm", "addrspace", "fork", "pidns"):  # the address-space demos, in asm as well
            assert builds == {f"{name}-asm", f"{name}-c"}, name
        elif name != "shell":
            assert f"{name}-c" in builds, name
        kernels = {project.variants[project.boots[case].variant].mmu for case in demo.cases}
        assert kernels == {True, False}, f"{name}: honest on both kernels"


def test_a_run_appends_to_its_variants_command_line() -> None:
    project = make_project(PROJECT_ROOT / "build")
    sv39 = project.boots["pagetables-c-mmu-sv39"]
    assert sv39.cmdline == f"{project.variants['mmu'].cmdline} no4lvl"
    assert project.boots["pagetables-c-mmu"].cmdline == ""
    assert sv39.shows.startswith("no4lvl on the kernel command line")


def test_doit_reports_a_config_mistake_in_one_line_with_exit_2(tmp_path: Path) -> None:
    overlay = _overlay(tmp_path, '[demos.x.builds.asm]\ninit = ["x.S"]\n')
    result = run_doit(["list"], {"MMULAB_CONFIG_OVERLAY": str(overlay), "MMULAB_BUILD_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"mmulab: error: {overlay}/demos.toml: demos.x.builds.asm.init: {overlay}/x.S: no such file"
    ]


def test_busybox_builds_pack_a_script_and_files(tmp_path: Path) -> None:
    project = make_project(tmp_path / "build")
    shell = project.builds["shell-busybox"]
    assert shell.busybox and shell.programs() == []
    assert dict(shell.files) == {
        "init": PROJECT_ROOT / "initsrc" / "shell" / "init.sh",
        "etc/mmulab/check.sh": PROJECT_ROOT / "initsrc" / "shell" / "check.sh",
    }


def test_expected_panic_runs_and_trap_watching(tmp_path: Path) -> None:
    overlay = _overlay(
        tmp_path,
        '[demos.hog.builds.asm]\ninit = ["hog.S"]\n'
        '[demos.hog.runs.nommu]\nexpect = "panic"\ntraps = true\n'
        'must = ["no killable processes", "Kernel panic - not syncing: System is deadlocked on memory"]\n'
        '[demos.hog.runs.mmu]\nexpect = "panic"\nmust = ["Kernel panic"]\nmust_not = ["Oops"]\n',
        "hog.S",
    )
    project = make_project(tmp_path / "build", config_overlay=overlay)
    panic = project.boots["hog-asm-nommu"]
    assert (panic.expect, panic.traps) == ("panic", True)
    defaults = project.boots["fork-c-nommu"].must_not
    assert "Kernel panic" in defaults and "Oops" in defaults and not project.boots["fork-c-nommu"].traps
    assert panic.must_not == tuple(line for line in defaults if line != "Kernel panic")
    assert project.boots["hog-asm-mmu"].must_not == ("Oops",)  # said outright: kept as said
    (overlay / "demos.toml").write_text(
        '[demos.hog.builds.asm]\ninit = ["hog.S"]\n[demos.hog.runs.nommu]\nexpect = "panic"\n'
        'must = ["Kernel panic"]\nmust_not = ["Kernel panic"]\n'
    )
    with pytest.raises(UserError, match=r"runs\.nommu\.must_not: 'Kernel panic' forbids the panic this run expects"):
        make_project(tmp_path / "build", config_overlay=overlay)
    (overlay / "demos.toml").write_text(
        '[demos.hog.builds.asm]\ninit = ["hog.S"]\n[demos.hog.runs.nommu]\nexpect = "panic"\nmust = ["oom"]\n'
    )
    with pytest.raises(UserError, match=r"demos\.hog\.runs\.nommu\.must: a boot expected to panic must print "):
        make_project(tmp_path / "build", config_overlay=overlay)
    (overlay / "demos.toml").write_text(
        '[demos.hog.builds.asm]\ninit = ["hog.S"]\n[demos.hog.runs.nommu]\nmust = ["x"]\ntraps = "yes"\n'
    )
    with pytest.raises(UserError, match=r"demos\.hog\.runs\.nommu\.traps: expected bool, found 'yes'"):
        make_project(tmp_path / "build", config_overlay=overlay)
