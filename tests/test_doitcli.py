"""The doit command line (mmulab.core.doitcli): the sub-command of an argv read the way doit reads it, and doit
itself on this checkout answering the way mmulab says (no private patch of doit: `doit info NAME` with no such
task is one ERROR line and exit 3, whatever the order of doit's options)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import clean_environment, make_project

from mmulab.core.doitcli import COMMANDS, READ_ONLY_COMMANDS, doit_argv, read
from mmulab.core.settings import PROJECT_ROOT
from mmulab.pipeline import tasks

DODO = ["-f", str(PROJECT_ROOT / "dodo.py"), "-d", str(PROJECT_ROOT)]


def run(argv: list[str], build: Path) -> subprocess.CompletedProcess[str]:
    """doit as a script runs it: no terminal on stdin, its own build directory."""
    return subprocess.run(
        argv,
        env=clean_environment() | {"MMULAB_BUILD_DIR": str(build)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("argv", "command", "positional"),
    [
        (["list", "--all"], "list", ()),
        (["boot:nommu"], "run", ("boot:nommu",)),
        ([], "run", ()),
        (["-n", "2", "all"], "run", ("all",)),
        (["run", "-n", "2", "all"], "run", ("all",)),
        # doit reads its dodo-file options before the sub-command, and NAME=value as one of its variables
        ([*DODO, "list", "shell"], "list", ("shell",)),
        (["-f", "dodo.py", "info", "--no-status", "kernel:nommu"], "info", ("kernel:nommu",)),
        (["release=x", "info", "boot"], "info", ("boot",)),
        (["-k", "forget", "kernel:nommu"], "forget", ("kernel:nommu",)),
        # an option the sub-command does not have: doit refuses it itself
        (["info", "--no-such-option", "boot"], "info", ()),
    ],
)
def test_the_sub_command_is_read_as_doit_reads_it(argv: list[str], command: str, positional: tuple[str, ...]) -> None:
    invocation = read(argv)
    assert invocation.command == command
    assert invocation.positional() == positional


def test_the_command_line_puts_the_sub_command_first_and_dumpdb_reads_no_dodo_file(tmp_path: Path) -> None:
    python = [sys.executable, "-m", "doit"]
    assert doit_argv(["list", "--all"]) == [*python, "list", *DODO, "--all"]
    assert doit_argv(["-n", "2", "all"]) == [*python, *DODO, "-n", "2", "all"]
    assert doit_argv(["dumpdb", "--db-file", "x"]) == [*python, "dumpdb", "--db-file", "x"]
    elsewhere = tmp_path / "checkout"
    assert doit_argv(["run"], elsewhere) == [*python, "run", "-f", str(elsewhere / "dodo.py"), "-d", str(elsewhere)]
    assert READ_ONLY_COMMANDS < COMMANDS and {"run", "info", "forget", "reset-dep"} <= COMMANDS


@pytest.mark.parametrize(
    "argv",
    [
        doit_argv(["info", "no-such-task"]),
        [sys.executable, "-m", "doit", *DODO, "info", "--no-status", "no-such-task"],
    ],
    ids=["info-first", "dodo-options-first"],
)
def test_info_of_no_such_task_is_one_error_line_and_exit_3(argv: list[str], tmp_path: Path) -> None:
    result = run(argv, tmp_path / "build")
    shown = f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 3, shown
    assert result.stderr.splitlines() == ["ERROR: `info`: no task 'no-such-task' (`doit list --all` lists them)"], shown
    assert result.stdout == "", shown


def test_info_names_a_group_and_a_sub_task(tmp_path: Path) -> None:
    """Groups are tasks doit knows too: `doit info boot` shows the group's own doc, not an error."""
    build = tmp_path / "build"
    declared = tasks.all_tasks(make_project(build))
    docs = {
        task["basename"] if tasks.is_group(task) else f"{task['basename']}:{task['name']}": task["doc"]
        for task in declared
        if "name" in task
    }
    for name in ("boot", "boot:nommu"):
        result = run(doit_argv(["info", "--no-status", name]), build)
        assert result.returncode == 0 and result.stderr == "", result.stderr
        assert result.stdout.split("\n")[1:4] == [name, "", docs[name]], result.stdout


def test_a_read_only_command_after_the_dodo_options_needs_no_terminal(tmp_path: Path) -> None:
    """`doit -f dodo.py -d . list shell`: doit runs `list` (the sub-command after its dodo-file options), which
    only reads; it is not refused as an interactive run without a terminal."""
    result = run([sys.executable, "-m", "doit", *DODO, "list", "shell"], tmp_path / "build")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert result.stdout.split()[0] == "shell", result.stdout
