"""One doit run of the pipeline, as dodo.py starts it: load the project, hold the build directory, and
turn every way it can end into one line and an honest exit code (2 bad configuration, 1 failed task,
130 interrupted), never a traceback.
"""

from __future__ import annotations

import fnmatch
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doit.exceptions import InvalidCommand

from mmulab.boot.qemu import stdin_is_terminal
from mmulab.core import doitcli
from mmulab.core.errors import ConfigError, EnvError, ExitCode
from mmulab.core.lock import BuildLock

if TYPE_CHECKING:
    from mmulab.project.model import Project

INTERRUPTED = "interrupted: rerun to continue"
_HELD: list[BuildLock] = []


def _on_uncaught(kind: type[BaseException], error: BaseException, trace: Any) -> None:
    """Ctrl-C ends the run with one line and 130; doit has already saved what finished (its database is
    written in a `finally`), so the rerun goes on from there."""
    if issubclass(kind, KeyboardInterrupt):
        sys.stdout.flush()
        sys.stderr.write(f"\nmmulab: {INTERRUPTED}\n")
        sys.stderr.flush()
        os._exit(ExitCode.INTERRUPTED)
    sys.__excepthook__(kind, error, trace)


def refuse_info_of_an_unknown_task(invocation: doitcli.Invocation, names: frozenset[str]) -> None:
    """`doit info NAME` with no such task: doit (0.36, 0.37) dies with a KeyError traceback in its info command.
    Say it first, in doit's own way: an InvalidCommand raised while doit loads dodo.py is doit's one ERROR line
    and exit 3, as for its other usage errors."""
    named = invocation.positional()
    if len(named) == 1 and named[0] not in names:
        raise InvalidCommand(f"`info`: no task {named[0]!r} (`doit list --all` lists them)")


def refuse_interactive_without_terminal(project: Project, argv: list[str], has_terminal: bool) -> None:
    """Before anything builds: a run naming an interactive task (shell:nommu, console:<case>, the whole `shell` or
    `console` group, or a pattern matching one) with no terminal on stdin stops with one line (exit 2)."""
    if has_terminal or doitcli.read(argv).command != "run":
        return
    from mmulab.pipeline.actions import needs_terminal
    from mmulab.pipeline.tasks import interactive_boots

    for boot in interactive_boots(project):
        if any(arg in (boot.basename, boot.task) or fnmatch.fnmatchcase(boot.task, arg) for arg in argv):
            raise ConfigError(f"{boot.task}: {needs_terminal(boot.scripted)}")


def run_root(project: Project, invocation: doitcli.Invocation) -> Path:
    """Where a run keeps its lock and doit database: its kernel series' folder; `doit matrix` (which runs one doit per
    series, each in its series' folder) at the top of the build directory."""
    if invocation.command == "run" and invocation.positional() == ("matrix",):
        return project.settings.build_dir
    return project.build_root()


def dodo_globals(argv: list[str]) -> dict[str, Any]:
    """What dodo.py exposes to doit: the task creators and DOIT_CONFIG."""
    sys.excepthook = _on_uncaught
    try:
        from mmulab.core.paths import Layout
        from mmulab.pipeline import report
        from mmulab.pipeline.report import MmulabReporter
        from mmulab.pipeline.tasks import all_tasks, doit_task_functions, task_names
        from mmulab.project.loader import load_project

        project = load_project()
        invocation = doitcli.read(argv)
        layout = Layout(run_root(project, invocation))
        report.RUN_ROOT = layout.root
        refuse_interactive_without_terminal(project, argv, stdin_is_terminal())
        try:
            layout.root.mkdir(parents=True, exist_ok=True)
            if invocation.command not in doitcli.READ_ONLY_COMMANDS:
                _HELD.append(BuildLock(layout.lock()))  # held (open) until this process ends
                _HELD[-1].acquire()
        except OSError as error:
            problem = f"cannot create or lock it ({error.filename}: {error.strerror})"
            raise EnvError(
                variable="MMULAB_BUILD_DIR",
                value=str(layout.root),
                problem=problem,
                accepts="a directory you can write",
            ) from None
        if invocation.command == "info":
            refuse_info_of_an_unknown_task(invocation, task_names(all_tasks(project)))
        creators = doit_task_functions(project)
    except ConfigError as error:
        sys.stderr.write(f"mmulab: error: {error}\n")
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        _on_uncaught(KeyboardInterrupt, KeyboardInterrupt(), None)
        raise
    except OSError as error:
        sys.stderr.write(f"mmulab: error: {error.filename or ''}: {error.strerror}\n")
        sys.exit(ExitCode.BAD_INPUT)
    return {
        **creators,
        "DOIT_CONFIG": {
            "default_tasks": ["boot"],
            "reporter": MmulabReporter,
            "dep_file": str(layout.doit_db()),
            "verbosity": 2,
        },
    }
