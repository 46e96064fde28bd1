"""Runs on one build directory are serialized; read-only commands and other build directories never wait."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from conftest import DOIT

from mmulab.lock import READ_ONLY_COMMANDS, doit_command
from mmulab.run import DOIT_COMMANDS
from mmulab.settings import PROJECT_ROOT

HOLD = """
import sys, time
from pathlib import Path
from mmulab.lock import BuildLock
lock = BuildLock(Path(sys.argv[1]) / ".lock")
lock.acquire()
print("held", flush=True)
while not Path(sys.argv[2]).exists():
    time.sleep(0.05)
"""


def hold(build: Path, release: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(build), str(release)], stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def doit(args: list[str], build: Path) -> subprocess.Popen[str]:
    command, *rest = args
    return subprocess.Popen(
        [sys.executable, "-m", "doit", command, *DOIT[3:], *rest],
        env={"MMULAB_BUILD_DIR": str(build), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_second_run_waits_for_the_holder_says_for_whom_then_goes_on(tmp_path: Path) -> None:
    build, release = tmp_path / "build", tmp_path / "release"
    holder = hold(build, release)
    waiter = doit(["forget"], build)
    time.sleep(1.5)
    assert waiter.poll() is None, "the second run must wait while the first holds the build directory"
    release.touch()
    holder.wait(timeout=10)
    _out, err = waiter.communicate(timeout=30)
    assert waiter.returncode == 0, err
    assert err.splitlines()[0] == f"mmulab: waiting for the run holding {build / '.lock'} (pid {holder.pid})"
    assert "Traceback" not in err


def test_other_build_directories_and_read_only_commands_do_not_wait(tmp_path: Path) -> None:
    build, release = tmp_path / "build", tmp_path / "release"
    holder = hold(build, release)
    try:
        other = doit(["forget"], tmp_path / "other-build")
        listing = doit(["list"], build)
        outputs = {}
        for name, process in (("other", other), ("list", listing)):
            out, err = process.communicate(timeout=30)
            assert process.returncode == 0 and "waiting" not in err, err
            outputs[name] = out
        assert "kernel " in outputs["list"]
    finally:
        release.touch()
        holder.wait(timeout=10)


def test_the_doit_command_is_its_first_argument_or_run() -> None:
    assert doit_command(["list", "--all"], DOIT_COMMANDS) == "list"
    assert doit_command(["boot:nommu"], DOIT_COMMANDS) == "run"
    assert doit_command([], DOIT_COMMANDS) == "run"
    assert doit_command(["-n", "2", "all"], DOIT_COMMANDS) == "run"
    assert READ_ONLY_COMMANDS < DOIT_COMMANDS
