"""Runs on one build directory are serialized; read-only commands and other build directories never wait."""

from __future__ import annotations

import contextlib
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from conftest import default_root

from mmulab.core.doitcli import COMMANDS, READ_ONLY_COMMANDS, doit_argv, read
from mmulab.core.settings import PROJECT_ROOT

HOLD = """
import sys, time
from pathlib import Path
from mmulab.core.lock import BuildLock
lock = BuildLock(Path(sys.argv[1]) / ".lock")
lock.acquire()
print("held", flush=True)
while not Path(sys.argv[2]).exists():
    time.sleep(0.05)
"""


@contextlib.contextmanager
def holding(build: Path, release: Path) -> Iterator[subprocess.Popen[str]]:
    """A process holding the build directory's lock until `release` exists; ended however the test ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(build), str(release)], stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT
    )
    with ended(holder):
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield holder
        release.touch()
        holder.wait(timeout=10)


@contextlib.contextmanager
def ended(process: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    """`process`, killed and reaped on the way out if it is still running (a failed assertion included)."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def doit(args: list[str], build: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        doit_argv(args),
        env={"MMULAB_BUILD_DIR": str(build), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_second_run_waits_for_the_holder_says_for_whom_then_goes_on(tmp_path: Path) -> None:
    build, release = tmp_path / "build", tmp_path / "release"
    held = default_root(build)  # a run locks its kernel series' folder of the build directory
    with holding(held, release) as holder, ended(doit(["forget"], build)) as waiter:
        said = first_line(waiter, deadline=60)
        assert said == f"mmulab: waiting for the run holding {held / '.lock'} (pid {holder.pid})"
        # It does wait: the kernel lists it as blocked on the lock file (seen as soon as it is, no fixed sleep).
        assert blocked_on(held / ".lock", waiter, deadline=60), "the second run must wait while the first holds it"
        release.touch()
        _out, err = waiter.communicate(timeout=30)
    assert waiter.returncode == 0, err
    assert "Traceback" not in err


def blocked_on(lock: Path, process: subprocess.Popen[str], deadline: float) -> bool:
    """Whether `process` is seen waiting for an flock on `lock` (a "->" line of /proc/locks) before it exits
    or `deadline` seconds pass."""
    inode = lock.stat().st_ino
    give_up = time.monotonic() + deadline
    while process.poll() is None and time.monotonic() < give_up:
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            if fields[1] == "->" and int(fields[5]) == process.pid and int(fields[6].split(":")[2]) == inode:
                return True
        time.sleep(0.01)
    return False


def first_line(process: subprocess.Popen[str], deadline: float) -> str:
    """The first line `process` writes on stderr, waited for at most `deadline` seconds (a bound, not a
    measurement: the line comes as soon as the run finds the build directory held)."""
    assert process.stderr is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stderr, selectors.EVENT_READ)
        ready = selector.select(timeout=deadline)
    assert ready, f"no line on stderr within {deadline} s"
    return process.stderr.readline().rstrip("\n")


def test_other_build_directories_and_read_only_commands_do_not_wait(tmp_path: Path) -> None:
    build, release = tmp_path / "build", tmp_path / "release"
    with holding(default_root(build), release):
        other = doit(["forget"], tmp_path / "other-build")
        listing = doit(["list"], build)
        outputs = {}
        for name, process in (("other", other), ("list", listing)):
            with ended(process):
                out, err = process.communicate(timeout=30)
            assert process.returncode == 0 and "waiting" not in err, err
            outputs[name] = out
        assert "kernel " in outputs["list"]


def test_the_doit_command_is_its_first_argument_or_run() -> None:
    assert read(["list", "--all"]).command == "list"
    assert read(["boot:nommu"]).command == "run"
    assert read([]).command == "run"
    assert read(["-n", "2", "all"]).command == "run"
    assert READ_ONLY_COMMANDS < COMMANDS
