"""Any path works, or is refused in one line before anything builds.

Which characters break which tool was found by real builds (docs/environment.md, *Paths*): kbuild, musl's and
busybox's make rules and the compilers' PATH cannot take whitespace, `:`, `%`, `$` or shell quoting in the build
directory or LINUX_SRC; gcc escapes whitespace, `#` and `$` in the header lists the program tasks read back. The
slow tests build and boot for real from a checkout reached through a symlink (its own default build directory),
from a build directory on tmpfs outside the checkout whose path holds `#`, `=` and `,` (accepted), both with an
overlay folder elsewhere whose header is edited and seen rebuilt; and an interactive boot runs on a terminal
(a pty) but is refused without one.
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import conftest
import pytest
from checkout_copy import Result, copy_checkout, run_doit_in
from conftest import default_root

from mmulab.boot import qemu
from mmulab.build import busybox
from mmulab.core.doitcli import doit_argv
from mmulab.core.settings import MAKE_BREAKS, PROJECT_ROOT, unsafe_character

GREETING_HEADER = '#define GREETING "mmulab-paths: greeting {}"\n'
HELLO_S = """#include "{rt}"
#include "hello.h"
	.text
	.globl	_start
_start:
	say	GREETING
	call	line_end
	call	power_off
"""
HELLO_TOML = """[demos.hello.builds.asm]
init = ["hello.S", "{rt_s}"]

[demos.hello.runs.nommu]
must = ["Run /init as init process", "mmulab-paths: greeting", "reboot: Power down"]
timeout = 60
"""
CASES = ("smoke:clone_vm-asm-nommu", "smoke:hello-asm-nommu")
HANG_DEADLINE = 1800  # a deadline for hang detection (builds included, on a busy host), not a speed target


def clean_environment(**variables: str) -> dict[str, str]:
    """The tests' clean environment (the session's caches kept) plus `variables`."""
    return {**conftest.clean_environment(), **variables}


def doit(checkout: Path, args: list[str], env: dict[str, str], timeout: float = HANG_DEADLINE) -> Result:
    return run_doit_in(checkout, args, env, timeout)


def overlay_elsewhere(folder: Path, greeting: str = "one") -> Path:
    """A user's demo folder outside the checkout: an asm init including a header of its own (hello.h)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hello.h").write_text(GREETING_HEADER.format(greeting))
    (folder / "hello.S").write_text(HELLO_S.format(rt=PROJECT_ROOT / "initsrc" / "lib" / "rt.h"))
    (folder / "demos.toml").write_text(HELLO_TOML.format(rt_s=PROJECT_ROOT / "initsrc" / "lib" / "rt.S"))
    return folder


def shown(result: Result) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"


def assert_boots_and_sees_header_edits(
    checkout: Path, build: Path, overlay: Path, env: dict[str, str], also: tuple[str, ...] = ()
) -> None:
    """The cases (and `also`) build and pass; then an edit of the overlay's header rebuilds the program and boots
    the change."""
    result = doit(checkout, [*CASES, *also], env)
    assert result.returncode == 0, shown(result)
    cases = [task.removeprefix("smoke:") for task in (*CASES, *also) if task.startswith("smoke:")]
    for case in cases:
        assert '"passed": true' in (default_root(build) / "boots" / f"{case}.json").read_text(), case
    assert "mmulab-paths: greeting one" in (default_root(build) / "boots" / "hello-asm-nommu.log").read_text()
    (overlay / "hello.h").write_text(GREETING_HEADER.format("two"))
    result = doit(checkout, ["smoke:hello-asm-nommu"], env)
    assert result.returncode == 0, shown(result)
    assert ".  program:hello-asm" in result.stdout, shown(result)  # rebuilt, not "-- " (up to date)
    assert "mmulab-paths: greeting two" in (default_root(build) / "boots" / "hello-asm-nommu.log").read_text()


def tmpfs_folder() -> Path | None:
    """/dev/shm when it is a writable tmpfs (another filesystem than the checkout's), else None."""
    shm = Path("/dev/shm")
    mounts = Path("/proc/mounts").read_text().splitlines() if Path("/proc/mounts").is_file() else []
    is_tmpfs = any(line.split()[1:3] == [str(shm), "tmpfs"] for line in mounts if len(line.split()) > 2)
    return shm if is_tmpfs and os.access(shm, os.W_OK) else None


@pytest.fixture
def tmpfs_build() -> Iterator[Path]:
    """A build directory on tmpfs whose path holds the characters make takes as they are (# = ,)."""
    shm = tmpfs_folder()
    if shm is None:
        pytest.skip("no writable tmpfs at /dev/shm: the build directory on another filesystem is not tried")
    root = Path(tempfile.mkdtemp(dir=shm, prefix="mmulab-test-"))
    try:
        yield root / "a#b=c,d" / "build"
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --- fast: what is refused, what is not ---


