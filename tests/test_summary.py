"""The boot summary: table, JSON and JUnit XML from verdicts."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from mmulab.boot import summary
from mmulab.boot.judge import Outcome, Verdict

VERDICTS = [
    Verdict("a-asm-nommu", "a", "a-asm", "nommu", "default", "pass", Outcome.PASS, True, 0.25),
    Verdict(
        "a-asm-mmu-mmu-off",
        "a",
        "a-asm",
        "mmu",
        "mmu-off",
        "hang",
        Outcome.PASS,
        False,
        0.3,
        reason="expected the boot to hang",
        excerpt="  | reboot: Power down",
    ),
    Verdict.not_run("b-c-mmu"),
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
    assert json.loads(json_path.read_text()) == [verdict.to_dict() for verdict in VERDICTS]
    assert json.loads(json_path.read_text())[2]["observed"] == "not-run"
    suite = ET.parse(xml_path).getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("3", "2")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert cases["a-asm-nommu"].find("failure") is None
    failure = cases["a-asm-mmu-mmu-off"].find("failure")
    assert failure is not None and failure.get("message") == "expected the boot to hang"
    assert "reboot: Power down" in (failure.text or "")
