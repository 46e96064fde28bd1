"""End to end: build and boot the NOMMU system from pinned sources, then prove the caching is exact."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from subprocess import PIPE

import pytest
from conftest import DOIT, default_root, run_doit
from helpers_pipeline import executed, wait_for

from mmulab.core.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow
DOIT_RUN = [*DOIT, "run"]  # doit's sub-command after -f/-d is taken as a task name: name `run` first


@contextlib.contextmanager
def edited(path: Path, old: str, new: str) -> Iterator[None]:
    """`path` with its first `old` replaced by `new`, restored afterwards: the overlay is shared by the module's
    tests, and each must find it as the fixture made it, whatever ran before."""
    original = path.read_text()
    assert old in original, f"{path}: {old!r} not found"
    path.write_text(original.replace(old, new, 1))
    try:
        yield
    finally:
        path.write_text(original)


MARKERS = [
    "mmulab: parent: shared byte before clone = A",
    "mmulab: parent: shared byte after child exit = B",
    "reboot: Power down",
]


@pytest.fixture(scope="module")
def overlay(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's own demo: a copy of the clone_vm asm init, so the test can edit it."""
    folder = tmp_path_factory.mktemp("overlay")
    (folder / "mine").mkdir()
    shutil.copy(PROJECT_ROOT / "initsrc" / "clone_vm" / "init.S", folder / "mine" / "init.S")
    shutil.copytree(PROJECT_ROOT / "initsrc" / "lib", folder / "lib")
    must = ", ".join(f'"{marker}"' for marker in MARKERS)
    (folder / "demos.toml").write_text(
        f'[demos.mine.builds.asm]\ninit = ["mine/init.S", "lib/rt.S"]\n[demos.mine.runs.nommu]\nmust = [{must}]\n'
    )
    return folder


