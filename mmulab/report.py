"""doit reporter: a failed task is one short block naming the task and what to fix, not a traceback dump;
after boots, the boot matrix summary (also written as JSON and JUnit XML)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from doit.exceptions import BaseFail
from doit.reporter import ConsoleReporter

from . import summary


class MmulabReporter(ConsoleReporter):
    desc = "mmulab console output: one line per task, failures as short errors, a boot summary"

    def __init__(self, outstream, options) -> None:
        super().__init__(outstream, options)
        self.boots: dict[str, tuple[object, str]] = {}

    def initialize(self, tasks, selected_tasks) -> None:
        self.all_tasks = tasks

    def _note(self, task, status: str) -> None:
        if task.name.startswith("smoke:"):
            self.boots[task.name] = (task, status)

    def get_status(self, task) -> None:
        self._note(task, "not-run")

    def add_success(self, task) -> None:
        self._note(task, "ran")

    def skip_uptodate(self, task) -> None:
        self._note(task, "cached")
        super().skip_uptodate(task)

    def add_failure(self, task, fail: BaseFail) -> None:
        self._note(task, "failed" if task.executed else "not-run")
        if not fail.report:
            return
        self.failures.append({"task": task, "exception": fail})
        message = fail.message if not fail.traceback else fail.get_msg()
        if not task.actions:  # a group task (boot:, demo:, all): doit names the dependency that failed
            message = f"incomplete: {message.strip()} failed"
        sys.stderr.write(f"mmulab: error: {task.name}: {message.rstrip()}\n")
        sys.stderr.flush()

    def _verdicts(self) -> list[dict]:
        verdicts = []
        for name, (task, status) in sorted(self.boots.items()):
            path = Path(task.targets[0])
            if status != "not-run" and path.is_file():
                verdicts.append(json.loads(path.read_text()))
            else:
                verdicts.append(
                    {
                        "case": name.removeprefix("smoke:"),
                        "observed": "not-run",
                        "passed": False,
                        "reason": "not run: a task it depends on failed",
                    }
                )
        return verdicts

    def complete_run(self) -> None:
        if self.boots:
            verdicts = self._verdicts()
            folder = Path(next(iter(self.boots.values()))[0].targets[0]).parent.parent / "reports"
            json_path, xml_path = summary.write(verdicts, folder)
            self.write("\n" + summary.table(verdicts) + f"\n(summary: {json_path}, JUnit: {xml_path})\n")
        if self.runtime_errors:
            sys.stderr.write("mmulab: error: " + "\n".join(self.runtime_errors) + "\n")
