"""The boot summary: table, JSON and JUnit XML from verdicts."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from mmulab import summary

VERDICTS = [
    {
        "case": "a-asm-nommu",
        "demo": "a",
        "variant": "nommu",
        "qemu": "default",
        "expected": "pass",
        "observed": "pass",
        "passed": True,
        "seconds": 0.25,
    },
    {
        "case": "a-asm-mmu-mmu-off",
        "demo": "a",
        "variant": "mmu",
        "qemu": "mmu-off",
        "expected": "hang",
        "observed": "pass",
        "passed": False,
        "seconds": 0.3,
        "reason": "expected the boot to hang",
        "excerpt": "  | reboot: Power down",
    },
    {"case": "b-c-mmu", "observed": "not-run", "passed": False, "reason": "not run: a task it depends on failed"},
]


def test_table_has_a_row_per_boot_and_a_count() -> None:
    lines = summary.table(VERDICTS).splitlines()
    assert lines[0].split() == ["case", "demo", "variant", "qemu", "expected", "observed", "result", "seconds"]
    assert lines[2].split() == ["a-asm-nommu", "a", "nommu", "default", "pass", "pass", "PASS", "0.25"]
    assert lines[3].split() == ["a-asm-mmu-mmu-off", "a", "mmu", "mmu-off", "hang", "pass", "FAIL", "0.30"]
    assert "NOT RUN" in lines[4]
    assert lines[-1] == "1 passed, 2 failed"


def test_json_and_junit_files(tmp_path: Path) -> None:
    json_path, xml_path = summary.write(VERDICTS, tmp_path / "reports")
    assert json.loads(json_path.read_text()) == VERDICTS
    suite = ET.parse(xml_path).getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("3", "2")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert cases["a-asm-nommu"].find("failure") is None
    failure = cases["a-asm-mmu-mmu-off"].find("failure")
    assert failure is not None and failure.get("message") == "expected the boot to hang"
    assert "reboot: Power down" in (failure.text or "")
