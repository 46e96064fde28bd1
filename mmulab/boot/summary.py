"""The boot matrix summary: a table on the terminal, JSON for tools, JUnit XML for CI dashboards."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from mmulab.boot.judge import Outcome, Verdict
from mmulab.build.ccache import CacheStats, read_stats
from mmulab.core.fsutil import write_atomic

COLUMNS = ("case", "demo", "variant", "qemu", "expected", "observed", "result", "seconds")
JSON_FILE, XML_FILE = "summary.json", "summary.xml"  # what write() puts in its folder (a release copies both)


def result(verdict: Verdict) -> str:
    if verdict.passed:
        return "PASS"
    return "NOT RUN" if verdict.observed is Outcome.NOT_RUN else "FAIL"


def row(verdict: Verdict) -> dict[str, str]:
    facts = {key: str(value) for key, value in verdict.facts().items() if key != "passed"}
    return {
        **facts,
        "result": result(verdict),
        "seconds": f"{verdict.seconds:.2f}" if verdict.seconds is not None else "-",
    }


def table(verdicts: list[Verdict]) -> str:
    rows = [row(v) for v in verdicts]
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in COLUMNS}

    def line(cells: dict[str, str]) -> str:
        return "  ".join(cells[c].ljust(widths[c]) for c in COLUMNS).rstrip()

    lines = [line({c: c for c in COLUMNS}), line({c: "-" * widths[c] for c in COLUMNS})]
    lines += [line(r) for r in rows]
    passed = sum(r["result"] == "PASS" for r in rows)
    lines.append(f"{passed} passed, {len(rows) - passed} failed")
    return "\n".join(lines)


def junit(verdicts: list[Verdict]) -> str:
    suite = ET.Element(
        "testsuite",
        name="mmulab boots",
        tests=str(len(verdicts)),
        failures=str(sum(not v.passed for v in verdicts)),
    )
    for verdict in verdicts:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"boot.{verdict.variant}",
            name=verdict.case,
            time=f"{verdict.seconds or 0:.3f}",
        )
        notes = "".join(f"\n{note}" for note in verdict.notes)
        if not verdict.passed:
            failure = ET.SubElement(case, "failure", message=verdict.reason or verdict.observed.value)
            failure.text = f"{notes.lstrip()}\n{verdict.excerpt}" if notes else verdict.excerpt
        said = f": {verdict.reason}" if verdict.passed and verdict.reason else ""
        ET.SubElement(
            case, "system-out"
        ).text = f"expected {verdict.expected}, observed {verdict.observed.value}{said}; log {verdict.log}{notes}"
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def write(verdicts: list[Verdict], folder: Path) -> tuple[Path, Path]:
    """Write summary.json and summary.xml (JUnit) into `folder`; return both paths."""
    json_path, xml_path = folder / JSON_FILE, folder / XML_FILE
    write_atomic(json_path, json.dumps([v.to_dict() for v in verdicts], indent=2) + "\n")
    write_atomic(xml_path, junit(verdicts))
    return json_path, xml_path


CACHE_COLUMNS = ("stage", "hits", "remote", "misses", "not cacheable")


def cache_stats(folder: Path) -> dict[str, CacheStats]:
    """The compile cache's counts of each stage's last run, from the stats logs in `folder` (by file name)."""
    found = {}
    for path in sorted(folder.glob("*.stats")) if folder.is_dir() else []:
        stats = read_stats(path)
        if stats is not None:
            found[path.stem.replace("-", ":", 1)] = stats  # kernel-nommu: kernel:nommu
    return found


def cache_table(stages: dict[str, CacheStats]) -> str:
    """Hits (of which from the remote store) and misses per stage, and the run's totals."""
    every = stages.values()
    total = CacheStats(
        calls=sum(s.calls for s in every),
        hits=sum(s.hits for s in every),
        remote_hits=sum(s.remote_hits for s in every),
        misses=sum(s.misses for s in every),
    )
    rows = [(name, s.hits, s.remote_hits, s.misses, s.uncacheable) for name, s in [*stages.items(), ("total", total)]]
    cells = [CACHE_COLUMNS, *[tuple(str(c) for c in row) for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(CACHE_COLUMNS))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in cells
    ]
    return "compile cache (ccache):\n" + "\n".join(lines)


def write_cache(stages: dict[str, CacheStats], folder: Path) -> Path:
    """reports/ccache.json: each stage's counts from its last run."""
    path = folder / "ccache.json"
    write_atomic(path, json.dumps({name: s.to_dict() for name, s in stages.items()}, indent=2) + "\n")
    return path
