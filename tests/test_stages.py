"""Stage functions driven through a fake runner (kunit_tool's habit): the orchestration of each stage is
tested in milliseconds, without make or a compiler; the slow tests run the real tools."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import LazyProject

from mmulab.build import kernel, kernelconfig
from mmulab.core.errors import UserError
from mmulab.core.tools import Runner
from mmulab.kconfig import dotconfig

PROJECT = LazyProject()


class FakeRunner(Runner):
    """Records every command; `behave(argv, env)` plays the tool (makes its files) and returns an exit code."""

    def __init__(self, behave) -> None:
        self.commands: list[list[str]] = []
        self.envs: list[dict[str, str]] = []
        self.behave = behave

    def execute(self, argv, sink, cwd, env, feed, progress):  # type: ignore[override]
        self.commands.append(argv)
        self.envs.append(env)
        sink.write(b"  CC      fake.o\n")
        return self.behave(argv, env)


def objdir_of(argv: list[str]) -> Path:
    return Path(next(a for a in argv if a.startswith("O=")).removeprefix("O="))


def fake_kbuild(argv: list[str], env: dict[str, str]) -> int:
    objdir = objdir_of(argv)
    (objdir / "arch/riscv/boot").mkdir(parents=True, exist_ok=True)
    (objdir / "arch/riscv/boot/Image").write_bytes(b"kernel image")
    (objdir / "System.map").write_text("ffffffff80000000 T _start\n")
    return 0


def request(tmp_path: Path, **changes) -> kernel.KernelBuild:
    config = tmp_path / "config"
    config.write_text("CONFIG_MMU=y\n")
    fields = dict(
        label="nommu",
        source=tmp_path / "linux",
        config=config,
        work=tmp_path / "work",
        toolchain=PROJECT.toolchain,
        jobs=3,
        source_date_epoch=1234,
        progress="off",
    )
    return kernel.KernelBuild(**(fields | changes))


def test_kernel_build_without_an_object_directory_is_a_full_build_not_a_crash(tmp_path: Path) -> None:
    runner = FakeRunner(fake_kbuild)
    built = request(tmp_path)
    assert not built.objdir.exists()
    kernel.build(built, runner)
    (command,) = runner.commands
    assert command[:2] == ["make", "-C"] and command[-2:] == ["-j3", "Image"]
    assert {"ARCH=riscv", "CROSS_COMPILE=riscv64-linux-gnu-", f"O={built.objdir}"} <= set(command)
    assert runner.envs[0]["KBUILD_BUILD_TIMESTAMP"] == "@1234" and runner.envs[0]["SOURCE_DATE_EPOCH"] == "1234"
    assert (built.objdir / ".config").read_text() == "CONFIG_MMU=y\n"
    assert sorted(p.name for p in built.outdir.iterdir()) == ["Image", "System.map", "config"]
    assert (built.outdir / "Image").read_bytes() == b"kernel image"
    assert built.log.read_text().startswith("$ make -C ")


def test_a_failed_kernel_build_names_its_log_and_leaves_the_old_outputs(tmp_path: Path) -> None:
    built = request(tmp_path)
    built.outdir.mkdir(parents=True)
    (built.outdir / "Image").write_bytes(b"previous image")
    with pytest.raises(UserError, match=rf"kernel build nommu failed \(exit 2\); full log: {built.log}"):
        kernel.build(built, FakeRunner(lambda argv, env: 2))
    assert (built.outdir / "Image").read_bytes() == b"previous image"


def test_an_interrupted_kernel_build_copies_nothing(tmp_path: Path) -> None:
    def interrupted(argv: list[str], env: dict[str, str]) -> int:
        fake_kbuild(argv, env)
        raise KeyboardInterrupt

    built = request(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        kernel.build(built, FakeRunner(interrupted))
    assert not built.outdir.exists()


def test_a_tool_that_cannot_start_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "empty-path"
    missing.mkdir()
    monkeypatch.setenv("PATH", str(missing))
    with pytest.raises(UserError) as error:
        Runner().log(tmp_path / "log").run(["riscv64-linux-gnu-gcc", "-c", "x.c"], "compile x.c")
    assert str(error.value) == (
        "compile x.c: cannot run riscv64-linux-gnu-gcc: not found on PATH "
        "(install Debian package gcc-riscv64-linux-gnu; ./setup.sh does)"
    )
    with pytest.raises(UserError, match=r"no-such-tool: not found on PATH \(no package of configs/debian-packages"):
        Runner().log(tmp_path / "log").run(["no-such-tool"], "compile")


def test_kconfig_merges_the_fragment_and_verifies_what_make_left(tmp_path: Path) -> None:
    """make <base> writes a config; the fragment replaces its lines; olddefconfig may drop options."""

    def fake_make(argv: list[str], env: dict[str, str]) -> int:
        config = objdir_of(argv) / ".config"
        if argv[-1] == "nommu_virt_defconfig":
            config.write_text("CONFIG_PRINTK=y\nCONFIG_SWAP=y\n")
        else:  # olddefconfig: SWAP depends on MMU, which the fragment turned off
            config.write_text(config.read_text().replace("CONFIG_SWAP=y", "# CONFIG_SWAP is not set"))
        return 0

    variant = PROJECT.variants["nommu"]
    runner = FakeRunner(fake_make)
    fragment = "# CONFIG_MMU is not set\nCONFIG_PRINTK=y\n"
    final = kernelconfig.configure(
        tmp_path / "linux", tmp_path / "obj", variant, PROJECT.toolchain, fragment, tmp_path / "log", runner
    )
    assert [c[-1] for c in runner.commands] == ["nommu_virt_defconfig", "olddefconfig"]
    assert dotconfig.parse_config(final)["MMU"] == "n"
    with pytest.raises(UserError, match=r"1 requested option\(s\) did not survive olddefconfig:\n  - CONFIG_SWAP=y"):
        kernelconfig.configure(
            tmp_path / "linux",
            tmp_path / "obj",
            variant,
            PROJECT.toolchain,
            fragment + "CONFIG_SWAP=y\n",
            tmp_path / "log",
            runner,
        )
