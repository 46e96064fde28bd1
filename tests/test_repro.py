"""`doit repro`'s orchestration, with a stand-in for the two `doit all` builds: where each build goes (the second
outside the checkout), which one compiles through the compile cache, what is compared and what is kept."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import default_root

from mmulab.core.doitcli import doit_argv
from mmulab.core.settings import PROJECT_ROOT, Settings
from mmulab.project.loader import load_project
from mmulab.release import repro


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "system-tmp"))
    (tmp_path / "system-tmp").mkdir()
    monkeypatch.setattr(repro, "release_files", lambda project, layout: fake_release(layout.root))
    return load_project(Settings.from_environment({"MMULAB_BUILD_DIR": str(tmp_path / "build")}))


def fake_release(build_dir: Path) -> dict[str, Path]:
    return {path.relative_to(build_dir).as_posix(): path for path in sorted(build_dir.rglob("*")) if path.is_file()}


def fake_build(image: dict[bool, bytes], seen: list[repro.Environment]):
    """Writes a kernel and a console: the kernel's bytes depend only on whether the compile cache was on."""

    def build(project, env: repro.Environment, log_dir: Path) -> str:
        seen.append(env)
        root = default_root(env.build_dir)  # where the build's kernel series puts its outputs
        (root / "nommu").mkdir(parents=True)
        (root / "nommu" / "Image").write_bytes(image[env.ccache])
        (root / "boots").mkdir()
        (root / "boots" / "x.log").write_text(f"a console from {env.name}\n")  # volatile
        return env.name

    return build


def test_the_second_build_is_outside_the_checkout_through_the_cache_and_removed_when_equal(project) -> None:
    root = project.settings.build_dir / "repro"
    seen: list[repro.Environment] = []
    differences = repro.run(project, root, fake_build({False: b"kernel", True: b"kernel"}, seen))
    assert differences == []
    first, second = seen
    assert (first.ccache, second.ccache) == (False, True)
    assert first.build_dir.is_relative_to(root)
    assert not second.build_dir.is_relative_to(PROJECT_ROOT) and not second.build_dir.is_relative_to(root)
    assert second.build_dir.is_relative_to(tempfile.gettempdir())
    assert len(second.build_dir.parts) > len(first.build_dir.parts)
    assert (first.umask, first.timezone) != (second.umask, second.timezone)
    report = json.loads((root / "report.json").read_text())
    assert report["files_compared"] == 1 and report["differences"] == [] and report["kept"] == ""
    assert "ccache off" in report["builds"][0] and "ccache on" in report["builds"][1]
    assert not repro.outside_folder(root).exists()


def test_bytes_the_cache_changed_are_named_and_the_outside_build_kept(project) -> None:
    root = project.settings.build_dir / "repro"
    seen: list[repro.Environment] = []
    differences = repro.run(project, root, fake_build({False: b"kernel", True: b"kernel from the cache"}, seen))
    assert [d.path for d in differences] == ["nommu/Image"]
    report = json.loads((root / "report.json").read_text())
    assert report["kept"] == str(seen[1].build_dir)
    assert (default_root(seen[1].build_dir) / "nommu" / "Image").is_file()


def test_each_build_runs_doit_all_with_its_cache_setting(project, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def call(command, env, stdout, stderr, umask):
        calls.append((command, env, umask))
        return 0

    monkeypatch.setattr(subprocess, "call", call)
    root = project.settings.build_dir / "repro"
    root.mkdir(parents=True)
    for env in repro.environments(root, repro.outside_folder(root)):
        repro._build(project, env, root)
    assert [c[1]["MMULAB_CCACHE"] for c in calls] == ["0", "1"]
    assert [c[0][-1] for c in calls] == ["all", "all"]
    assert [c[0] for c in calls] == [doit_argv(["run", "all"])] * 2  # the pipeline's one doit command line
    assert [c[2] for c in calls] == [0o022, 0o077]
    assert [Path(c[1]["MMULAB_BUILD_DIR"]) for c in calls] == [
        env.build_dir for env in repro.environments(root, repro.outside_folder(root))
    ]
