"""Kernel configs: rendering from the templates, fragment verification, and (slow) the real olddefconfig."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import make_project, run_doit

from mmulab.build import kernelconfig
from mmulab.core.errors import ConfigError, UserError
from mmulab.kconfig import dotconfig
from mmulab.kconfig import tree as kconfig_tree
from mmulab.project.loader import load_project


def test_nommu_fragment_renders_what_the_nommu_kernel_needs() -> None:
    variant = load_project().variants["nommu"]
    values = dotconfig.parse_config(
        kernelconfig.render_fragment(variant, load_project().toolchain, load_project().pinned_linux_version())
    )
    assert values["MMU"] == "n"
    assert values["BINFMT_ELF_FDPIC"] == "y"
    assert values["BLK_DEV_INITRD"] == "y"
    assert values["SERIAL_8250_CONSOLE"] == "y"
    assert values["POWER_RESET_SYSCON_POWEROFF"] == "y"
    assert values["CMDLINE"] == f'"{variant.cmdline}"'


def test_same_template_renders_an_mmu_variant() -> None:
    variant = replace(
        load_project().variants["nommu"],
        name="mmu",
        mmu=True,
        kconfig={"RISCV_ISA_FALLBACK": True, "LOG_BUF_SHIFT": 14, "LOCALVERSION": 'say "hi"'},
    )
    values = dotconfig.parse_config(
        kernelconfig.render_fragment(variant, load_project().toolchain, load_project().pinned_linux_version())
    )
    assert values["MMU"] == "y" and "BINFMT_ELF_FDPIC" not in values
    assert values["RISCV_ISA_FALLBACK"] == "y"
    assert values["LOG_BUF_SHIFT"] == "14"
    assert values["LOCALVERSION"] == '"say \\"hi\\""'


def test_user_fragment_is_merged_last(tmp_path: Path) -> None:
    fragment = tmp_path / "mine.config"
    fragment.write_text("# mine\n# CONFIG_PRINTK_TIME is not set\nCONFIG_LOG_BUF_SHIFT=13\n")
    project = make_project(tmp_path, user_fragments={"nommu": fragment})
    text = kernelconfig.render_fragment(project.variants["nommu"], project.toolchain, project.pinned_linux_version())
    assert text.rstrip().endswith("CONFIG_LOG_BUF_SHIFT=13")
    assert dotconfig.parse_config(text)["PRINTK_TIME"] == "n"


def test_fragment_with_junk_names_file_and_line(tmp_path: Path) -> None:
    fragment = tmp_path / "bad.config"
    fragment.write_text("CONFIG_OK=y\nPRINTK=y\n")
    with pytest.raises(ConfigError, match=r"bad\.config:2: not a Kconfig line: 'PRINTK=y'"):
        make_project(tmp_path, user_fragments={"nommu": fragment})


def test_verify_names_dropped_and_changed_options() -> None:
    requested = {"A": "y", "B": "n", "C": "14", "D": "y"}
    final = {"A": "y", "C": "15", "B": "n"}
    problems = dotconfig.verify(requested, final)
    assert problems == [
        "CONFIG_C=14 requested, but the final .config has CONFIG_C=15",
        "CONFIG_D=y requested, but the final .config has # CONFIG_D is not set",
    ]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("ARM || ((M68K || RISCV) && !MMU)", 0),
        ("RISCV && !MMU", 0),
        ("RISCV && MMU", 2),
        ("MODS", 1),
        ("!MODS", 1),
        ('ARCH = "riscv"', 2),
        ('ARCH != "riscv"', 0),
        ("(RISCV || ARM) && MMU", 2),
    ],
)
def test_dependency_expressions_use_tristate_logic(expression: str, expected: int) -> None:
    values = {"RISCV": "y", "MMU": "y", "MODS": "m", "ARCH": "riscv"}
    assert kconfig_tree.evaluate(expression, values) == expected


@pytest.mark.slow
def test_dropped_option_fails_naming_it_and_its_unmet_dependency(tmp_path: Path, kernel_tree: Path) -> None:
    project = load_project()
    variant = replace(project.variants["nommu"], kconfig={"SWAP": True, "NO_SUCH_OPTION": True})
    fragment = kernelconfig.render_fragment(variant, load_project().toolchain, load_project().pinned_linux_version())
    with pytest.raises(UserError) as error:
        kernelconfig.configure(kernel_tree, tmp_path / "obj", variant, project.toolchain, fragment, tmp_path / "log")
    message = str(error.value)
    assert message.startswith("kernel config nommu: 2 requested option(s) did not survive olddefconfig:")
    assert "CONFIG_SWAP=y requested, but the final .config has # CONFIG_SWAP is not set" in message
    assert "unmet 'depends on MMU && BLOCK" in message and "MMU=n" in message
    assert "CONFIG_NO_SUCH_OPTION=y requested" in message and "no such Kconfig symbol" in message


@pytest.mark.slow
def test_linux_src_tree_is_built_out_of_tree_and_never_written(tmp_path: Path, kernel_tree: Path) -> None:
    def snapshot() -> dict[str, tuple[int, int]]:
        state = {}
        for root, _dirs, files in os.walk(kernel_tree):
            for name in [*files, *_dirs]:
                info = os.lstat(os.path.join(root, name))
                state[os.path.join(root, name)] = (info.st_mtime_ns, info.st_size)
        return state

    before = snapshot()
    fragment = tmp_path / "extra.config"
    fragment.write_text("CONFIG_LOG_BUF_SHIFT=13\n")
    env = {
        "LINUX_SRC": str(kernel_tree),
        "MMULAB_BUILD_DIR": str(tmp_path / "build"),
        "MMULAB_FRAGMENT_NOMMU": str(fragment),
    }
    result = run_doit(["kconfig:nommu"], env)
    assert result.returncode == 0, result.stderr
    assert "fetch:linux" not in result.stdout and "extract:linux" not in result.stdout
    config = (tmp_path / "build" / "linux-src" / "nommu" / "kernel" / "config").read_text()  # LINUX_SRC's own folder
    assert "CONFIG_LOG_BUF_SHIFT=13" in config and "# CONFIG_MMU is not set" in config
    assert snapshot() == before


def test_srctree_is_relative_to_the_object_directory_unless_only_the_root_is_shared(tmp_path: Path) -> None:
    """Relative: no compile command names the checkout's path (another checkout hits the cache as it is)."""
    source, objdir = tmp_path / "build/src/linux", tmp_path / "build/nommu/kernel/obj"
    source.mkdir(parents=True)
    toolchain = load_project().toolchain
    args = kernelconfig.make_args(source, objdir, toolchain)
    assert "srctree=../../../src/linux" in args and f"O={objdir}" in args
    (tmp_path / "link").symlink_to(source)  # kbuild's final make runs in the real object directory
    assert "srctree=../../../src/linux" in kernelconfig.make_args(tmp_path / "link", objdir, toolchain)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "build/mmu").symlink_to(tmp_path / "elsewhere")  # what a lexical relpath would get wrong
    assert "srctree=../../build/src/linux" in kernelconfig.make_args(source, tmp_path / "build/mmu/obj", toolchain)
    assert kernelconfig.source_tree_arg(Path("/usr/src/linux"), tmp_path / "obj") == []
    # a user's own tree (LINUX_SRC) keeps its absolute path: the same in every build directory, at any depth
    user = kernelconfig.make_args(tmp_path / "mine/linux", objdir, toolchain, user_tree=True)
    assert not any(arg.startswith("srctree=") for arg in user) and f"-C{tmp_path / 'mine/linux'}" in "".join(user)
