"""doit reporter: a failed task is one short block naming the task and what to fix, not a traceback dump."""

from __future__ import annotations

import sys

from doit.exceptions import BaseFail
from doit.reporter import ConsoleReporter


class MmulabReporter(ConsoleReporter):
    desc = "mmulab console output: one line per task, failures as short errors"

    def add_failure(self, task, fail: BaseFail) -> None:
        if not fail.report:
            return
        self.failures.append({"task": task, "exception": fail})
        message = fail.message if not fail.traceback else fail.get_msg()
        sys.stderr.write(f"mmulab: error: {task.name}: {message.rstrip()}\n")
        sys.stderr.flush()

    def complete_run(self) -> None:
        if self.runtime_errors:
            sys.stderr.write("mmulab: error: " + "\n".join(self.runtime_errors) + "\n")
