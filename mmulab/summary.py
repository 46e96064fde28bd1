"""The boot matrix summary: a table on the terminal, JSON for tools, JUnit XML for CI dashboards."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from .sources import write_atomic

COLUMNS = ("case", "demo", "variant", "qemu", "expected", "observed", "result", "seconds")


def row(verdict: dict) -> dict[str, str]:
    result = "PASS" if verdict.get("passed") else ("NOT RUN" if verdict.get("observed") == "not-run" else "FAIL")
    seconds = verdict.get("seconds")
    return {
        "case": verdict["case"],
        "demo": verdict.get("demo", ""),
        "variant": verdict.get("variant", ""),
        "qemu": verdict.get("qemu", ""),
        "expected": verdict.get("expected", ""),
        "observed": verdict.get("observed", ""),
        "result": result,
        "seconds": f"{seconds:.2f}" if isinstance(seconds, int | float) else "-",
    }


def table(verdicts: list[dict]) -> str:
    rows = [row(v) for v in verdicts]
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in COLUMNS}

    def line(cells: dict[str, str]) -> str:
        return "  ".join(cells[c].ljust(widths[c]) for c in COLUMNS).rstrip()

    lines = [line({c: c for c in COLUMNS}), line({c: "-" * widths[c] for c in COLUMNS})]
    lines += [line(r) for r in rows]
    passed = sum(r["result"] == "PASS" for r in rows)
    lines.append(f"{passed} passed, {len(rows) - passed} failed")
    return "\n".join(lines)


def junit(verdicts: list[dict]) -> str:
    suite = ET.Element(
        "testsuite",
        name="mmulab boots",
        tests=str(len(verdicts)),
        failures=str(sum(not v.get("passed") for v in verdicts)),
    )
    for verdict in verdicts:
        seconds = verdict.get("seconds") if isinstance(verdict.get("seconds"), int | float) else 0
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"boot.{verdict.get('variant', '')}",
            name=verdict["case"],
            time=f"{seconds:.3f}",
        )
        if not verdict.get("passed"):
            failure = ET.SubElement(case, "failure", message=verdict.get("reason") or verdict.get("observed", ""))
            failure.text = verdict.get("excerpt", "")
        ET.SubElement(case, "system-out").text = (
            f"expected {verdict.get('expected')}, observed {verdict.get('observed')}; log {verdict.get('log', '')}"
        )
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def write(verdicts: list[dict], folder: Path) -> tuple[Path, Path]:
    """Write summary.json and summary.xml (JUnit) into `folder`; return both paths."""
    json_path, xml_path = folder / "summary.json", folder / "summary.xml"
    write_atomic(json_path, json.dumps(verdicts, indent=2) + "\n")
    write_atomic(xml_path, junit(verdicts))
    return json_path, xml_path
