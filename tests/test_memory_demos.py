"""The memory demos swap, buddy and numa: their verdicts on recorded consoles of both outcomes, and, slow,
five real boots of every case in a row, each of which must pass (no flaky markers)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import LazyProject, checkout_configs, make_project, run_doit

from mmulab.boot import judge as boot_judge
from mmulab.boot import qemu
from mmulab.pipeline.actions import layout_of

DATA = Path(__file__).parent / "data" / "boots"
PROJECT = LazyProject()
DEMOS = ("swap", "buddy", "numa")
CASES = sorted(case for demo in DEMOS for case in checkout_configs().demos[demo].cases)
RUNS = 5


def judge(name: str, lines: list[str]) -> boot_judge.Verdict:
    return boot_judge.judge(PROJECT.boots[name], lines, timed_out=False, exit_code=0, seconds=1)


def recorded(name: str) -> list[str]:
    return (DATA / f"{name}.log").read_text().splitlines()


def test_every_demo_runs_on_both_kernels() -> None:
    for demo in DEMOS:
        variants = {PROJECT.boots[case].variant for case in PROJECT.demos[demo].cases}
        assert {PROJECT.variants[v].mmu for v in variants} == {True, False}, demo


@pytest.mark.parametrize("name", CASES)
def test_recorded_console_passes(name: str) -> None:
    verdict = judge(name, recorded(name))
    assert verdict.passed, verdict.summary()


# What a case's program found, where its markers are not `...: yes` judgements: the marker and the line the
# other finding would print (numa-c-nommu reports facts, ENOSYS and one node, not yes/no answers).
OTHER_FINDING = {
    "numa-c-nommu": {
        "mmulab: numa: no /sys/devices/system/node: one node": "mmulab: numa: nodes in /sys/devices/system/node: 2",
        "mmulab: numa: mbind(MPOL_BIND, node 1) = -38 (ENOSYS)": "mmulab: numa: mbind(MPOL_BIND, node 1) = 0",
    },
}


def findings(name: str) -> dict[str, str]:
    """The case's findings: each marker the program judges, with the line of the other answer."""
    must = PROJECT.boots[name].must
    answers = {marker: marker.removesuffix("yes") + "no" for marker in must if marker.endswith(": yes")}
    return answers | OTHER_FINDING.get(name, {})


@pytest.mark.parametrize("name", CASES)
def test_a_check_the_program_answered_no_fails_the_boot(name: str) -> None:
    """Every finding (a `...: yes` marker, or what the program reports instead) is judged: the same console
    showing the other answer must fail, naming the marker. Every case has at least one."""
    checks = findings(name)
    assert checks, f"{name}: no finding of its program is checked"
    for marker, other in checks.items():
        assert marker in PROJECT.boots[name].must, marker
        assert any(marker in line for line in recorded(name)), marker
        lines = [line.replace(marker, other) for line in recorded(name)]
        verdict = judge(name, lines)
        assert not verdict.passed and marker in verdict.missing, marker


def test_the_kernels_differ_where_the_notes_say() -> None:
    """NOMMU: no swap (ENOSYS), a 20 KiB mmap costs 32 KiB untrimmed, one node; MMU: swap, compaction, two nodes."""
    nommu = {demo: "\n".join(recorded(f"{demo}-c-nommu")) for demo in DEMOS}
    mmu = {demo: "\n".join(recorded(f"{demo}-c-mmu-full")) for demo in DEMOS}
    assert "swapon(/dev/ram0) = -38 (ENOSYS)" in nommu["swap"] and "SwapTotal: 0 kB" in nommu["swap"]
    assert "swapon(/dev/zram0) = 0" in mmu["swap"]
    assert "an mmap of 20 KiB costs 32 KiB" in nommu["buddy"] and "MmapCopy" not in mmu["buddy"]
    assert "a 64 KiB request fails although MemFree >= 32 MiB: yes" in nommu["buddy"]
    assert "the 64 KiB request succeeds from scattered frames" in mmu["buddy"]
    assert "one node" in nommu["numa"] and "nodes in /sys/devices/system/node: 2" in mmu["numa"]


@pytest.mark.parametrize(
    ("name", "before", "after"),
    [
        ("swap-c-mmu-full", "every value read back intact: yes", "every value read back intact: no"),
        ("swap-c-mmu-full", "swapon(/dev/zram0) = 0", "swapon(/dev/zram0) = -22 (Invalid argument)"),
        ("buddy-c-nommu", "order>=4 free blocks: 0 while", "order>=4 free blocks: 3 while"),
        ("numa-c-mmu-full", "nodes in /sys/devices/system/node: 2", "nodes in /sys/devices/system/node: 1"),
        ("numa-c-nommu", "mbind(MPOL_BIND, node 1) = -38 (ENOSYS)", "mbind(MPOL_BIND, node 1) = 0"),
    ],
)
def test_a_console_that_shows_the_other_outcome_fails(name: str, before: str, after: str) -> None:
    lines = recorded(name)
    assert any(before in line for line in lines)
    verdict = judge(name, [line.replace(before, after) for line in lines])
    assert not verdict.passed


@pytest.fixture(scope="module")
def built(session_build: Path, kernel_tree: Path) -> Path:
    """The images of every case, built (or found built) by the pipeline in the session's build directory."""
    result = run_doit([f"demo:{demo}" for demo in DEMOS], {"MMULAB_BUILD_DIR": str(session_build)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return session_build


@pytest.mark.slow
@pytest.mark.parametrize("name", CASES)
def test_five_boots_in_a_row_all_pass(built: Path, tmp_path: Path, name: str) -> None:
    """The already-built kernel and image booted RUNS times directly (no rebuild): every boot must pass."""
    project = make_project(built)
    layout = layout_of(project)
    case = project.boots[name]
    variant = project.variants[case.variant]
    kernel = layout.kernel_output(case.variant, project.toolchain.kernel.image)
    command = qemu.qemu_command(
        project.toolchain, variant, kernel, layout.image(case.variant, case.build), case, interactive=False
    )
    verdicts = [qemu.run_captured(command, case, tmp_path / f"{name}-{run}.log") for run in range(RUNS)]
    failures = [v.summary() for v in verdicts if not v.passed]
    assert not failures, "\n".join(failures)
    print(name, "seconds:", [v.seconds for v in verdicts])
