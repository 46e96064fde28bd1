"""The boot matrix summary: a table on the terminal, JSON for tools, JUnit XML for CI dashboards."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from .boot import Outcome, Verdict
from .fsutil import write_atomic

COLUMNS = ("case", "demo", "variant", "qemu", "expected", "observed", "result", "seconds")


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
    json_path, xml_path = folder / "summary.json", folder / "summary.xml"
    write_atomic(json_path, json.dumps([v.to_dict() for v in verdicts], indent=2) + "\n")
    write_atomic(xml_path, junit(verdicts))
    return json_path, xml_path
