"""The lecture's questions answered by the demos protect (RISC-V's own protection, PMP) and namespaces (all
seven kinds): their verdicts on recorded consoles of both kernels, which kernels carry their options, and, slow,
`doit demo:protect demo:namespaces` on real boots."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import LazyProject, checkout_configs, default_root, run_doit

from mmulab.boot import judge as boot_judge
from mmulab.boot.symbolize import Resolver, SymbolTable
from mmulab.build import kernelconfig
from mmulab.kconfig import dotconfig

DATA = Path(__file__).parent / "data" / "boots"
PROJECT = LazyProject()
DEMOS = ("protect", "namespaces")
CASES = sorted(case for demo in DEMOS for case in checkout_configs().demos[demo].cases)
KINDS = ("mnt", "pid", "net", "user", "uts", "ipc", "cgroup")
NAMESPACE_OPTIONS = ("USER_NS", "NET", "NET_NS", "SYSVIPC", "IPC_NS", "CGROUPS")


def judge(name: str, lines: list[str], resolver: Resolver | None = None) -> boot_judge.Verdict:
    return boot_judge.judge(PROJECT.boots[name], lines, timed_out=False, exit_code=0, seconds=1, resolver=resolver)


def recorded(name: str) -> list[str]:
    return (DATA / f"{name}.log").read_text().splitlines()


def fragment(variant: str) -> dict[str, str]:
    return dotconfig.parse_config(
        kernelconfig.render_fragment(PROJECT.variants[variant], PROJECT.toolchain, PROJECT.pinned_linux_version())
    )


def test_every_demo_runs_on_both_kernels() -> None:
    for demo in DEMOS:
        variants = {PROJECT.boots[case].variant for case in PROJECT.demos[demo].cases}
        assert {PROJECT.variants[v].mmu for v in variants} == {True, False}, demo


def test_the_kernels_that_run_them_carry_their_options_and_the_tiny_mmu_kernel_does_not() -> None:
    """protect needs kallsyms of data, namespaces the four kinds' options: the NOMMU and mmu-full kernels have them,
    the tiny mmu kernel (which every other demo boots) stays without."""
    for variant in ("nommu", "mmu-full"):
        values = fragment(variant)
        assert values["KALLSYMS_ALL"] == "y", variant
        assert all(values[option] == "y" for option in NAMESPACE_OPTIONS), variant
    tiny = fragment("mmu")
    assert "KALLSYMS_ALL" not in tiny and not any(option in tiny for option in NAMESPACE_OPTIONS)
    protect = {PROJECT.boots[case].variant for case in PROJECT.demos["protect"].cases}
    namespaces = {PROJECT.boots[case].variant for case in PROJECT.demos["namespaces"].cases}
    assert protect == {"nommu", "mmu-full"} and namespaces == {"nommu", "mmu-full", "mmu"}  # mmu: the refusals


@pytest.mark.parametrize("name", CASES)
def test_recorded_console_passes(name: str) -> None:
    verdict = judge(name, recorded(name))
    assert verdict.passed, verdict.summary()


def other_answer(marker: str) -> str | None:
    """The line the program prints for the other answer of a yes/no finding."""
    if marker.endswith(": yes"):
        return marker.removesuffix("yes") + "no"
    if marker.endswith(": no"):
        return marker.removesuffix("no") + "yes"
    return None


@pytest.mark.parametrize("name", CASES)
def test_a_finding_the_program_answered_otherwise_fails_the_boot(name: str) -> None:
    """Every yes/no finding of the program is judged: the same console with the other answer fails, naming it."""
    checks = {marker: other for marker in PROJECT.boots[name].must if (other := other_answer(marker))}
    assert checks, f"{name}: no finding of its program is checked"
    for marker, other in checks.items():
        assert any(marker in line for line in recorded(name)), marker
        verdict = judge(name, [line.replace(marker, other) for line in recorded(name)])
        assert not verdict.passed and marker in verdict.missing, marker


def test_protect_the_store_changes_the_kernel_without_an_mmu_and_faults_with_one() -> None:
    nommu, mmu = "\n".join(recorded("protect-c-nommu")), "\n".join(recorded("protect-c-mmu-full"))
    assert "uname() release after: owned-by-user" in nommu and "Linux version owned-by-user" in nommu
    assert "unhandled signal" not in nommu
    assert "child killed by signal 11 (SIGSEGV)" in mmu and "owned-by-user" not in mmu.split("release after:")[1]
    address = re.search(r"init_uts_ns at (0x[0-9a-f]+)", mmu)
    assert address and int(address[1], 16) >= 0xFFFFFFFF80000000  # the kernel mapping, far from user space


def test_a_user_store_to_kernel_data_is_named_in_the_verdict() -> None:
    """The MMU run's fault touches init_uts_ns + 130 (its release field): the verdict's note says so, from the
    kernel's System.map (here: the address the program found in /proc/kallsyms), as for any other fault."""
    lines = recorded("protect-c-mmu-full")
    address = int(re.search(r"init_uts_ns at (0x[0-9a-f]+)", "\n".join(lines))[1], 16)  # type: ignore[index]
    symbols = SymbolTable.parse(f"{address:016x} D init_uts_ns\n{address + 0x1000:016x} B _end\n")
    verdict = judge("protect-c-mmu-full", lines, Resolver(symbols, {}))
    assert verdict.passed, verdict.summary()
    (note,) = verdict.notes
    assert f"touched {address + 130:#x}" in note and "inside the kernel: init_uts_ns+0x82/0x1000" in note, note
    without = judge("protect-c-mmu-full", lines, Resolver(None, {}))
    assert "inside the kernel" not in without.notes[0]


