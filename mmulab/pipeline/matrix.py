"""`doit matrix`: every variant of every kernel series built, every case booted, and one table of where each stands.

Each series is one ordinary doit run (`doit --continue all` with MMULAB_KERNEL set) in its own folder of the build
directory, so the matrix reuses everything a single-series run cached and vice versa. A cell is read from what that
run left, never from a table written here: the case's verdict (PASS, or FAIL with where it faulted or hung), or,
when the variant's kernel config lost a requested option, **not supported** with the reason read from that tree's
own Kconfig (kconfig/tree.py), or FAIL naming the task that failed before the boot.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from mmulab.boot.judge import Outcome, Verdict
from mmulab.boot.summary import JSON_FILE
from mmulab.build.download import Fetched
from mmulab.core.doitcli import doit_argv
from mmulab.core.errors import ConfigError, UserError
from mmulab.core.fsutil import write_atomic
from mmulab.core.paths import Layout, matrix_reports
from mmulab.pipeline.actions import user_errors
from mmulab.project.model import BootCase, Project

JSON_NAME, XML_NAME, TEXT_NAME = "matrix.json", "matrix.xml", "matrix.txt"
_VERDICT_FIELDS = frozenset(field.name for field in fields(Verdict))
_PROBLEM = re.compile(r"^CONFIG_(\w+)=.*? requested, but the final \.config has [^;(]*(?:[;(] ?(.*?))?\)?$")


class CellState(StrEnum):
    """Where a case stands on a kernel series."""

    PASS = "PASS"
    FAIL = "FAIL"
    UNSUPPORTED = "not supported"
    NOT_RUN = "not run"


@dataclass(frozen=True)
class Cell:
    series: str
    case: str
    state: CellState
    reason: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", CellState(self.state))


@dataclass(frozen=True)
class SeriesRun:
    """One series' run: which point release was built, from where, how it ended and where its output went."""

    series: str
    version: str
    origin: str
    exit_code: int | None
    seconds: float
    log: str


def short_problem(problem: str) -> str:
    """A dropped option as the cell says it: `CONFIG_X: unmet 'depends on ...' at file:line (values)`, without the
    fix hints that follow (the full text is in the kernel config stage's error and in matrix.json)."""
    problem = problem.split(": add CONFIG_", 1)[0]
    match = _PROBLEM.match(problem)
    if not match:
        return problem
    reason = (match.group(2) or "dropped by olddefconfig").rstrip(")")
    return f"CONFIG_{match.group(1)}: {reason}" + (")" if reason.count("(") > reason.count(")") else "")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _needed_tasks(project: Project, case: BootCase) -> list[str]:
    """The tasks a case's boot needs, nearest first: a failure among them is why it did not boot."""
    build = project.builds[case.build]
    return [
        f"kconfig:{case.variant}",
        f"kernel:{case.variant}",
        f"initramfs:{case.build}-{case.variant}",
        *(f"program:{program}" for program in build.programs()),
        f"busybox:{case.variant}",
    ]


def _failure(failed: dict[str, str], tasks: list[str]) -> tuple[str, str] | None:
    for task in tasks:
        if task in failed:
            return task, failed[task]
    shared = sorted(t for t in failed if t.startswith(("libc:", "busybox:", "fetch:", "extract:")))
    return (shared[0], failed[shared[0]]) if shared else None


def series_cells(project: Project, layout: Layout) -> list[Cell]:
    """Every case's cell on `project`'s series, from what its last run left in `layout`."""
    verdicts: dict[str, Verdict] = {}
    for raw in _read_json(layout.reports() / JSON_FILE) or []:
        try:
            known = {key: value for key, value in raw.items() if key in _VERDICT_FIELDS}
            verdict = Verdict(
                **{**known, "missing": tuple(known.get("missing", ())), "notes": tuple(known.get("notes", ()))}
            )
        except (TypeError, ValueError, AttributeError):
            continue
        verdicts[verdict.case] = verdict
    failed = _read_json(layout.failed_tasks()) or {}
    cells = []
    for name, case in project.boots.items():
        seen = verdicts.get(name)
        if seen is not None and seen.observed is not Outcome.NOT_RUN:
            if seen.passed:
                cells.append(Cell(project.series, name, CellState.PASS))
                continue
            where = f"; {seen.notes[0]}" if seen.notes else ""
            cells.append(Cell(project.series, name, CellState.FAIL, f"{seen.observed.value}: {seen.reason}{where}"))
            continue
        dropped = _read_json(layout.dropped_options(case.variant))
        if f"kconfig:{case.variant}" in failed and dropped:
            reason = "; ".join(short_problem(str(p)) for p in dropped)
            cells.append(Cell(project.series, name, CellState.UNSUPPORTED, f"{case.variant} kernel: {reason}"))
            continue
        failure = _failure(failed, _needed_tasks(project, case))
        if failure:
            task, message = failure
            first = message.splitlines()[0] if message else "failed"
            cells.append(Cell(project.series, name, CellState.FAIL, f"{task} failed: {first}"))
        else:
            cells.append(Cell(project.series, name, CellState.NOT_RUN, "no verdict from this series' run"))
    return cells