@pytest.mark.parametrize("character", [" ", "\t", ":", "%", "$", "'", '"', "\\", ";", "(", ")", "&", "|", "<", ">"])
def test_make_breaks_names_each_character_found_breaking_a_build(character: str) -> None:
    problem = unsafe_character(Path(f"/tmp/x{character}y/build"), MAKE_BREAKS)
    assert problem, character
    assert problem.startswith(("a space:", "a tab:", f"{character!r}:")), problem


@pytest.mark.parametrize("character", ["#", "=", ",", "+", "@", "~", "!", "*", "?", "[", "é"])
def test_characters_a_real_build_took_are_accepted(character: str) -> None:
    """'#', '=' and ',' are in the slow tmpfs build's path; the others passed kbuild's and musl's steps."""
    assert unsafe_character(Path(f"/tmp/x{character}y/build"), MAKE_BREAKS) == ""


@pytest.mark.needs("riscv64-linux-gnu-gcc")
def test_a_checkout_and_an_overlay_at_paths_with_a_space_hash_and_dollar_build_and_see_header_edits(
    tmp_path: Path,
) -> None:
    """No compile command names the checkout or the overlay (a program compiles in its own folder, reaching its
    sources through links): their paths may hold what gcc escapes in its header lists; an edited header of each
    still rebuilds the program. The copy's own mmulab is imported (PYTHONPATH): its PROJECT_ROOT holds them."""
    checkout = copy_checkout(tmp_path / "my projects#1$x" / "mmulab")
    overlay = overlay_elsewhere(tmp_path / "my demos#2$y")
    env = clean_environment(MMULAB_BUILD_DIR=str(tmp_path / "build"), MMULAB_CONFIG_OVERLAY=str(overlay))
    result = doit(checkout, ["program:hello-asm"], env, timeout=300)
    assert result.returncode == 0, shown(result)
    program = default_root(tmp_path / "build") / "programs" / "hello-asm" / "hello-asm"
    assert b"mmulab-paths: greeting one" in program.read_bytes()
    (overlay / "hello.h").write_text(GREETING_HEADER.format("two"))
    result = doit(checkout, ["program:hello-asm"], env, timeout=300)
    assert result.returncode == 0 and ".  program:hello-asm" in result.stdout, shown(result)
    assert b"mmulab-paths: greeting two" in program.read_bytes()
    result = doit(checkout, ["program:hello-asm"], env, timeout=300)
    assert "-- program:hello-asm" in result.stdout, shown(result)  # nothing changed: up to date


def test_a_checkout_reached_through_a_symlink_with_a_space_is_fine(tmp_path: Path) -> None:
    """What the tools see is the real path: a link's own name does not matter."""
    checkout = copy_checkout(tmp_path / "real")
    (tmp_path / "my link").symlink_to(checkout)
    env = clean_environment(MMULAB_BUILD_DIR=str(tmp_path / "build"))
    result = doit(tmp_path / "my link", ["list"], env, timeout=120)
    assert result.returncode == 0 and result.stderr == "", shown(result)


@pytest.mark.needs("riscv64-linux-gnu-gcc", "ccache")
def test_a_compile_cache_folder_with_a_space_and_a_colon_serves_hits(tmp_path: Path) -> None:
    """MMULAB_CCACHE_DIR reaches ccache only (CCACHE_DIR): any path works. Two build directories, one program:
    the second build's compiles are hits from that folder."""
    cache = tmp_path / "my cache:1"
    for build in ("first", "second"):
        env = clean_environment(MMULAB_BUILD_DIR=str(tmp_path / build), MMULAB_CCACHE_DIR=str(cache))
        result = doit(PROJECT_ROOT, ["program:clone_vm-asm"], env, timeout=300)
        assert result.returncode == 0, shown(result)
    assert "program:clone_vm-asm: compile cache: 2 hits" in result.stdout, shown(result)
    assert (cache / "ccache.conf").is_file() or any(cache.iterdir())


# --- slow: real builds and boots at these paths ---


@pytest.mark.slow
@pytest.mark.needs("make", "qemu-system-riscv64", "riscv64-linux-gnu-gcc")
def test_symlinked_checkout_builds_and_boots_in_its_default_build_dir(tmp_path: Path) -> None:
    """A second checkout reached through a symlink, its default build directory inside it, an overlay elsewhere."""
    real = copy_checkout(tmp_path / "real-checkout")
    link = tmp_path / "via-link"
    link.symlink_to(real)
    overlay = overlay_elsewhere(tmp_path / "my-demos")
    env = clean_environment(MMULAB_CONFIG_OVERLAY=str(overlay))
    assert_boots_and_sees_header_edits(link, real / "build", overlay, env)


