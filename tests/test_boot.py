"""Boot verdicts: judged from the console, on recorded real logs of every case and on real processes
that hang or panic."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from mmulab import boot
from mmulab.configdata import BootCase, load_project

DATA = Path(__file__).parent / "data"
PROJECT = load_project()
CASES = sorted(PROJECT.boots)


def lines(name: str) -> list[str]:
    return (DATA / name).read_text().splitlines()


def recorded(case: str) -> list[str]:
    return lines(f"boots/{case}.log")


def judge_recorded(case: BootCase, log: list[str]) -> boot.Verdict:
    """Judge a log as the harness would have seen it: a hang case ends at its timeout, others exit 0."""
    hung = case.expect == "hang"
    return boot.judge(case, log, timed_out=hung, exit_code=None if hung else 0, seconds=1)


@pytest.fixture
def case() -> BootCase:
    return PROJECT.boots["clone_vm-asm-nommu"]


def test_every_case_has_a_recorded_log() -> None:
    assert sorted(p.stem for p in (DATA / "boots").glob("*.log")) == CASES


@pytest.mark.parametrize("name", CASES)
def test_recorded_log_of_every_case_passes(name: str) -> None:
    verdict = judge_recorded(PROJECT.boots[name], recorded(name))
    assert verdict.passed, verdict.summary()
    assert verdict.observed == PROJECT.boots[name].expect


@pytest.mark.parametrize("name", CASES)
def test_every_case_fails_when_its_last_marker_is_missing(name: str) -> None:
    case = PROJECT.boots[name]
    last = case.must[-1]
    log = [line for line in recorded(name) if last not in line]
    verdict = judge_recorded(case, log)
    assert not verdict.passed
    assert last in verdict.missing


@pytest.mark.parametrize(
    ("name", "other"),
    [
        (f"{demo}-{language}-{variant}", f"{demo}-{language}-{other}")
        for demo in ("addrspace", "fork")
        for language in ("asm", "c")
        for variant, other in (("nommu", "mmu"), ("mmu", "nommu"))
    ]
    + [
        (f"{demo}-c-{variant}", f"{demo}-c-{other}")
        for demo in ("pagetables", "kspace", "oom")
        for variant, other in (("nommu", "mmu"), ("mmu", "nommu"))
    ]
    + [("pagetables-c-mmu", "pagetables-c-mmu-sv39"), ("pagetables-c-mmu-sv39", "pagetables-c-mmu")],
)
def test_isolation_demos_tell_the_kernels_apart(name: str, other: str) -> None:
    """The MMU log fails the NOMMU expectations and the other way round: the demos show the difference."""
    verdict = judge_recorded(PROJECT.boots[name], recorded(other))
    assert not verdict.passed and verdict.missing


def test_slab_shows_the_same_on_both_kernels() -> None:
    """Slab allocation does not depend on the MMU: each kernel's log meets the other's expectations."""
    for variant, other in (("nommu", "mmu"), ("mmu", "nommu")):
        assert judge_recorded(PROJECT.boots[f"slab-c-{variant}"], recorded(f"slab-c-{other}")).passed


def test_asm_and_c_builds_print_the_same_markers() -> None:
    for name, case in PROJECT.boots.items():
        if case.build.endswith("-asm"):
            twin = name.replace("-asm-", "-c-", 1)
            assert judge_recorded(PROJECT.boots[twin], recorded(name)).passed, (name, twin)


def test_panic_fails_even_though_qemu_exited_zero(case: BootCase) -> None:
    verdict = boot.judge(case, lines("nommu-panic.log"), timed_out=False, exit_code=0, seconds=0.4)
    assert not verdict.passed
    assert verdict.observed == "forbidden-line"
    assert "Kernel panic - not syncing: No working init found" in verdict.reason
    assert "Kernel panic" in verdict.excerpt and "Run /init as init process" in verdict.excerpt
    assert "FAIL" in verdict.summary()


def test_a_boot_that_stops_early_is_a_hang_naming_the_missing_line(case: BootCase) -> None:
    log = recorded(case.name)
    cut = next(i for i, line in enumerate(log) if "before clone" in line)
    verdict = boot.judge(case, log[: cut + 1], timed_out=True, exit_code=None, seconds=60)
    assert (verdict.passed, verdict.observed) == (False, "hang")
    assert "never saw \"mmulab: child: writing 'B' into the shared byte\"" in verdict.reason
    assert verdict.excerpt.splitlines()[-1].endswith("shared byte before clone = A")


def test_markers_must_come_in_order(case: BootCase) -> None:
    log = [line for line in recorded(case.name) if "before clone" not in line]
    log.append("mmulab: parent: shared byte before clone = A")
    verdict = boot.judge(case, log, timed_out=False, exit_code=0, seconds=1)
    assert verdict.observed == "incomplete"
    assert verdict.missing == (
        "mmulab: child: writing 'B' into the shared byte",
        "mmulab: parent: shared byte after child exit = B",
        "reboot: Power down",
    )


def test_expected_hang_passes_only_when_it_hangs() -> None:
    hang_case = PROJECT.boots["clone_vm-asm-mmu-mmu-off"]
    assert judge_recorded(hang_case, recorded(hang_case.name)).passed
    finished = boot.judge(hang_case, recorded(hang_case.name), timed_out=False, exit_code=0, seconds=1)
    assert not finished.passed and "expected the boot to hang" in finished.reason
    silent = boot.judge(hang_case, [], timed_out=True, exit_code=None, seconds=5)
    assert not silent.passed and "never printed" in silent.reason
    booted = boot.judge(hang_case, recorded("clone_vm-asm-mmu"), timed_out=True, exit_code=None, seconds=5)
    assert not booted.passed and booted.observed == "forbidden-line"


def fake_case(case: BootCase, timeout: float) -> BootCase:
    return replace(case, must=("start", "done"), timeout=timeout)


def test_real_process_that_hangs_is_killed_at_the_timeout(case: BootCase, tmp_path: Path) -> None:
    started = time.monotonic()
    verdict = boot.run_captured(["sh", "-c", "echo start; exec sleep 60"], fake_case(case, 1.5), tmp_path / "l")
    assert time.monotonic() - started < 10
    assert (verdict.passed, verdict.observed) == (False, "hang")
    assert (tmp_path / "l").read_text().splitlines()[-1] == "start"


def test_real_process_that_panics_is_stopped_at_once(case: BootCase, tmp_path: Path) -> None:
    script = "echo start; echo '[ 0.1] Kernel panic - not syncing: test'; echo trace; exec sleep 60"
    started = time.monotonic()
    verdict = boot.run_captured(["sh", "-c", script], fake_case(case, 50), tmp_path / "l")
    assert time.monotonic() - started < 10
    assert verdict.observed == "forbidden-line" and "trace" in verdict.excerpt


def test_real_process_that_finishes_passes(case: BootCase, tmp_path: Path) -> None:
    verdict = boot.run_captured(["sh", "-c", "echo start; echo done"], fake_case(case, 20), tmp_path / "l")
    assert verdict.passed, verdict.summary()
    failing = boot.run_captured(["sh", "-c", "echo start; echo done; exit 3"], fake_case(case, 20), tmp_path / "l")
    assert (failing.passed, failing.observed) == (False, "qemu-error")