def reference_numbers(cells: list[Cell]) -> dict[tuple[str, str], int]:
    numbers: dict[tuple[str, str], int] = {}
    for cell in cells:
        if cell.reason and cell.state is not CellState.PASS:
            numbers.setdefault((cell.series, cell.reason), len(numbers) + 1)
    return numbers


def cell_rows(cells: list[Cell], cases: Sequence[str], series: Sequence[str]) -> list[list[str]]:
    """One row per case: its name, then per series the cell's state and the number of its reason ("-": no cell);
    the terminal's table and docs/kernel-versions.md both show these."""
    numbers = reference_numbers(cells)
    by_key = {(cell.case, cell.series): cell for cell in cells}

    def text(cell: Cell | None) -> str:
        if cell is None:
            return "-"
        number = numbers.get((cell.series, cell.reason))
        return cell.state.value + (f" [{number}]" if number else "")

    return [[case, *(text(by_key.get((case, name))) for name in series)] for case in cases]


def table(cells: list[Cell], runs: Sequence[SeriesRun]) -> str:
    """Cases down, series across; every cell that is not PASS refers to a numbered reason below the table."""
    numbers = reference_numbers(cells)
    cases = list(dict.fromkeys(cell.case for cell in cells))
    header = ["case", *(f"{run.series} ({run.version})" if run.version else run.series for run in runs)]
    rows = cell_rows(cells, cases, [run.series for run in runs])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()

    lines = [line(header), line(["-" * width for width in widths]), *(line(row) for row in rows)]
    for (name, reason), number in numbers.items():
        lines.append(f"[{number}] {name}: {reason}")
    counts = {state: sum(cell.state is state for cell in cells) for state in CellState}
    shown = [state for state in CellState if counts[state] or state is CellState.PASS]
    lines.append(", ".join(f"{counts[state]} {state.value}" for state in shown))
    return "\n".join(lines)


def junit(cells: list[Cell], runs: Sequence[SeriesRun]) -> str:
    """One JUnit testsuite per series: a FAIL (or a case that did not run) is a failure, not supported is skipped."""
    root = ET.Element("testsuites", name="mmulab kernel matrix")
    for run in runs:
        mine = [cell for cell in cells if cell.series == run.series]
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"linux {run.series}",
            tests=str(len(mine)),
            failures=str(sum(cell.state in (CellState.FAIL, CellState.NOT_RUN) for cell in mine)),
            skipped=str(sum(cell.state is CellState.UNSUPPORTED for cell in mine)),
        )
        ET.SubElement(suite, "properties").extend(
            [
                ET.Element("property", name="version", value=run.version),
                ET.Element("property", name="origin", value=run.origin),
            ]
        )
        for cell in mine:
            case = ET.SubElement(suite, "testcase", classname=f"linux-{run.series}", name=cell.case)
            if cell.state is CellState.UNSUPPORTED:
                ET.SubElement(case, "skipped", message=cell.reason)
            elif cell.state is not CellState.PASS:
                ET.SubElement(case, "failure", message=cell.reason or cell.state.value)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def to_json(cells: list[Cell], runs: Sequence[SeriesRun], project: Project) -> dict[str, Any]:
    return {
        "series": [asdict(run) for run in runs],
        "cases": [
            {"case": name, "demo": case.demo, "variant": case.variant, "qemu": case.qemu_options}
            for name, case in project.boots.items()
        ],
        "cells": [{**asdict(cell), "state": cell.state.value} for cell in cells],
    }


