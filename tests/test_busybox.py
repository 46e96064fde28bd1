"""busybox: its config fragment per variant, verification after oldconfig, and (slow) the interactive
shell driven through a real pty."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import DOIT, make_project, run_doit

from mmulab import busybox, kconfig, toolchain
from mmulab.configdata import load_project
from mmulab.errors import UserError
from mmulab.kconfig_tree import KconfigSource

PROJECT = load_project()
SPEC = PROJECT.toolchain.busybox


def fragment(variant: str, **extra) -> dict[str, str]:
    assert SPEC is not None
    spec = replace(SPEC, kconfig=extra)
    text = busybox.render_fragment(spec, PROJECT.variants[variant], PROJECT.toolchain)
    return kconfig.parse_config(text)


def test_nommu_busybox_uses_hush_vfork_and_proc_self_exe() -> None:
    values = fragment("nommu")
    assert values["NOMMU"] == "y" and values["SH_IS_HUSH"] == "y" and values["HUSH"] == "y"
    assert values["FEATURE_PREFER_APPLETS"] == "y"
    assert values["BUSYBOX_EXEC_PATH"] == '"/proc/self/exe"'
    assert "ASH" not in values


def test_mmu_busybox_uses_ash_and_both_link_static_pie_against_the_sysroot() -> None:
    values = fragment("mmu")
    assert values["NOMMU"] == "n" and values["SH_IS_ASH"] == "y" and values["ASH_JOB_CONTROL"] == "y"
    for variant in ("mmu", "nommu"):
        ldflags = fragment(variant)["EXTRA_LDFLAGS"]
        assert "-static-pie" in ldflags and "--no-dynamic-linker" in ldflags and "-B{sysroot}/lib/" in ldflags


def test_merge_replaces_rather_than_appends() -> None:
    merged = kconfig.merge("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=1\n", "CONFIG_B=y\n# CONFIG_A is not set\n")
    assert kconfig.parse_config(merged) == {"A": "n", "B": "y", "C": "1"}
    assert merged.count("CONFIG_A") == 1 and merged.count("CONFIG_B") == 1


def test_applet_links_are_relative_paths(tmp_path: Path) -> None:
    links = tmp_path / "busybox.links"
    links.write_text("/bin/sh\n/sbin/poweroff\n/usr/bin/free\n/bin/sh\n")
    assert busybox.applet_links(links) == ["bin/sh", "sbin/poweroff", "usr/bin/free"]


@pytest.fixture(scope="module")
def busybox_tree(session_build: Path) -> Path:
    result = run_doit(["extract:busybox"], {"MMULAB_BUILD_DIR": str(session_build)})
    assert result.returncode == 0, result.stderr
    return session_build / "src" / "busybox"


@pytest.mark.slow
def test_dropped_busybox_option_fails_by_name(tmp_path: Path, busybox_tree: Path) -> None:
    assert SPEC is not None
    spec = replace(SPEC, kconfig={"ASH": True})
    project = make_project(tmp_path)
    text = toolchain.resolve(
        busybox.render_fragment(spec, project.variants["nommu"], project.toolchain),
        project.toolchain,
        tmp_path / "sysroot",
    )
    objdir = tmp_path / "obj"
    with pytest.raises(UserError) as error:
        kconfig.apply_fragment(
            ["make", "-C", str(busybox_tree), f"O={objdir}"],
            objdir,
            spec.base_config,
            text,
            tmp_path / "log",
            "busybox config nommu",
            ["oldconfig"],
            KconfigSource((objdir, busybox_tree), "Config.in"),
        )
    message = str(error.value)
    assert message.startswith("busybox config nommu: 1 requested option(s) did not survive oldconfig:")
    assert "CONFIG_ASH=y requested, but the final .config has # CONFIG_ASH is not set" in message
    assert "unmet 'depends on !NOMMU'" in message and "NOMMU=y" in message


def read_until(fd: int, pattern: str, timeout: float, seen: list[str]) -> str:
    """Read the pty until `pattern` (a regex) shows up in everything read so far; fail at the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen.append(chunk.decode(errors="replace"))
            if re.search(pattern, "".join(seen)):
                return "".join(seen)
    raise AssertionError(f"never saw {pattern!r}; last output:\n{''.join(seen)[-2000:]}")


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["nommu", "mmu"])
def test_interactive_shell_through_a_pty(variant: str, session_build: Path) -> None:
    env = {**os.environ, "MMULAB_BUILD_DIR": str(session_build)}
    built = run_doit(
        [f"initramfs:shell-busybox-{variant}", f"kernel:{variant}"], {"MMULAB_BUILD_DIR": str(session_build)}
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [*DOIT, f"shell:{variant}"], stdin=terminal, stdout=terminal, stderr=terminal, env=env, start_new_session=True
    )
    os.close(terminal)
    seen: list[str] = []
    try:
        read_until(controller, r"'exit' powers off", 60, seen)
        read_until(controller, r"[#$] $", 30, seen)
        os.write(controller, b"echo answer-$((6 * 7)) from $(uname -m)\r")
        read_until(controller, r"answer-42 from riscv64", 30, seen)
        os.write(controller, b"exit\r")
        read_until(controller, r"reboot: Power down", 30, seen)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        os.close(controller)
    assert "Kernel panic" not in "".join(seen)
