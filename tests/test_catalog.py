"""The demo catalogue (docs/demos.md) is rendered from configs/demos.toml, and the committed copy is that render."""

from __future__ import annotations

import textwrap
from pathlib import Path

from mmulab.core.settings import Settings
from mmulab.project import catalog
from mmulab.project.loader import load_project


def test_committed_catalogue_is_what_the_data_renders():
    rendered = catalog.render(load_project())
    committed = catalog.CATALOG.read_text()
    assert committed == rendered, "docs/demos.md is stale: run `doit catalog` and commit it"


def test_catalogue_lists_every_demo_run_and_marker():
    project = load_project()
    text = catalog.render(project)
    for name, demo in project.demos.items():
        assert f"## {name}\n" in text
        for case in demo.cases:
            for line in project.boots[case].must:
                assert f"`{line}`" in text, (case, line)
    # a run's command-line addition and a QEMU option set are shown as what they add
    assert "| `mmu-sv39` | mmu |  | `no4lvl` |" in text
    assert "| `mmu-mmu-off` | mmu | `-cpu rv64,mmu=off` |" in text


def test_a_users_demo_appears_in_the_catalogue(tmp_path: Path, monkeypatch):
    (tmp_path / "hello.S").write_text(".globl _start\n_start:\n")
    (tmp_path / "demos.toml").write_text(
        textwrap.dedent(
            """
            [demos.hello]
            description = "a demo of my own"
            [demos.hello.builds.asm]
            init = ["hello.S"]
            [demos.hello.runs.nommu]
            shows = "that it boots"
            must = ["hello | world"]
            """
        )
    )
    monkeypatch.setenv("MMULAB_CONFIG_OVERLAY", str(tmp_path))
    text = catalog.render(load_project(Settings.from_environment()))
    assert "| [`hello`](#hello) | a demo of my own | nommu |" in text
    assert "| `nommu` | nommu |  |  | pass | that it boots |" in text
    assert "1. `hello | world`" in text