def read_report(path: Path) -> tuple[list[Cell], list[SeriesRun], list[dict[str, str]]]:
    """A matrix.json back as records (docs/kernel-versions.md is generated from one)."""
    data = _read_json(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: no matrix report (run doit matrix first)")
    try:
        cells = [Cell(**raw) for raw in data["cells"]]
        runs = [SeriesRun(**raw) for raw in data["series"]]
        cases = list(data["cases"])
    except (KeyError, TypeError, ValueError) as error:
        raise UserError(f"{path}: not a matrix report ({error}); run doit matrix again") from None
    return cells, runs, cases


def write(cells: list[Cell], runs: Sequence[SeriesRun], project: Project, folder: Path) -> tuple[Path, Path, Path]:
    paths = folder / JSON_NAME, folder / XML_NAME, folder / TEXT_NAME
    write_atomic(paths[0], json.dumps(to_json(cells, runs, project), indent=2) + "\n")
    write_atomic(paths[1], junit(cells, runs))
    write_atomic(paths[2], table(cells, runs) + "\n")
    return paths


def series_project(project: Project, series: str) -> Project:
    from mmulab.project.loader import load_project

    return load_project(replace(project.settings, kernel_series=series))


def chosen(project: Project, only: str) -> list[str]:
    """The series `--series` names (comma-separated), or every one; an unknown name is a configuration error."""
    if not only:
        return list(project.kernel_series)
    names = [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in names if name not in project.kernel_series]
    if unknown:
        known = ", ".join(project.kernel_series)
        raise ConfigError(f"matrix --series {only}: no kernel series {unknown[0]!r} in configs/kernels.toml ({known})")
    return [name for name in project.kernel_series if name in names]


def run_series(mine: Project, log: Path) -> SeriesRun:
    """`doit --continue all` for one series, as a separate process (its own lock and doit database), its output in
    `log`; a task that fails does not stop the variants that do not need it."""
    environment = {
        **os.environ,
        "MMULAB_KERNEL": mine.series,
        "MMULAB_BUILD_DIR": str(mine.settings.build_dir),
        "MMULAB_PROGRESS": "plain",
    }
    environment.pop("LINUX_SRC", None)
    started = time.monotonic()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        code = subprocess.call(doit_argv(["run", "--continue", "all"]), env=environment, stdout=sink, stderr=sink)
    seconds = round(time.monotonic() - started, 1)
    if code == 130 or code < 0:
        raise KeyboardInterrupt
    fetched = Layout(mine.build_root()).fetched(mine.toolchain.kernel.source)
    try:
        record = Fetched.read(fetched)
        version, origin = record.version, record.origin
    except UserError:
        version, origin = "", "not fetched"
    return SeriesRun(mine.series, version, origin, code, seconds, str(log))


def run(project: Project, only: str = "") -> tuple[list[Cell], list[SeriesRun], tuple[Path, Path, Path]]:
    """Build and boot every chosen series, one after the other; then the table, matrix.json and matrix.xml."""
    if project.settings.linux_src:
        raise ConfigError("doit matrix builds the pinned kernel series of configs/kernels.toml: unset LINUX_SRC")
    names = chosen(project, only)
    reports = matrix_reports(project.settings.build_dir)
    cells: list[Cell] = []
    runs = []
    written = (reports / JSON_NAME, reports / XML_NAME, reports / TEXT_NAME)
    for index, series in enumerate(names, 1):
        log = reports / "matrix" / f"linux-{series}.log"
        print(f"matrix: [{index}/{len(names)}] linux {series}: doit all (log: {log})", flush=True)
        mine = series_project(project, series)
        result = run_series(mine, log)
        runs.append(result)
        found = series_cells(mine, Layout(mine.build_root()))
        cells += found
        passed = sum(cell.state is CellState.PASS for cell in found)
        print(f"matrix: linux {series} ({result.version or '?'}): {passed}/{len(found)} PASS in {result.seconds:.0f} s")
        written = write(cells, runs, project, reports)  # after each series: an interrupted matrix keeps what ran
    return cells, runs, written


@user_errors
def action(project: Project, series: str = "") -> None:
    """`doit matrix [--series A,B]`: each series' `doit all`, then the table; a case that failed (or did not run)
    on any series fails the task, a case its kernel cannot support (the reason read from its Kconfig) does not."""
    cells, runs, (json_path, xml_path, _text) = run(project, series)
    print("\n" + table(cells, runs) + f"\n(matrix: {json_path}, JUnit: {xml_path})")
    failed = [cell for cell in cells if cell.state in (CellState.FAIL, CellState.NOT_RUN)]
    if failed:
        raise UserError(f"matrix: {len(failed)} cell(s) failed or did not run (reasons under the table)")
