"""One bisect step through the pipeline itself: the commit checked out in the bisect's clone is configured, built
and booted by doit (a separate process, `LINUX_SRC` = the clone, the same build directory every step: make's
incremental build and the compile cache, the farm when `MMULAB_DISTCC_HOSTS` names one), and the verdicts the
smoke tasks write are read back.

A step is skip when a variant does not configure (an option did not survive `olddefconfig`) or the kernel or an
image does not build; a boot that failed for a reason outside the kernel (QEMU did not start or printed only its
own error, QEMU's exit code, a host that starved the boot past its wall-time limit) is booted again up to
`retries` times, then skip. Otherwise every case passing is good, any other verdict bad.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from mmulab.boot.judge import Outcome as Observed
from mmulab.boot.judge import Verdict
from mmulab.boot.qemu import SLOW_HOST_LIMIT
from mmulab.core.doitcli import doit_argv
from mmulab.core.errors import ConfigError, ExitCode, UserError
from mmulab.core.fsutil import remove_tree, write_atomic
from mmulab.pipeline.actions import layout_of
from mmulab.pipeline.bisect import CaseRun, Git, Mark, Oracle, Outcome, State, Step, check_inputs, report, run
from mmulab.project.loader import load_project
from mmulab.project.model import BootCase, Project

REASON_LINES = ("mmulab: error:", "did not survive", "error:", "Error ")
REASON_LENGTH = 300
RUN_MARK = "$ doit "  # starts each doit run's output in a step's log


def infrastructure(verdict: Verdict | None, case: BootCase, console: Sequence[str]) -> str:
    """Why a boot's failure is not the kernel's, or "" when it is the kernel's (or it passed)."""
    if verdict is None:
        return "the boot left no verdict (QEMU could not start?)"
    if verdict.passed:
        return ""
    if verdict.observed in (Observed.QEMU_ERROR, Observed.NOT_RUN):
        return f"{verdict.observed.value}: {verdict.reason}"
    if verdict.observed is Observed.HANG and (verdict.seconds or 0) >= case.timeout * SLOW_HOST_LIMIT:
        return f"the host starved the boot ({verdict.seconds:g} s of wall time for a {case.timeout:g} s timeout)"
    printed = [line for line in console if line.strip() and not line.startswith("$ ")]  # not the command line
    if verdict.observed is Observed.INCOMPLETE and all(line.startswith("qemu-system") for line in printed):
        return f"QEMU did not start: {printed[0].strip() if printed else verdict.reason}"
    return ""


def failure_reason(log: Path, task: str, code: int) -> str:
    """The line of the last doit run in `log` that says why it failed (an option that did not survive, a compiler
    error), named by its task once."""
    try:
        lines = log.read_text(errors="replace").rsplit(RUN_MARK, 1)[-1].splitlines()
    except OSError:
        lines = []
    for marker in REASON_LINES:
        at = next((i for i, line in enumerate(lines) if marker in line), None)
        if at is not None:
            found = lines[at].strip().removeprefix("mmulab: error: ")
            if found.endswith(":") and at + 1 < len(lines):  # a list follows: its first item says which
                found += " " + lines[at + 1].strip().removeprefix("- ")
            found = found[:REASON_LENGTH]
            return found if found.startswith(f"{task}:") else f"{task}: {found}"
    return f"{task}: exit {code} (log: {log})"


# doit's tasks run with their output into a log, in an environment: the exit code (the fast tests fake it).
Doit = Callable[[Sequence[str], Path, dict[str, str]], int]


