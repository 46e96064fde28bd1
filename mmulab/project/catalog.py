"""The demo catalogue (docs/demos.md), rendered from configs/demos.toml so the documentation cannot drift.

What each demo shows, on which kernel, with which QEMU options and command line, and the console lines its
verdict requires: all of it is the data the boots are judged by. `doit catalog` writes the file; a test
fails when the committed copy differs from what the data renders. A demo that declares charts shows the
committed example images `docs/charts/<case>.svg` of its cases side by side (drawn by `doit catalog --from
<build dir>` from a real run's consoles; this module only finds them: drawing is the boot stage's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mmulab.core import templates
from mmulab.core.settings import PROJECT_ROOT
from mmulab.project.model import BootCase, Project

TEMPLATE = PROJECT_ROOT / "configs" / "catalog" / "demos.md.j2"
CATALOG = PROJECT_ROOT / "docs" / "demos.md"
CHARTS = CATALOG.parent / "charts"  # the committed example images, one per case: <case>.svg


@dataclass(frozen=True)
class RunEntry:
    """One run of a demo as the catalogue shows it (the same for every build of the demo)."""

    name: str
    variant: str
    qemu: str
    qemu_args: str
    cmdline: str
    expect: str
    shows: str
    must: tuple[str, ...]
    must_not: tuple[str, ...]


@dataclass(frozen=True)
class ChartImage:
    """One case's example chart as the catalogue shows it: the case, its kernel, the image relative to docs/."""

    case: str
    variant: str
    path: str


@dataclass(frozen=True)
class DemoEntry:
    name: str
    description: str
    builds: tuple[tuple[str, tuple[str, ...]], ...]
    runs: tuple[RunEntry, ...]
    charts: tuple[str, ...] = ()  # the titles of the charts it declares
    images: tuple[ChartImage, ...] = ()  # its cases' example charts, in case order
    answers: tuple[str, ...] = ()  # the lecture's questions it answers


def _relative(path: Path) -> str:
    try:
        return path.relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return path.name


def _run(project: Project, case: BootCase) -> RunEntry:
    variant = project.variants[case.variant]
    cmdline = case.cmdline or variant.cmdline
    added = cmdline[len(variant.cmdline) :].strip() if cmdline.startswith(variant.cmdline) else cmdline
    return RunEntry(
        case.run,
        case.variant,
        case.qemu_options,
        " ".join(case.qemu_args),
        added,
        case.expect,
        case.shows,
        case.must,
        case.must_not,
    )


def chart_case(case: str) -> str:
    """The file name of a case's example chart under docs/charts/."""
    return f"{case}.svg"


def committed_images(project: Project, charts_dir: Path = CHARTS) -> dict[str, Path]:
    """The example chart of every case of a demo that declares charts, where one is committed."""
    return {
        case: charts_dir / chart_case(case)
        for demo in project.demos.values()
        if demo.charts
        for case in demo.cases
        if (charts_dir / chart_case(case)).is_file()
    }


def entries(project: Project, images: Mapping[str, Path] | None = None) -> list[DemoEntry]:
    """The catalogue's content: every demo in configs/demos.toml order, its builds, its runs and its cases'
    example charts (`images`, case -> file; by default the committed ones)."""
    images = committed_images(project) if images is None else images
    result = []
    for name, demo in project.demos.items():
        cases = [project.boots[case] for case in demo.cases]
        builds = {case.build: project.builds[case.build] for case in cases}
        build_sources = []
        for build in builds.values():
            programs = [project.programs[p] for p in build.programs()]
            sources = [_relative(s) for program in programs for s in program.sources]
            sources += [_relative(source) for _path, source in build.files]
            build_sources.append((build.language, tuple(dict.fromkeys(sources))))
        first_build = cases[0].build if cases else ""
        runs = tuple(_run(project, case) for case in cases if case.build == first_build)
        shown = tuple(
            ChartImage(case.name, case.variant, _relative_to_docs(images[case.name]))
            for case in cases
            if case.name in images
        )
        titles = tuple(spec.title for spec in demo.charts.values())
        result.append(DemoEntry(name, demo.description, tuple(build_sources), runs, titles, shown, demo.answers))
    return result


def _relative_to_docs(path: Path) -> str:
    try:
        return path.relative_to(CATALOG.parent).as_posix()
    except ValueError:
        return path.as_posix()


def render(project: Project, template: Path = TEMPLATE, images: Mapping[str, Path] | None = None) -> str:
    """docs/demos.md as text (`images`: case -> example chart; by default the committed ones)."""

    env = templates.environment(template.parent)
    env.filters["cell"] = lambda text: str(text).replace("|", "\\|")
    return env.get_template(template.name).render(demos=entries(project, images), variants=project.variants)
