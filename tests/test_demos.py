"""End to end: `doit all` builds both kernels, musl, every demo in asm and C, and boots the whole matrix."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import LazyProject, default_root, run_doit
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection
from helpers_pipeline import executed

from mmulab.build import busybox
from mmulab.build import elfcheck as build_elfcheck
from mmulab.core.paths import Layout
from mmulab.core.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow
PROJECT = LazyProject()


@pytest.fixture(scope="module")
def full_run(session_build: Path, kernel_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`doit all` in the session's shared build; its reports are kept (all_reports): any later run there (this
    module's demo:fork, another module's boot:nommu) rewrites build/reports/ with its own cases."""
    result = run_doit(["all"], {"MMULAB_BUILD_DIR": str(session_build)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    shutil.copytree(default_root(session_build) / "reports", _reports_of(tmp_path_factory), dirs_exist_ok=True)
    return session_build, result.stdout


def _reports_of(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "test_demos-all-reports"


@pytest.fixture(scope="module")
def all_reports(full_run: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reports of full_run's `doit all`, as it wrote them."""
    return _reports_of(tmp_path_factory)


def test_every_demo_boots_on_every_variant_as_expected(full_run: tuple[Path, str], all_reports: Path) -> None:
    _, stdout = full_run
    verdicts = {v["case"]: v for v in json.loads((all_reports / "summary.json").read_text())}
    assert set(PROJECT.boots) <= set(verdicts)
    for name, case in PROJECT.boots.items():
        verdict = verdicts[name]
        assert verdict["passed"], verdict
        assert verdict["observed"] == case.expect, name
    assert verdicts["addrspace-c-mmu"]["observed"] == "pass"
    assert verdicts["clone_vm-asm-mmu-mmu-off"]["observed"] == "hang"
    assert f"{len(verdicts)} passed, 0 failed" in stdout


def test_consoles_show_the_difference_between_the_kernels(full_run: tuple[Path, str]) -> None:
    build, _ = full_run
    for language in ("asm", "c"):
        nommu = (default_root(build) / "boots" / f"addrspace-{language}-nommu.log").read_text()
        mmu = (default_root(build) / "boots" / f"addrspace-{language}-mmu.log").read_text()
        assert "mmulab: addrspace: parent: value now 0x3333" in nommu
        assert "mmulab: addrspace: child: read() into that address returned -14" in mmu
        assert "mmulab: addrspace: parent: child killed by signal 11" in mmu
        assert "mmulab: addrspace: parent: value now 0x1111" in mmu
        assert (
            "mmulab: pidns: child sees itself as pid 1"
            in (default_root(build) / "boots" / f"pidns-{language}-mmu.log").read_text()
        )
        fork_nommu = (default_root(build) / "boots" / f"fork-{language}-nommu.log").read_text()
        assert "mmulab: fork: parent byte after child exit = B" in fork_nommu


def test_faults_and_hangs_are_named(full_run: tuple[Path, str], all_reports: Path) -> None:
    """The addrspace child's SIGSEGV names its source line; the MMU kernel without MMU is stuck, named, at once."""
    build, _ = full_run
    verdicts = {v["case"]: v for v in json.loads((all_reports / "summary.json").read_text())}
    for language in ("asm", "c"):
        (note,) = verdicts[f"addrspace-{language}-mmu"]["notes"]
        found = re.search(
            r"SIGSEGV: the store at pc 0x[0-9a-f]+ of addrspace-child, in \S+ at (\S+):(\d+): `(.+)`", note
        )
        assert found, note
        path, line, text = found.groups()
        assert path == f"initsrc/addrspace/child.{'S' if language == 'asm' else 'c'}"
        assert (PROJECT_ROOT / path).read_text().splitlines()[int(line) - 1].strip() == text
        console = (default_root(build) / "boots" / f"addrspace-{language}-mmu.log").read_text()
        kept = re.search(r"mmulab: addrspace: parent keeps 0x1111 at (0x[0-9a-f]+)", console)
        assert kept, console[-2000:]  # the fault is at the very address the parent told the child
        assert f"touched {kept.group(1)} (cause 15: store/AMO page fault)" in note, note
        hang = verdicts[f"clone_vm-{language}-mmu-mmu-off"]  # how fast: bench/, not here
        assert hang["reason"].startswith("hung as expected: stuck after a fault at _start_kernel+0x"), hang
        assert "(cause 1: instruction access fault" in hang["reason"] and "the MMU is off" in hang["reason"]
        assert (default_root(build) / "boots" / f"clone_vm-{language}-mmu-mmu-off.traps").read_text()


def test_junit_report_lists_every_boot(all_reports: Path) -> None:
    suite = ET.parse(all_reports / "summary.xml").getroot()
    names = {case.get("name") for case in suite.iter("testcase")}
    assert set(PROJECT.boots) <= names
    assert suite.get("failures") == "0"


def test_every_program_is_static_pie_and_c_ones_self_relocate(full_run: tuple[Path, str]) -> None:
    build, _ = full_run
    for name, program in PROJECT.programs.items():
        binary = default_root(build) / "programs" / name / name
        assert build_elfcheck.problems(binary, "static-pie") == [], name
        with binary.open("rb") as handle:
            relocations = [
                reloc["r_info_type"]
                for section in ELFFile(handle).iter_sections()
                if isinstance(section, RelocationSection)
                for reloc in section.iter_relocations()
            ]
        if program.language == "c":
            assert relocations and set(relocations) == {build_elfcheck.R_RISCV_RELATIVE}, name
    for variant in PROJECT.variants:
        binary = busybox.output(Layout(default_root(build)), PROJECT.variants[variant])
        assert build_elfcheck.problems(binary, "static-pie") == [], variant


def test_nothing_changed_means_nothing_runs(full_run: tuple[Path, str]) -> None:
    build, _ = full_run
    again = run_doit(["all"], {"MMULAB_BUILD_DIR": str(build)})
    assert again.returncode == 0
    assert executed(again.stdout) == []


def test_busybox_shell_runs_the_check_script_on_both_kernels(full_run: tuple[Path, str]) -> None:
    build, _ = full_run
    nommu = (default_root(build) / "boots" / "shell-busybox-nommu.log").read_text()
    mmu = (default_root(build) / "boots" / "shell-busybox-mmu.log").read_text()
    for console in (nommu, mmu):
        assert "mmulab: shell: pipeline counted 3 words" in console
        assert "mmulab: shell: background job finished with status 0" in console
        assert "MemTotal:" in console
    assert "hush" in busybox.output(Layout(default_root(build)), PROJECT.variants["nommu"], "busybox.links").read_text()
    assert "/bin/busybox" in mmu.split("/proc/self/maps of cat")[1]
    assert "rwxp 00000000 00:00 0" in nommu.split("/proc/self/maps of cat")[1]


def test_editing_the_busybox_init_script_repacks_only_the_initramfs(full_run: tuple[Path, str], tmp_path: Path) -> None:
    build, _ = full_run
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "init.sh").write_text((PROJECT_ROOT / "initsrc" / "shell" / "init.sh").read_text())
    check = PROJECT_ROOT / "initsrc" / "shell" / "check.sh"
    (overlay / "demos.toml").write_text(
        f'[demos.myshell.builds.busybox]\ninit = ["init.sh"]\nfiles = {{ "etc/mmulab/check.sh" = "{check}" }}\n'
        '[demos.myshell.runs.nommu]\nmust = ["mmulab: shell: all checks done", "reboot: Power down"]\n'
    )
    env = {"MMULAB_BUILD_DIR": str(build), "MMULAB_CONFIG_OVERLAY": str(overlay)}
    assert run_doit(["demo:myshell"], env).returncode == 0
    script = overlay / "init.sh"
    script.write_text(script.read_text().replace("mounted", "mounted (edited)"))
    edited = run_doit(["demo:myshell"], env)
    assert edited.returncode == 0, edited.stderr
    assert executed(edited.stdout) == ["initramfs:myshell-busybox-nommu", "smoke:myshell-busybox-nommu"]


def boot_interval(build: Path, case: str) -> tuple[float, float]:
    """When a boot ran, in seconds since the epoch: its verdict is written once the boot has ended (its mtime
    the end), and says how long the boot took (QEMU's start to its end, rounded to 10 ms)."""
    verdict = default_root(build) / "boots" / f"{case}.json"
    end = verdict.stat().st_mtime
    return end - json.loads(verdict.read_text())["seconds"], end


def test_boots_run_in_parallel_processes(full_run: tuple[Path, str], tmp_path: Path) -> None:
    """`doit -n 2`: two boots at once, seen from their own start and end times. The smoke tasks are forgotten
    in the session's shared database and build directory, so both are saved first and put back afterwards."""
    build, _ = full_run
    env = {"MMULAB_BUILD_DIR": str(build)}
    names = PROJECT.demos["fork"].cases
    cases = [f"smoke:{case}" for case in names]
    saved = tmp_path / "saved"
    root = default_root(build)
    kept = [*root.glob(".doit.db*"), *(p for case in names for p in (root / "boots").glob(f"{case}.*"))]
    for path in kept:
        (saved / path.relative_to(build)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, saved / path.relative_to(build))
    try:
        assert run_doit(["forget", *cases], env).returncode == 0
        parallel = run_doit(["-n", "2", "demo:fork"], env)
        assert parallel.returncode == 0, parallel.stderr
        assert sorted(executed(parallel.stdout)) == sorted(cases)
        intervals = {case: boot_interval(build, case) for case in names}
    finally:
        for path in kept:
            shutil.copy2(saved / path.relative_to(build), path)
    overlaps = [
        (first, second, min(intervals[first][1], intervals[second][1]) - max(intervals[first][0], intervals[second][0]))
        for first, second in itertools.combinations(names, 2)
    ]
    # Serial boots cannot overlap by more than the 10 ms the rounding of `seconds` allows.
    assert any(seconds > 0.1 for _, _, seconds in overlaps), intervals
    assert run_doit(["demo:fork"], env).stdout.count("-- smoke:") == len(cases), "the saved state is back"