def run_doit(tasks: Sequence[str], log: Path, environment: dict[str, str]) -> int:
    """doit on this checkout's dodo.py, its output to `log`; its exit code (Ctrl-C reaches it too)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as sink:
        sink.write(f"{RUN_MARK}{' '.join(tasks)}\n".encode())
        sink.flush()
        return subprocess.call(doit_argv(list(tasks)), env=environment, stdout=sink, stderr=subprocess.STDOUT)


@dataclass(frozen=True)
class PipelineOracle:
    """Tests the commit checked out in `clone`: doit's kconfig, kernel, image and smoke tasks of the cases."""

    project: Project  # loaded with LINUX_SRC = clone
    git: Git  # the clone's
    cases: tuple[str, ...]
    retries: int
    logs: Path  # the bisect's folder: each step's doit log and each boot's console
    run_tasks: Doit = run_doit

    @classmethod
    def of(
        cls, project: Project, clone: Path, cases: Sequence[str], retries: int, logs: Path, run_tasks: Doit = run_doit
    ) -> PipelineOracle:
        settings = replace(project.settings, linux_src=clone)
        return cls(load_project(settings), Git(clone), tuple(cases), retries, logs, run_tasks)

    def environment(self) -> dict[str, str]:
        settings = self.project.settings
        return {
            **os.environ,
            "LINUX_SRC": str(settings.linux_src),
            "MMULAB_BUILD_DIR": str(settings.build_dir),
            "MMULAB_PROGRESS": "plain",
        }

    def doit(self, tasks: Sequence[str], log: Path) -> int:
        code = self.run_tasks(tasks, log, self.environment())
        if code in (ExitCode.INTERRUPTED, -signal.SIGINT):
            raise KeyboardInterrupt
        return code

    def stages(self) -> list[list[str]]:
        """The tasks before the boots, in the order a failure is told: configure, kernel, images."""
        boots = [self.project.boots[name] for name in self.cases]
        variants = list(dict.fromkeys(case.variant for case in boots))
        images = list(dict.fromkeys(f"initramfs:{case.build}-{case.variant}" for case in boots))
        return [[f"kconfig:{v}" for v in variants], [f"kernel:{v}" for v in variants], images]

    def __call__(self, commit: str) -> Step:
        started = time.monotonic()
        subject = self.git.commit(commit).subject
        log = self.logs / "steps" / f"{commit[:12]}.log"
        log.unlink(missing_ok=True)
        for tasks in self.stages():
            for task in tasks:
                code = self.doit([task], log)
                if code != 0:
                    reason = failure_reason(log, task, code)
                    return Step(commit, subject, Mark.SKIP, reason, round(time.monotonic() - started, 1))
        runs, attempts = [], 1
        for name in self.cases:
            run, tries = self.boot(commit, name, log)
            attempts = max(attempts, tries)
            if run is None:
                reason = f"{name}: booted {tries} times, each failed outside the kernel (see {log})"
                return Step(commit, subject, Mark.SKIP, reason, round(time.monotonic() - started, 1), attempts)
            runs.append(run)
        failed = [run for run in runs if not run.passed]
        mark = Mark.BAD if failed else Mark.GOOD
        reason = "; ".join(f"{run.case}: {run.observed}: {run.reason}" for run in failed)
        return Step(commit, subject, mark, reason, round(time.monotonic() - started, 1), attempts, tuple(runs))

    def boot(self, commit: str, name: str, log: Path) -> tuple[CaseRun | None, int]:
        """The case booted until its verdict is the kernel's (None when every try failed outside it)."""
        # Read again at each commit: where a tree's outputs live may follow the tree's own version (its Makefile),
        # which a bisect across releases changes.
        layout = layout_of(load_project(self.project.settings))
        case = self.project.boots[name]
        for attempt in range(1, self.retries + 2):
            layout.verdict(name).unlink(missing_ok=True)  # never read the last step's verdict
            self.doit([f"smoke:{name}"], log)
            try:
                verdict: Verdict | None = Verdict.read(layout.verdict(name))
            except UserError:
                verdict = None
            console = layout.console_log(name)
            lines = console.read_text(errors="replace").splitlines() if console.is_file() else []
            why = infrastructure(verdict, case, lines)
            if not why and verdict is not None:
                kept = self.logs / "consoles" / f"{commit[:12]}-{name}.log"
                kept.parent.mkdir(parents=True, exist_ok=True)
                if console.is_file():
                    shutil.copyfile(console, kept)
                run = CaseRun(name, verdict.observed.value, verdict.passed, verdict.reason, verdict.notes, str(kept))
                return run, attempt
            with log.open("a") as sink:
                sink.write(f"bisect: {name} attempt {attempt}: {why}\n")
        return None, self.retries + 1


def bisect(
    project: Project,
    good: str,
    bad: str,
    cases: Sequence[str],
    retries: int,
    resume: bool,
    say: Callable[[str], None] = print,
    oracle_of: Callable[[Project, Path, Sequence[str], int, Path], Oracle] = PipelineOracle.of,
) -> tuple[Git, Outcome, Path]:
    """Start (or resume) a bisect of LINUX_SRC; the clone's Git, how it ended and where bisect.json went."""
    layout = layout_of(project)
    state_path = layout.bisect_state()
    if resume:
        state = State.read(state_path)
        tree = Path(state.tree)
        Git(tree).check_repository("the state file's tree")
    else:
        if project.settings.linux_src is None:
            raise ConfigError("bisect: LINUX_SRC is not set: point it at the kernel git tree to bisect")
        tree = project.settings.linux_src
        user = Git(tree)
        user.check_repository("LINUX_SRC")
        good_hash, bad_hash = check_inputs(user, good, bad, cases, list(project.boots))
        state = State(str(tree), good_hash, bad_hash, tuple(dict.fromkeys(cases)), retries)
    clone = layout.bisect_dir() / "tree"
    if not (clone / ".git").is_dir() or Git(clone).origin() != str(tree):  # a clone of another tree is no use
        remove_tree(clone)
        Git(tree).clone_to(clone)
    state.write(state_path)
    work = Git(clone)
    oracle = oracle_of(project, clone, state.cases, state.retries, layout.bisect_dir())
    try:
        state, outcome = run(work, state, oracle, state.write_to(state_path), say, work.checkout)
    except KeyboardInterrupt:
        done = len(State.read(state_path).steps)
        say(
            f"bisect: interrupted after {done} step(s); {tree} is as it was (every commit is checked out in the "
            f"bisect's own clone, {clone}); continue with `mmulab bisect --resume`"
        )
        raise
    path = layout.reports() / "bisect.json"
    write_atomic(path, json.dumps(report(work, outcome), indent=2) + "\n")
    return work, outcome, path
