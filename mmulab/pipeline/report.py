"""doit reporter: a failed task is one short block naming the task and what to fix, not a traceback dump;
after boots, the boot matrix summary (also written as JSON and JUnit XML)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from doit.exceptions import BaseFail
from doit.reporter import ConsoleReporter

from mmulab.boot import summary
from mmulab.boot.judge import Verdict
from mmulab.build import distcc
from mmulab.core.errors import UserError
from mmulab.core.fsutil import write_atomic
from mmulab.core.paths import Layout

COMPILING = ("kconfig:", "kernel:", "libc:", "program:", "busybox:")
# The folder of the build directory this run builds in (its kernel series'): set by run.py when doit loads dodo.py
# (doit makes the reporter itself, from its class).
RUN_ROOT: Path | None = None


class MmulabReporter(ConsoleReporter):  # type: ignore[misc]  # doit ships no type hints: its classes are Any
    desc = "mmulab console output: one line per task, failures as short errors, a boot summary"

    def __init__(self, outstream: Any, options: Any) -> None:
        super().__init__(outstream, options)
        self.boots: dict[str, tuple[Any, str]] = {}
        self.compiled: list[str] = []  # the compiling tasks that ran: their compile cache counts are reported
        self.failed: dict[str, str] = {}  # task -> its message, for every task that failed in this run

    def _note(self, task: Any, status: str) -> None:
        if status in ("ran", "failed") and task.name.startswith(COMPILING):
            self.compiled.append(task.name)
        if task.name.startswith("smoke:"):
            self.boots[task.name] = (task, status)

    def get_status(self, task: Any) -> None:
        self._note(task, "not-run")

    def add_success(self, task: Any) -> None:
        self._note(task, "ran")

    def skip_uptodate(self, task: Any) -> None:
        self._note(task, "cached")
        super().skip_uptodate(task)

    def add_failure(self, task: Any, fail: BaseFail) -> None:
        self._note(task, "failed" if task.executed else "not-run")
        if not fail.report:
            return
        self.failures.append({"task": task, "exception": fail})
        message = fail.message if not fail.traceback else _one_line(fail)
        if task.executed and task.actions:
            self.failed[task.name] = message.strip()
        if not task.actions:  # a group task (boot:, demo:, all): doit names the dependency that failed
            message = f"incomplete: {message.strip()} failed"
        sys.stderr.write(f"mmulab: error: {task.name}: {message.rstrip()}\n")
        sys.stderr.flush()

    def _verdicts(self) -> list[Verdict]:
        verdicts = []
        for name, (task, status) in sorted(self.boots.items()):
            case = name.removeprefix("smoke:")
            path = Path(task.targets[0])
            try:
                verdicts.append(Verdict.read(path) if status != "not-run" else Verdict.not_run(case))
            except UserError:
                verdicts.append(Verdict.not_run(case, f"no verdict: {path} is missing or damaged"))
        return verdicts

    def _cache_report(self) -> None:
        """The compile cache's hits and misses of each compiling stage this run ran (when ccache was used)."""
        if RUN_ROOT is None:
            return
        layout = Layout(RUN_ROOT)
        ran = set(self.compiled)
        every = summary.cache_stats(layout.ccache_stats_dir())
        if not (this_run := {name: stats for name, stats in every.items() if name in ran}):
            return
        path = summary.write_cache(every, layout.reports())
        self.write("\n" + summary.cache_table(this_run) + f"\n(every stage's last run: {path})\n")
        farmed = {name: stats for name in sorted(ran) if (stats := distcc.read_stats(layout.farm_stats(name)))}
        if farmed:
            self.write(distcc.table(farmed) + f"\n(distcc's warnings: {layout.farm_stats_dir()}/*.log)\n")

    def complete_run(self) -> None:
        if RUN_ROOT is not None and (self.failed or Layout(RUN_ROOT).reports().is_dir()):
            write_atomic(Layout(RUN_ROOT).failed_tasks(), json.dumps(self.failed, indent=2, sort_keys=True) + "\n")
        self._cache_report()
        if self.boots:
            verdicts = self._verdicts()
            build_dir = Path(next(iter(self.boots.values()))[0].targets[0]).parent.parent  # <build>/boots/<case>.json
            json_path, xml_path = summary.write(verdicts, Layout(build_dir).reports())
            self.write("\n" + summary.table(verdicts) + f"\n(summary: {json_path}, JUnit: {xml_path})\n")
        if self.runtime_errors:
            sys.stderr.write("mmulab: error: " + "\n".join(self.runtime_errors) + "\n")


def _one_line(fail: BaseFail) -> str:
    """An unexpected exception inside a task (a bug, or a check that raised): its last line, not the dump."""
    text = fail.get_msg().strip().splitlines()
    return text[-1] if text else type(fail).__name__