def test_nommu_boot_shows_the_childs_write_then_caches_every_stage(
    session_build: Path, kernel_tree: Path, overlay: Path
) -> None:
    env = {"MMULAB_BUILD_DIR": str(session_build), "MMULAB_CONFIG_OVERLAY": str(overlay)}
    # This module's other tests may have booted it already (any order): its boot is forgotten, so it runs now.
    assert run_doit(["forget", "smoke:mine-asm-nommu"], env).returncode == 0
    first = run_doit(["boot:nommu"], env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "smoke:mine-asm-nommu" in executed(first.stdout)
    verdict = json.loads((default_root(session_build) / "boots" / "clone_vm-asm-nommu.json").read_text())
    assert (verdict["passed"], verdict["observed"]) == (True, "pass")
    console = (default_root(session_build) / "boots" / "clone_vm-asm-nommu.log").read_text()
    assert "mmulab: parent: shared byte before clone = A" in console
    assert "mmulab: parent: shared byte after child exit = B" in console
    assert "Kernel panic" not in console

    image = default_root(session_build) / "nommu" / "kernel" / "out" / "Image"
    image_mtime = image.stat().st_mtime_ns
    noop = run_doit(["boot:nommu"], env)
    assert noop.returncode == 0
    assert executed(noop.stdout) == []
    assert "-- kernel:nommu" in noop.stdout and "-- smoke:mine-asm-nommu" in noop.stdout

    source = overlay / "mine" / "init.S"
    with edited(source, "clone_vm init started", "clone_vm init started (edited)"):
        rebuilt = run_doit(["boot:nommu"], env)
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert executed(rebuilt.stdout) == ["program:mine-asm", "initramfs:mine-asm-nommu", "smoke:mine-asm-nommu"]
        assert image.stat().st_mtime_ns == image_mtime
        log = (default_root(session_build) / "boots" / "mine-asm-nommu.log").read_text()
        assert "mmulab: clone_vm init started (edited)" in log


def test_a_boot_that_breaks_its_promise_fails_with_a_clear_message(session_build: Path, overlay: Path) -> None:
    env = {"MMULAB_BUILD_DIR": str(session_build), "MMULAB_CONFIG_OVERLAY": str(overlay)}
    source = overlay / "mine" / "init.S"
    with edited(source, "li\tt1, 'B'", "li\tt1, 'C'"):
        broken = run_doit(["demo:mine"], env)
        assert broken.returncode == 1
        assert "Traceback" not in broken.stderr
        assert "mmulab: error: smoke:mine-asm-nommu: boot mine-asm-nommu: FAIL (expected pass, observed incomplete" in (
            broken.stderr
        )
        assert "without printing 'mmulab: parent: shared byte after child exit = B'" in broken.stderr
        assert "mine-asm-nommu  mine  nommu    default  pass      incomplete  FAIL" in broken.stdout
        again = run_doit(["demo:mine"], env)
        assert again.returncode == 1 and "smoke:mine-asm-nommu" in executed(again.stdout)
    fixed = run_doit(["demo:mine"], env)
    assert fixed.returncode == 0, fixed.stderr


def test_three_runs_at_once_after_an_edit_are_serialized_and_all_pass(session_build: Path, overlay: Path) -> None:
    env = {"MMULAB_BUILD_DIR": str(session_build), "MMULAB_CONFIG_OVERLAY": str(overlay)}
    source = overlay / "mine" / "init.S"
    with edited(source, "clone_vm init started", "clone_vm init started (three at once)"):
        runs = [
            subprocess.Popen([*DOIT_RUN, "demo:mine"], env={**os.environ, **env}, stdout=PIPE, stderr=PIPE, text=True)
            for _ in range(3)
        ]
        results = [(run.wait(timeout=600), *run.communicate()) for run in runs]
        after = run_doit(["demo:mine"], env)
    for code, stdout, stderr in results:
        assert code == 0, stderr
        assert "Traceback" not in stderr
        assert "mine-asm-nommu  mine  nommu    default  pass      pass      PASS" in stdout
        assert stdout.rstrip().splitlines()[-2] == "1 passed, 0 failed"
    waited = [stderr for _code, _stdout, stderr in results if "mmulab: waiting for the run holding" in stderr]
    assert len(waited) >= 2, "the runs that started second and third must say that they wait"
    rebuilt = [executed(stdout) for _code, stdout, _stderr in results]
    assert sorted(rebuilt, key=len)[-1] == ["program:mine-asm", "initramfs:mine-asm-nommu", "smoke:mine-asm-nommu"]
    assert sum(1 for tasks in rebuilt if tasks) == 1, "only one run rebuilds; the others find it done"
    assert after.returncode == 0 and executed(after.stdout) == [], after.stderr


# A part of the build directory -> exactly the tasks of `doit demo:mine` that rerun once it is gone: those
# whose target it held (or whose saved state it was), and no task after them, since a rebuilt output has
# the same bytes as before (the build is reproducible) and doit compares file_dep by content.
PARTS = {
    "programs/mine-asm": ["program:mine-asm"],
    "nommu/initramfs": ["initramfs:mine-asm-nommu"],
    "boots": ["smoke:mine-asm-nommu"],
    "reports": [],  # the run's summary, rewritten at the end of every run
    "nommu/kernel/obj": [],  # the kernel image is still there: nothing needs the object directory
    "sources/linux.fetched.json": ["fetch:linux"],  # refetched from the download cache; no re-extraction
    ".tool-versions.json": [],  # the versions are read again, and are the same
    # Every task keyed by its inputs (InputsUnchanged) has no saved digest left; extract:linux is checked
    # against its own record, so the kernel tree is not unpacked again.
    ".doit.db": [
        "fetch:linux",
        "kconfig:nommu",
        "kernel:nommu",
        "program:mine-asm",
        "initramfs:mine-asm-nommu",
        "smoke:mine-asm-nommu",
    ],
}


@pytest.mark.parametrize("part", PARTS)
def test_removing_part_of_the_build_directory_rebuilds_what_needs_it(
    session_build: Path, overlay: Path, part: str
) -> None:
    env = {"MMULAB_BUILD_DIR": str(session_build), "MMULAB_CONFIG_OVERLAY": str(overlay)}
    before = run_doit(["demo:mine"], env)  # whatever ran before in this session: everything up to date first
    assert before.returncode == 0, before.stderr
    # doit's database is one file or several (.dat/.dir/.bak with Python's dumb dbm): all of them go
    root = default_root(session_build)
    removed = sorted(root.glob(f"{part}*")) if part == ".doit.db" else [root / part]
    assert removed and all(path.exists() for path in removed), f"{part} should exist after the earlier builds"
    for path in removed:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    rerun = run_doit(["demo:mine"], env)
    assert rerun.returncode == 0, rerun.stderr
    assert "Traceback" not in rerun.stderr
    assert sorted(executed(rerun.stdout)) == sorted(PARTS[part]), rerun.stdout
    if part != "nommu/kernel/obj":
        assert any(path.exists() for path in removed), f"{part} was not rebuilt"


# The cross compiler, held at its first compile of a C file until the test says go: the build is then surely in
# make when Ctrl-C comes, however warm the compile cache and fast the host.
HELD_COMPILER = """#!/bin/sh
for arg in "$@"; do
  case "$arg" in
    *.c) if [ -f "$arg" ] && [ ! -e "$MMULAB_TEST_GATE/go" ]; then
           touch "$MMULAB_TEST_GATE/held"
           while [ ! -e "$MMULAB_TEST_GATE/go" ]; do sleep 0.05; done
         fi ;;
  esac
done
exec "$MMULAB_TEST_REAL_CC" "$@"
"""


@contextlib.contextmanager
def held_kernel_build(tmp_path: Path, kernel_tree: Path) -> Iterator[tuple[subprocess.Popen[str], Path, Path]]:
    """`doit kernel:nommu` in its own session with its cross compiler held (the run, its build dir, the gate
    folder: `held` appears when make waits in the compiler, `go` lets it on). Ended however the test ends."""
    from mmulab.project.loader import load_project

    compiler = f"{load_project().toolchain.cross_prefix}gcc"
    real = shutil.which(compiler)
    assert real, f"{compiler} is not on PATH"
    wrappers, gate, build = tmp_path / "bin", tmp_path / "gate", tmp_path / "build"
    wrappers.mkdir()
    gate.mkdir()
    (wrappers / compiler).write_text(HELD_COMPILER)
    (wrappers / compiler).chmod(0o755)
    env = {
        **os.environ,
        "MMULAB_BUILD_DIR": str(build),
        "LINUX_SRC": str(kernel_tree),
        "MMULAB_CCACHE": "0",  # a compile cache hit would never call the compiler
        "PATH": f"{wrappers}:{os.environ['PATH']}",
        "MMULAB_TEST_GATE": str(gate),
        "MMULAB_TEST_REAL_CC": real,
    }
    run = subprocess.Popen(
        [*DOIT_RUN, "kernel:nommu"], env=env, stdout=PIPE, stderr=PIPE, text=True, start_new_session=True
    )
    try:
        yield run, build, gate
    finally:
        (gate / "go").touch()
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
        run.communicate()


def test_ctrl_c_during_a_kernel_build_prints_one_line_exits_130_and_leaves_no_process(
    tmp_path: Path, kernel_tree: Path
) -> None:
    from mmulab.core.paths import Layout, series_root

    with held_kernel_build(tmp_path, kernel_tree) as (run, build, gate):
        wait_for(gate / "held", run, deadline=1200)  # make is in the compiler, held there: the build cannot end
        os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C on a terminal does: the whole foreground group
        _stdout, stderr = run.communicate(timeout=60)
    assert run.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "mmulab: interrupted: rerun to continue"
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    kernel_dir = Layout(series_root(build, "", user_tree=True)).kernel_dir("nommu")
    leftovers = [
        p
        for p in Path("/proc").glob("[0-9]*")
        if str(kernel_dir) in _cmdline(p) or str(tmp_path / "bin") in _cmdline(p)
    ]
    assert leftovers == [], "make or a compiler survived the interrupt"
    assert not Layout(series_root(build, "", user_tree=True)).kernel_output("nommu", "Image").exists(), (
        "nothing half-built is published"
    )


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
