"""End to end: build and boot the NOMMU system from pinned sources, then prove the caching is exact."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import run_doit

from mmulab.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow


def executed(output: str) -> list[str]:
    """Tasks doit ran (".  name"), as opposed to skipped as up to date ("-- name")."""
    return [line[3:].strip() for line in output.splitlines() if line.startswith(".  ")]


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
    first = run_doit(["boot:nommu"], env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "smoke:mine-asm-nommu" in executed(first.stdout)
    verdict = json.loads((session_build / "boots" / "clone_vm-asm-nommu.json").read_text())
    assert (verdict["passed"], verdict["observed"]) == (True, "pass")
    console = (session_build / "boots" / "clone_vm-asm-nommu.log").read_text()
    assert "mmulab: parent: shared byte before clone = A" in console
    assert "mmulab: parent: shared byte after child exit = B" in console
    assert "Kernel panic" not in console

    image = session_build / "nommu" / "kernel" / "out" / "Image"
    image_mtime = image.stat().st_mtime_ns
    noop = run_doit(["boot:nommu"], env)
    assert noop.returncode == 0
    assert executed(noop.stdout) == []
    assert "-- kernel:nommu" in noop.stdout and "-- smoke:mine-asm-nommu" in noop.stdout

    source = overlay / "mine" / "init.S"
    source.write_text(source.read_text().replace("clone_vm init started", "clone_vm init started (edited)"))
    edited = run_doit(["boot:nommu"], env)
    assert edited.returncode == 0, edited.stderr
    assert executed(edited.stdout) == ["program:mine-asm", "initramfs:mine-asm-nommu", "smoke:mine-asm-nommu"]
    assert image.stat().st_mtime_ns == image_mtime
    assert "mmulab: clone_vm init started (edited)" in (session_build / "boots" / "mine-asm-nommu.log").read_text()


def test_a_boot_that_breaks_its_promise_fails_with_a_clear_message(session_build: Path, overlay: Path) -> None:
    env = {"MMULAB_BUILD_DIR": str(session_build), "MMULAB_CONFIG_OVERLAY": str(overlay)}
    source = overlay / "mine" / "init.S"
    original = source.read_text()
    source.write_text(original.replace("li\tt1, 'B'", "li\tt1, 'C'"))
    try:
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
    finally:
        source.write_text(original)
    fixed = run_doit(["demo:mine"], env)
    assert fixed.returncode == 0, fixed.stderr
