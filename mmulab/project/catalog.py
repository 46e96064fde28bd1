"""The demo catalogue (docs/demos.md), rendered from configs/demos.toml so the documentation cannot drift.

What each demo shows, on which kernel, with which QEMU options and command line, and the console lines its
verdict requires: all of it is the data the boots are judged by. `doit catalog` writes the file; a test
fails when the committed copy differs from what the data renders.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmulab.core import templates
from mmulab.core.settings import PROJECT_ROOT
from mmulab.project.model import BootCase, Project

TEMPLATE = PROJECT_ROOT / "configs" / "catalog" / "demos.md.j2"
CATALOG = PROJECT_ROOT / "docs" / "demos.md"


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
class DemoEntry:
    name: str
    description: str
    builds: tuple[tuple[str, tuple[str, ...]], ...]
    runs: tuple[RunEntry, ...]


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


def entries(project: Project) -> list[DemoEntry]:
    """The catalogue's content: every demo in configs/demos.toml order, its builds and its runs."""
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
        result.append(DemoEntry(name, demo.description, tuple(build_sources), runs))
    return result


def render(project: Project, template: Path = TEMPLATE) -> str:
    """docs/demos.md as text."""

    env = templates.environment(template.parent)
    env.filters["cell"] = lambda text: str(text).replace("|", "\\|")
    return env.get_template(template.name).render(demos=entries(project), variants=project.variants)