@pytest.mark.slow
@pytest.mark.needs("make", "qemu-system-riscv64", "riscv64-linux-gnu-gcc")
def test_build_dir_on_tmpfs_outside_the_checkout_builds_and_boots(tmp_path: Path, tmpfs_build: Path) -> None:
    """Another filesystem, outside the checkout, a path holding # = and , (make takes them as they are): the
    kernel, musl, a C program against it and busybox build there, and the programs boot."""
    overlay = overlay_elsewhere(tmp_path / "my-demos")
    env = clean_environment(MMULAB_BUILD_DIR=str(tmpfs_build), MMULAB_CONFIG_OVERLAY=str(overlay))
    assert_boots_and_sees_header_edits(
        PROJECT_ROOT, tmpfs_build, overlay, env, also=("smoke:clone_vm-c-nommu", "busybox:nommu")
    )
    nommu_busybox = f"busybox/{busybox.Flavour.of(conftest.checkout_configs().variants['nommu']).key}/out/busybox"
    for built in ("nommu/kernel/out/Image", nommu_busybox, "programs/clone_vm-c/clone_vm-c"):
        assert (default_root(tmpfs_build) / built).stat().st_size > 0, built


# --- no terminal: refused in one line; with one, the boot runs and ends ---


def read_pty(master: int, process: subprocess.Popen[bytes], deadline: float) -> str:
    """What the terminal showed until the process ended (or the deadline passed: the caller then kills it)."""
    seen = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the other side closed: the process ended
                chunk = b""
            seen += chunk
            if not chunk and process.poll() is not None:
                break
        elif process.poll() is not None:
            break
    return seen.decode(errors="replace")


@pytest.mark.slow
@pytest.mark.needs("make", "qemu-system-riscv64", "riscv64-linux-gnu-gcc")
def test_interactive_boot_needs_a_terminal_and_runs_on_one(tmp_path: Path) -> None:
    """`doit console:<case> </dev/null` stops at once with one line (exit 2), even with everything built; on a
    pty the same task boots the case, which powers off by itself, and QEMU ends."""
    build = tmp_path / "build"
    overlay = overlay_elsewhere(tmp_path / "my-demos")
    env = clean_environment(MMULAB_BUILD_DIR=str(build), MMULAB_CONFIG_OVERLAY=str(overlay))
    built = doit(PROJECT_ROOT, ["smoke:hello-asm-nommu"], env)
    assert built.returncode == 0, shown(built)

    refused = doit(PROJECT_ROOT, ["console:hello-asm-nommu"], env, timeout=120)
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert refused.returncode == 2, shown(refused)
    assert len(lines) == 1, shown(refused)
    assert lines[0].startswith("mmulab: error: console:hello-asm-nommu: needs a terminal on stdin"), lines[0]
    assert "doit smoke:hello-asm-nommu" in lines[0], lines[0]

    master, slave = pty.openpty()
    process = subprocess.Popen(
        doit_argv(["console:hello-asm-nommu"]),
        env=env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    try:
        screen = read_pty(master, process, time.monotonic() + HANG_DEADLINE)
        code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        os.close(master)
    assert code == 0, screen[-3000:]
    assert "mmulab-paths: greeting one" in screen and "reboot: Power down" in screen, screen[-3000:]
    assert "needs a terminal" not in screen, screen[-3000:]


@pytest.mark.parametrize(
    "argv",
    [["shell:nommu"], ["console:clone_vm-asm-nommu"], ["run", "shell:mmu"], ["-n", "2", "console"], ["shell:*"]],
)
def test_an_interactive_task_without_a_terminal_is_refused_up_front(argv: list[str]) -> None:
    from mmulab.core.errors import ConfigError
    from mmulab.pipeline.run import refuse_interactive_without_terminal
    from mmulab.project.loader import load_project

    project = load_project()
    refuse_interactive_without_terminal(project, argv, has_terminal=True)  # a terminal: nothing to refuse
    with pytest.raises(ConfigError, match=r"^(shell|console):\S+: needs a terminal on stdin .* use doit smoke:"):
        refuse_interactive_without_terminal(project, argv, has_terminal=False)


@pytest.mark.parametrize("argv", [["list", "shell"], ["info", "console:nommu"], ["smoke:clone_vm-asm-nommu"], []])
def test_reading_commands_and_other_tasks_need_no_terminal(argv: list[str]) -> None:
    from mmulab.pipeline.run import refuse_interactive_without_terminal
    from mmulab.project.loader import load_project

    refuse_interactive_without_terminal(load_project(), argv, has_terminal=False)


def test_the_console_action_itself_refuses_without_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any other way into the task (not through dodo.py's check) meets the same line before QEMU starts."""
    from doit.exceptions import TaskError

    from mmulab.pipeline import actions
    from mmulab.project.loader import load_project

    started: list[list[str]] = []
    monkeypatch.setattr(actions, "stdin_is_terminal", lambda: False)
    monkeypatch.setattr(qemu, "run_interactive", lambda command: started.append(command) or 0)
    result = actions.console(load_project(), "clone_vm-asm-nommu", "", "smoke:clone_vm-asm-nommu")
    assert isinstance(result, TaskError), result
    message = result.get_msg()
    assert message.startswith("needs a terminal on stdin") and "doit smoke:clone_vm-asm-nommu" in message, message
    assert started == []
