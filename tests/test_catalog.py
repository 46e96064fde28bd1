"""The demo catalogue (docs/demos.md) is rendered from configs/demos.toml, and the committed copy is that render."""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

import pytest

from mmulab.core.errors import ConfigError
from mmulab.core.settings import Settings
from mmulab.project import catalog
from mmulab.project.loader import load_project

BOOTS = Path(__file__).parent / "data" / "boots"


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


def _overlay_settings(folder: Path, monkeypatch, demos_toml: str) -> Settings:
    """A user's overlay folder holding an empty asm init and `demos_toml`, named by MMULAB_CONFIG_OVERLAY."""
    (folder / "hello.S").write_text(".globl _start\n_start:\n")
    (folder / "demos.toml").write_text(textwrap.dedent(demos_toml))
    monkeypatch.setenv("MMULAB_CONFIG_OVERLAY", str(folder))
    return Settings.from_environment()


def test_a_users_demo_appears_in_the_catalogue(tmp_path: Path, monkeypatch):
    settings = _overlay_settings(
        tmp_path,
        monkeypatch,
        """
            [demos.hello]
            description = "a demo of my own"
            [demos.hello.builds.asm]
            init = ["hello.S"]
            [demos.hello.runs.nommu]
            shows = "that it boots"
            must = ["hello | world"]
            """,
    )
    text = catalog.render(load_project(settings))
    assert "| [`hello`](#hello) | a demo of my own | nommu |" in text
    assert "| `nommu` | nommu |  |  | pass | that it boots |" in text
    assert "1. `hello | world`" in text


def test_every_chart_image_the_catalogue_shows_exists():
    text = catalog.CATALOG.read_text()
    shown = re.findall(r"!\[charts of [^\]]*\]\((charts/[^)]+\.svg)\)", text)
    missing = [path for path in shown if not (catalog.CATALOG.parent / path).is_file()]
    assert missing == [], f"docs/demos.md shows charts that are not committed: {missing}"


def test_every_demo_that_declares_charts_shows_its_chart_in_the_catalogue():
    """The committed examples come from a real run: `doit all`, then `doit catalog --from build/`, commit
    docs/charts/ and docs/demos.md."""
    project = load_project()
    text = catalog.CATALOG.read_text()
    without = []
    for name, demo in project.demos.items():
        images = [case for case in demo.cases if (catalog.CHARTS / catalog.chart_case(case)).is_file()]
        section = text.split(f"\n## {name}\n", 1)[1].split("\n## ", 1)[0]
        if demo.charts and not any(f"](charts/{catalog.chart_case(case)})" in section for case in images):
            without.append(name)
    assert without == [], f"demos that measure but show no chart in docs/demos.md: {without}"


def test_catalog_from_a_build_draws_each_cases_chart(tmp_path: Path, monkeypatch):
    from mmulab.pipeline import actions

    boots = tmp_path / "build" / "boots"
    boots.mkdir(parents=True)
    shutil.copy(BOOTS / "kspace-c-mmu.log", boots)  # a real boot: the kernel's layout lines
    (boots / "slab-c-nommu.log").write_text(
        "mmulab: data: slab dentry before 10\nmmulab: data: slab dentry created 1010\n"
    )
    (boots / "slab-c-mmu.log").write_text("mmulab: slab: no data lines in this one\n")
    monkeypatch.setattr(catalog, "CHARTS", tmp_path / "charts")
    project = load_project()
    written = actions.catalog_charts(project, tmp_path / "build")
    assert sorted(path.name for path in written) == ["kspace-c-mmu.svg", "slab-c-nommu.svg"]
    assert b"slab-c-nommu: nommu kernel" in (tmp_path / "charts" / "slab-c-nommu.svg").read_bytes()
    images = catalog.committed_images(project, tmp_path / "charts")
    text = catalog.render(project, images=images)
    slab = text.split("\n## slab\n", 1)[1].split("\n## ", 1)[0]
    assert "| `slab-c-nommu` (nommu kernel) |" in slab
    assert f"![charts of slab-c-nommu]({tmp_path}/charts/slab-c-nommu.svg)" in slab
    assert "slab-c-mmu.svg" not in slab  # no data line, no chart


def test_catalog_from_a_folder_without_consoles_is_one_line(tmp_path: Path):
    from mmulab.core.errors import UserError
    from mmulab.pipeline import actions

    with pytest.raises(UserError, match=r"^--from .*: no boot consoles in .*/boots \(run doit all there\)$"):
        actions.catalog_charts(load_project(), tmp_path)


def _readme_questions() -> set[tuple[str, str]]:
    """The README's table of the lecture's questions: (question, demo) per row."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    rows = re.findall(r'^\| "(.+?)" \| \[`([a-z_]+)`\]\(docs/demos\.md#\2\) \|', readme, re.M)
    return set(rows)


def test_every_question_of_the_lecture_is_answered_by_a_demo_in_the_catalogue_and_the_readme():
    """configs/demos.toml's `answers` are the one list: the catalogue renders it, and the README's table names the
    same questions with the same demos (issue 20: PMP, namespaces, virtual vs physical, LRU, fork is clone)."""
    project = load_project()
    answered = {(question, name) for name, demo in project.demos.items() for question in demo.answers}
    assert {name for _question, name in answered} >= {"protect", "namespaces", "pagetables", "swap", "fork"}
    text = catalog.render(project)
    for question, name in answered:
        assert f'| "{question}" | [`{name}`](#{name}) |' in text
        assert f"## {name}\n" in text
    assert _readme_questions() == answered


def test_a_demos_answers_must_be_a_list_of_strings(tmp_path: Path, monkeypatch):
    settings = _overlay_settings(
        tmp_path,
        monkeypatch,
        """\
            [demos.mine]
            answers = "Is it?"
            [demos.mine.builds.asm]
            init = ["hello.S"]
            [demos.mine.runs.nommu]
            must = ["hello"]
            """,
    )
    with pytest.raises(ConfigError, match=r"demos\.toml: demos\.mine\.answers: expected list, found 'Is it\?'"):
        load_project(settings)