@pytest.mark.parametrize("name", ["namespaces-c-nommu", "namespaces-c-mmu-full"])
def test_namespaces_every_kind_has_both_views_and_its_own_namespace(name: str) -> None:
    text = "\n".join(recorded(name))
    for kind in KINDS:
        assert f"namespaces: {kind}: child: " in text and f"namespaces: {kind}: parent: " in text, kind
        assert f"namespaces: {kind}: isolated view: yes" in text, kind
        links = re.search(rf"namespaces: {kind}: child in {kind}:\[(\d+)\], parent in {kind}:\[(\d+)\]", text)
        assert links and links[1] != links[2], kind
    assert "isolated kinds: 7 of 7 (mnt pid net user uts ipc cgroup)" in text


def test_namespaces_the_tiny_kernel_refuses_with_the_real_errno() -> None:
    text = "\n".join(recorded("namespaces-c-mmu"))
    refused = (("net", "NEWNET", "NET_NS"), ("user", "NEWUSER", "USER_NS"), ("ipc", "NEWIPC", "IPC_NS"))
    for kind, flag, option in refused:
        assert f"{kind}: clone(CLONE_{flag}) = -1 (EINVAL)" in text
        assert f"built without {option}" in text
    assert "isolated kinds: 3 of 7 (mnt pid uts)" in text


@pytest.mark.slow
def test_doit_demo_protect_and_namespaces_pass_on_real_boots(session_build: Path, kernel_tree: Path) -> None:
    """The real pipeline: both demos build and boot on both kernels and every verdict passes; the MMU run of
    protect names init_uts_ns in its verdict (System.map of the real kernel)."""
    result = run_doit(["demo:protect", "demo:namespaces"], {"MMULAB_BUILD_DIR": str(session_build)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for name in CASES:
        verdict = json.loads((default_root(session_build) / "boots" / f"{name}.json").read_text())
        assert verdict["passed"], verdict
    notes = json.loads((default_root(session_build) / "boots" / "protect-c-mmu-full.json").read_text())["notes"]
    assert any("inside the kernel: init_uts_ns+0x82/" in note for note in notes), notes
