"""Boot verdicts: judged from the console, on recorded real logs and on real processes that hang or panic."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from mmulab import boot
from mmulab.configdata import BootCase, load_project

DATA = Path(__file__).parent / "data"


@pytest.fixture
def case() -> BootCase:
    return load_project().boots["clone_vm-nommu"]


def lines(name: str) -> list[str]:
    return (DATA / name).read_text().splitlines()


def test_recorded_nommu_boot_passes(case: BootCase) -> None:
    verdict = boot.judge(case, lines("nommu-clone_vm-pass.log"), timed_out=False, exit_code=0, seconds=0.4)
    assert verdict.passed and verdict.observed == "pass" and verdict.missing == []


def test_panic_fails_even_though_qemu_exited_zero(case: BootCase) -> None:
    verdict = boot.judge(case, lines("nommu-panic.log"), timed_out=False, exit_code=0, seconds=0.4)
    assert not verdict.passed
    assert verdict.observed == "forbidden-line"
    assert "Kernel panic - not syncing: No working init found" in verdict.reason
    assert "Kernel panic" in verdict.excerpt and "Run /init as init process" in verdict.excerpt
    assert "FAIL" in verdict.summary()


def test_a_boot_that_stops_early_is_a_hang_naming_the_missing_line(case: BootCase) -> None:
    log = lines("nommu-clone_vm-pass.log")
    cut = next(i for i, line in enumerate(log) if "before clone" in line)
    verdict = boot.judge(case, log[: cut + 1], timed_out=True, exit_code=None, seconds=60)
    assert (verdict.passed, verdict.observed) == (False, "hang")
    assert "never saw \"mmulab: child: writing 'B' into the shared byte\"" in verdict.reason
    assert verdict.excerpt.splitlines()[-1].endswith("shared byte before clone = A")


def test_markers_must_come_in_order(case: BootCase) -> None:
    log = [line for line in lines("nommu-clone_vm-pass.log") if "before clone" not in line]
    log.append("mmulab: parent: shared byte before clone = A")
    verdict = boot.judge(case, log, timed_out=False, exit_code=0, seconds=1)
    assert verdict.observed == "incomplete"
    assert verdict.missing == [
        "mmulab: child: writing 'B' into the shared byte",
        "mmulab: parent: shared byte after child exit = B",
        "reboot: Power down",
    ]


def test_wrong_value_is_reported(case: BootCase) -> None:
    log = [line.replace("exit = B", "exit = A") for line in lines("nommu-clone_vm-pass.log")]
    verdict = boot.judge(case, log, timed_out=False, exit_code=0, seconds=1)
    assert not verdict.passed and verdict.missing == ["mmulab: parent: shared byte after child exit = B"]
    assert verdict.observed == "incomplete"


def test_expected_hang_passes_only_when_it_hangs(case: BootCase) -> None:
    hang_case = replace(case, expect="hang", must=("Run /init as init process",))
    log = lines("nommu-clone_vm-pass.log")
    started = log[: next(i for i, line in enumerate(log) if "Run /init" in line) + 1]
    assert boot.judge(hang_case, started, timed_out=True, exit_code=None, seconds=5).passed
    finished = boot.judge(hang_case, lines("nommu-clone_vm-pass.log"), timed_out=False, exit_code=0, seconds=1)
    assert not finished.passed and "expected the boot to hang" in finished.reason
    silent = boot.judge(hang_case, [], timed_out=True, exit_code=None, seconds=5)
    assert not silent.passed and "never printed" in silent.reason


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
