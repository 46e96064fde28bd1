"""`doit kernel-versions --from BUILD`: docs/kernel-versions.md from a real `doit matrix` run, never written by hand.

The page holds the matrix as it was (BUILD/reports/matrix.json), and, per series, what changed for riscv MMU and
NOMMU, each claim tied to what shows it: a Kconfig entry read from that series' own tree (kconfig/tree.py: does the
symbol exist, at which file:line, what it depends on) or a console line of that series' boot.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

from mmulab.core.errors import UserError
from mmulab.core.fsutil import write_atomic
from mmulab.core.paths import Layout, matrix_reports, series_root
from mmulab.core.settings import PROJECT_ROOT
from mmulab.core.templates import environment
from mmulab.kconfig.tree import Entry, linux_source
from mmulab.pipeline import matrix
from mmulab.pipeline.actions import user_errors
from mmulab.project.model import Project

PAGE = PROJECT_ROOT / "docs" / "kernel-versions.md"


@dataclass(frozen=True)
class KconfigFact:
    """One symbol in one series' tree: absent, or where it is defined and what it depends on."""

    symbol: str
    series: str
    where: str = ""  # file:line, "" when the tree has no such symbol
    depends: str = ""
    prompt: bool = False

    def text(self) -> str:
        if not self.where:
            return "absent"
        gate = f"depends on {self.depends}" if self.depends else "no depends on"
        return f"{gate}{'' if self.prompt else ', no prompt'} ({self.where})"


def kconfig_facts(tree: Path, arch: str, series: str, symbols: tuple[str, ...]) -> list[KconfigFact]:
    """What each symbol's entry says in `tree` (the riscv entry, where the symbol is defined for several arches)."""
    if not (tree / "Kconfig").is_file():
        return [KconfigFact(symbol, series, "tree not extracted") for symbol in symbols]
    loaded = linux_source(tree, arch).load()
    facts = []
    for symbol in symbols:
        entries: tuple[Entry, ...] = loaded.entries.get(symbol, ())
        mine = [e for e in entries if f"arch/{arch}/" in e.file] or [e for e in entries if "arch/" not in e.file]
        if not mine:
            facts.append(KconfigFact(symbol, series))
            continue
        entry = mine[0]
        parts = [c.expression for c in entry.depends]
        depends = parts[0] if len(parts) == 1 else " && ".join(f"({p})" if "||" in p else p for p in parts)
        facts.append(KconfigFact(symbol, series, f"{entry.file}:{entry.line}", depends, entry.has_prompt))
    return facts


def console_facts(layout: Layout, case: str, text: str) -> list[str]:
    """The lines of a case's console on this series that hold `text`, each with the case it is from."""
    try:
        lines = layout.console_log(case).read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [f"{case}: `{line.strip()}`" for line in lines if text in line]


def render(project: Project, build_dir: Path) -> str:
    cells, runs, cases = matrix.read_report(matrix_reports(build_dir) / matrix.JSON_NAME)
    facts = project.kernel_facts
    series = [run.series for run in runs]
    by_symbol: dict[str, dict[str, KconfigFact]] = {symbol: {} for symbol in facts.kconfig}
    consoles: dict[str, list[str]] = {}
    for name in series:
        root = series_root(build_dir, name)
        for fact in kconfig_facts(root / "src" / "linux", project.toolchain.arch, name, facts.kconfig):
            by_symbol[fact.symbol][name] = fact
        consoles[name] = [line for case, text in facts.console for line in console_facts(Layout(root), case, text)]
    numbers = matrix.reference_numbers(cells)
    rows = matrix.cell_rows(cells, [case["case"] for case in cases], series)
    template = environment(project.settings.configs_dir / "catalog").get_template("kernel-versions.md.j2")
    return template.render(
        runs=runs,
        rows=rows,
        reasons=[(number, name, reason) for (name, reason), number in numbers.items()],
        passed={name: sum(c.series == name and c.state is matrix.CellState.PASS for c in cells) for name in series},
        totals={name: sum(c.series == name for c in cells) for name in series},
        symbols=by_symbol,
        consoles=consoles,
        series=series,
        changes=_changes(series, by_symbol),
    )


def _changes(series: list[str], by_symbol: dict[str, dict[str, KconfigFact]]) -> dict[str, list[str]]:
    """Per series, each Kconfig entry that differs from the series before it, said with both readings."""
    changes: dict[str, list[str]] = {name: [] for name in series}
    for before, after in itertools.pairwise(series):
        for symbol, readings in by_symbol.items():
            old, new = readings.get(before), readings.get(after)
            if old and new and (old.where == "") != (new.where == ""):
                changes[after].append(f"`{symbol}`: {old.text()} in {before}, {new.text()} here")
            elif old and new and (old.depends, old.prompt) != (new.depends, new.prompt):
                changes[after].append(f"`{symbol}`: {new.text()}; in {before}: {old.text()}")
    return changes


def write(project: Project, build_dir: Path) -> Path:
    if not (matrix_reports(build_dir) / matrix.JSON_NAME).is_file():
        raise UserError(
            f"--from {build_dir}: no {matrix.JSON_NAME} in {matrix_reports(build_dir)} (run doit matrix there)"
        )
    write_atomic(PAGE, render(project, build_dir))
    return PAGE


@user_errors
def action(project: Project, source: str = "") -> None:
    """`doit kernel-versions [--from BUILD]`: docs/kernel-versions.md from that build's matrix run."""
    build_dir = Path(source).expanduser().resolve() if source else project.settings.build_dir
    page = write(project, build_dir)
    print(f"kernel-versions: {page} (from {matrix_reports(build_dir) / matrix.JSON_NAME})")
