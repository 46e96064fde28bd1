"""Configuration data: mistakes are one line naming file and field; a user's overlay adds demos."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import make_project, run_doit

from mmulab.errors import UserError
from mmulab.settings import PROJECT_ROOT


def copied_configs(tmp_path: Path) -> Path:
    configs = tmp_path / "configs"
    shutil.copytree(PROJECT_ROOT / "configs", configs)
    shutil.copytree(PROJECT_ROOT / "initsrc", tmp_path / "initsrc")
    return configs


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        (
            "sources.toml",
            'sha256 = "c92591d8',
            'sha256 = "C92591D8',
            r"configs/sources\.toml: sources\.linux\.sha256: .* is not a lowercase 64-digit sha256",
        ),
        (
            "sources.toml",
            'kind = "url"',
            'kind = "ftp"',
            r"sources\.toml: sources\.linux\.origins\[0\]\.kind: 'ftp' is not one of url, debian-source, local-file",
        ),
        (
            "variants.toml",
            'base_config = "nommu_virt_defconfig"\n',
            "",
            r"variants\.toml: variants\.nommu\.base_config: missing \(e\.g\. base_config = \"tinyconfig\"\)",
        ),
        ("variants.toml", "mmu = false", 'mmu = "no"', r"variants\.nommu\.mmu: expected bool, found 'no'"),
        (
            "boots.toml",
            'variant = "nommu"',
            'variant = "nomu"',
            r"boots\.toml: boots\.clone_vm-nommu\.variant: 'nomu' is not a variant in configs/variants\.toml",
        ),
        (
            "programs.toml",
            '"initsrc/clone_vm/init.S"',
            '"initsrc/nope.S"',
            r"programs\.clone_vm\.sources: .*initsrc/nope\.S: no such file",
        ),
        ("boots.toml", "[defaults]", "[defaults", r"boots\.toml: invalid TOML: "),
    ],
)
def test_mistakes_name_file_and_field(tmp_path: Path, file: str, old: str, new: str, message: str) -> None:
    configs = copied_configs(tmp_path)
    path = configs / file
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new, 1))
    with pytest.raises(UserError, match=message):
        make_project(tmp_path / "build", configs_dir=configs)


def test_overlay_adds_a_users_own_init_program_and_boot(tmp_path: Path) -> None:
    overlay = tmp_path / "mine"
    overlay.mkdir()
    (overlay / "hello.S").write_text("# my init\n")
    (overlay / "programs.toml").write_text('[programs.hello]\nlanguage = "asm"\nsources = ["hello.S"]\n')
    (overlay / "boots.toml").write_text(
        '[boots.hello-nommu]\nvariant = "nommu"\nprogram = "hello"\nmust = ["hello"]\ntimeout = 5\n'
    )
    project = make_project(tmp_path / "build", config_overlay=overlay)
    assert project.programs["hello"].sources == ((overlay / "hello.S").resolve(),)
    assert project.boots["hello-nommu"].timeout == 5
    assert "clone_vm" in project.programs and "clone_vm-nommu" in project.boots
    assert project.boots["hello-nommu"].must_not == project.boots["clone_vm-nommu"].must_not


def test_doit_reports_a_config_mistake_in_one_line_with_exit_2(tmp_path: Path) -> None:
    overlay = tmp_path / "mine"
    overlay.mkdir()
    (overlay / "boots.toml").write_text('[boots.x]\nvariant = "nommu"\nprogram = "missing"\nmust = ["x"]\n')
    result = run_doit(["list"], {"MMULAB_CONFIG_OVERLAY": str(overlay), "MMULAB_BUILD_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"mmulab: error: {overlay}/boots.toml: boots.x.program: 'missing' is not a program in configs/programs.toml"
    ]
