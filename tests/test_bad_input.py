"""The table of bad input and faults: each row runs the real `doit` (conftest's run_doit) in a temporary build
directory and checks the answer: the exit code (2 bad configuration, 1 failed task, 3 doit usage, 0 fine),
no traceback, and ONE line `mmulab: error: ...` (or `mmulab: warning: ...`) naming what to fix.

Every row fails before any build (no make, no QEMU): the whole table takes seconds. The test ids read as the
table: `<bad input> -> exit N naming <what>`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from checkout_copy import run_bounded
from conftest import LocalServer, doit_argv

from mmulab.core.settings import PROJECT_ROOT

Env = dict[str, str]
Setup = Callable[[Path, pytest.FixtureRequest], Env]

# Variables the rows set; cleared for every row so the caller's environment cannot change an answer.
CLEARED = (
    "MMULAB_JOBS",
    "SOURCE_DATE_EPOCH",
    "MMULAB_FETCH_RETRIES",
    "MMULAB_FETCH_BACKOFF",
    "MMULAB_PROGRESS",
    "MMULAB_MIRRORS",
    "MMULAB_CONFIG_OVERLAY",
    "MMULAB_CONFIGS",
    "LINUX_SRC",
    "MMULAB_FRAGMENT_NOMMU",
    "MMULAB_FRAGMENT_MMU",
    "MMULAB_DPKG_ADMINDIR",
    "MMULAB_CCACHE_DIR",
)


@dataclass(frozen=True)
class Row:
    """One bad input: the doit arguments, how to set it up, and the answer expected."""

    args: tuple[str, ...]
    setup: Setup
    exit: int
    names: tuple[str, ...] = ()  # what the one line must contain (the variable/file/field/tool and the fix)
    answer: str = "error"  # error | warning: one mmulab line; clean: no stderr; doit: doit's own ERROR line
    stdout: tuple[str, ...] = field(default=())  # what stdout must contain


def env(**variables: str) -> Setup:
    return lambda tmp_path, request: dict(variables)


def with_paths(make: Callable[[Path], Env]) -> Setup:
    return lambda tmp_path, request: make(tmp_path)


def empty_path(tmp_path: Path) -> Env:
    """PATH holding one empty directory: no cross compiler, no make, no QEMU (doit runs as sys.executable)."""
    (tmp_path / "empty").mkdir(exist_ok=True)
    return {"PATH": str(tmp_path / "empty")}


def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("not a directory\n")
    return path


def fragment(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "my.config"
    path.write_text(text)
    return path


def overlay(file: str, text: str) -> Setup:
    """MMULAB_CONFIG_OVERLAY: a folder with `file` (e.g. demos.toml) holding `text`, plus small sources."""

    def setup(tmp_path: Path, request: pytest.FixtureRequest) -> Env:
        folder = tmp_path / "mine"
        folder.mkdir()
        (folder / "hello.S").write_text(".globl _start\n_start:\n")
        (folder / "hello.c").write_text("int main(void) { return 0; }\n")
        (folder / file).write_text(text)
        return {"MMULAB_CONFIG_OVERLAY": str(folder)}

    return setup


ASM_BUILD = '[demos.hello.builds.asm]\ninit = ["hello.S"]\n'


def copied_configs(tmp_path: Path, edit: Callable[[Path], None]) -> Env:
    """MMULAB_CONFIGS: a copy of configs/ (beside a link to initsrc/, which demos.toml names) edited by `edit`."""
    project = tmp_path / "project"
    shutil.copytree(PROJECT_ROOT / "configs", project / "configs")
    (project / "initsrc").symlink_to(PROJECT_ROOT / "initsrc")
    edit(project / "configs")
    return {"MMULAB_CONFIGS": str(project / "configs")}


def broken_template(tmp_path: Path) -> Env:
    def edit(configs: Path) -> None:
        with (configs / "kernel" / "riscv64.config.j2").open("a") as template:
            template.write("{% if %}\n")

    fake_tree = tmp_path / "linux"
    fake_tree.mkdir()
    # Passes the "is it a kernel tree" check and gives the template its version; the template fails first.
    (fake_tree / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 0\n")
    return {**copied_configs(tmp_path, edit), "LINUX_SRC": str(fake_tree)}


def missing_config_file(tmp_path: Path) -> Env:
    return copied_configs(tmp_path, lambda configs: (configs / "demos.toml").unlink())


PAYLOAD = b"mmulab demo source\n" * 1000
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


def served_source(mirror_path: str, origin_file: str = "demo-1.0.tar") -> Setup:
    """An overlay sources.toml adding source `demo`, pinned, whose origin is a local HTTP server; a mirror
    at `<server>/<mirror_path>` serves a wrong file (sha256 mismatch) and `/truncated/` cuts it in half."""

    def setup(tmp_path: Path, request: pytest.FixtureRequest) -> Env:
        server: LocalServer = request.getfixturevalue("http_server")
        (server.root / "demo-1.0.tar").write_bytes(PAYLOAD)
        (server.root / "wrong").mkdir()
        (server.root / "wrong" / "demo-1.0.tar").write_bytes(PAYLOAD + b"tampered")
        folder = tmp_path / "mine"
        folder.mkdir()
        (folder / "sources.toml").write_text(
            f'[sources.demo]\nversion = "1.0"\nsha256 = "{PAYLOAD_SHA}"\nfilename = "demo-1.0.tar"\n'
            f'[[sources.demo.origins]]\nkind = "url"\nurl = "{server.url}/{origin_file}"\n'
        )
        return {
            "MMULAB_CONFIG_OVERLAY": str(folder),
            "MMULAB_MIRRORS": f"{server.url}/{mirror_path}" if mirror_path else "",
            "MMULAB_FETCH_RETRIES": "0",
            "MMULAB_FETCH_BACKOFF": "0",
        }

    return setup


def folder(path: Path) -> str:
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def linked_overlay_with_a_space(tmp_path: Path) -> Env:
    """MMULAB_CONFIG_OVERLAY names a link without a space to a folder with one: the real path counts."""
    (tmp_path / "link").symlink_to(folder(tmp_path / "my demos"))
    return {"MMULAB_CONFIG_OVERLAY": str(tmp_path / "link")}


def caches_with_a_space_and_a_colon(tmp_path: Path, request: pytest.FixtureRequest) -> Env:
    """A real download into (and the compile cache's folder at) paths with a space and a colon: Python and
    ccache take any path, so nothing refuses them."""
    return {
        **served_source("")(tmp_path, request),
        "MMULAB_DL_DIR": str(tmp_path / "my downloads:1"),
        "MMULAB_CCACHE_DIR": str(tmp_path / "my cache:1"),
    }


def not_a_kernel_tree(tmp_path: Path) -> Env:
    (tmp_path / "not-linux").mkdir()
    return {"LINUX_SRC": str(tmp_path / "not-linux")}


ROWS: dict[str, Row] = {
    # --- a machine without the tools: reading commands work, a task needing one names its Debian package ---
    "PATH without any tool, doit list -> exit 0": Row(
        ("list",), with_paths(empty_path), 0, answer="clean", stdout=("boot", "kconfig")
    ),
    "PATH without any tool, doit help -> exit 0": Row(("help",), with_paths(empty_path), 0, answer="clean"),
    "PATH without any tool, doit info kernel:nommu -> exit 1 (doit: not up to date)": Row(
        ("info", "kernel:nommu"), with_paths(empty_path), 1, answer="clean", stdout=("status", "kernel:nommu")
    ),
    "PATH without the cross compiler, doit program:clone_vm-asm -> exit 1 naming the tool and its package": Row(
        ("program:clone_vm-asm",),
        with_paths(empty_path),
        1,
        ("program:clone_vm-asm", "riscv64-linux-gnu-gcc", "Debian package gcc-riscv64-linux-gnu", "setup.sh"),
    ),
    # --- environment variables: exit 2 naming the variable and what it accepts ---
    "MMULAB_JOBS=abc -> exit 2 naming MMULAB_JOBS": Row(
        ("kconfig:nommu",), env(MMULAB_JOBS="abc"), 2, ("MMULAB_JOBS='abc'", "a whole number >= 1")
    ),
    "MMULAB_JOBS=0 -> exit 2 naming MMULAB_JOBS": Row(
        ("kconfig:nommu",), env(MMULAB_JOBS="0"), 2, ("MMULAB_JOBS='0'", "out of range", "a whole number >= 1")
    ),
    "SOURCE_DATE_EPOCH=x -> exit 2 naming SOURCE_DATE_EPOCH": Row(
        ("kconfig:nommu",), env(SOURCE_DATE_EPOCH="x"), 2, ("SOURCE_DATE_EPOCH='x'", "seconds since 1970")
    ),
    "SOURCE_DATE_EPOCH=-5 -> exit 2 naming SOURCE_DATE_EPOCH": Row(
        ("kconfig:nommu",), env(SOURCE_DATE_EPOCH="-5"), 2, ("SOURCE_DATE_EPOCH='-5'", "whole number >= 0")
    ),
    "MMULAB_FETCH_RETRIES=-1 -> exit 2 naming MMULAB_FETCH_RETRIES": Row(
        ("fetch:linux",), env(MMULAB_FETCH_RETRIES="-1"), 2, ("MMULAB_FETCH_RETRIES='-1'", "a whole number >= 0")
    ),
    "MMULAB_FETCH_BACKOFF=soon -> exit 2 naming MMULAB_FETCH_BACKOFF": Row(
        ("fetch:linux",), env(MMULAB_FETCH_BACKOFF="soon"), 2, ("MMULAB_FETCH_BACKOFF='soon'", "seconds >= 0")
    ),
    "MMULAB_FETCH_BACKOFF=nan -> exit 2 naming MMULAB_FETCH_BACKOFF": Row(
        ("fetch:linux",), env(MMULAB_FETCH_BACKOFF="nan"), 2, ("MMULAB_FETCH_BACKOFF='nan'", "not a finite number")
    ),
    "MMULAB_PROGRESS=maybe -> exit 2 naming MMULAB_PROGRESS and its values": Row(
        ("kconfig:nommu",), env(MMULAB_PROGRESS="maybe"), 2, ("MMULAB_PROGRESS='maybe'", "auto or tty or plain or off")
    ),
    "MMULAB_MIRRORS=ftp://x -> exit 2 naming MMULAB_MIRRORS": Row(
        ("fetch:linux",), env(MMULAB_MIRRORS="ftp://x"), 2, ("MMULAB_MIRRORS='ftp://x'", "http(s) URLs")
    ),
    # --- locations ---
    "MMULAB_BUILD_DIR=<a regular file> -> exit 2 naming MMULAB_BUILD_DIR": Row(
        ("kconfig:nommu",),
        with_paths(lambda t: {"MMULAB_BUILD_DIR": str(a_file(t))}),
        2,
        ("MMULAB_BUILD_DIR=", "not a directory"),
    ),
    "MMULAB_BUILD_DIR=<under a regular file> -> exit 2 naming MMULAB_BUILD_DIR": Row(
        ("kconfig:nommu",),
        with_paths(lambda t: {"MMULAB_BUILD_DIR": str(a_file(t) / "build")}),
        2,
        ("MMULAB_BUILD_DIR=", "cannot create", "a directory you can write"),
    ),
    "MMULAB_DL_DIR=<a regular file> -> exit 2 naming MMULAB_DL_DIR": Row(
        ("fetch:linux",), with_paths(lambda t: {"MMULAB_DL_DIR": str(a_file(t))}), 2, ("MMULAB_DL_DIR=", "a directory")
    ),
    "MMULAB_CONFIG_OVERLAY=<missing dir> -> exit 2 naming MMULAB_CONFIG_OVERLAY": Row(
        ("list",),
        with_paths(lambda t: {"MMULAB_CONFIG_OVERLAY": str(t / "nowhere")}),
        2,
        ("MMULAB_CONFIG_OVERLAY=", "no such directory"),
    ),
    "LINUX_SRC=<missing dir> -> exit 2 naming LINUX_SRC": Row(
        ("kconfig:nommu",),
        with_paths(lambda t: {"LINUX_SRC": str(t / "nowhere")}),
        2,
        ("LINUX_SRC=", "no such directory"),
    ),
    "MMULAB_CONFIGS=<missing dir> -> exit 2 naming MMULAB_CONFIGS": Row(
        ("list",), with_paths(lambda t: {"MMULAB_CONFIGS": str(t / "nowhere")}), 2, ("MMULAB_CONFIGS=", "no such")
    ),
    # --- paths make or gcc cannot handle (docs/environment.md, Paths: found by real builds), refused before any build
    "MMULAB_BUILD_DIR=<path with a space> -> exit 2 naming the path and why": Row(
        ("kconfig:nommu",),
        with_paths(lambda t: {"MMULAB_BUILD_DIR": str(t / "my build")}),
        2,
        ("MMULAB_BUILD_DIR=", "my build'", "holds a space: make splits paths at whitespace", "a path without"),
    ),
    "MMULAB_BUILD_DIR=<path with a colon> -> exit 2 naming the path and why": Row(
        ("kconfig:nommu",),
        with_paths(lambda t: {"MMULAB_BUILD_DIR": str(t / "build:1")}),
        2,
        ("MMULAB_BUILD_DIR=", "build:1'", "holds ':': kbuild refuses a source tree holding it"),
    ),
    "MMULAB_BUILD_DIR=<path with $> -> exit 2 naming the path and why": Row(
        ("kconfig:nommu",),
        with_paths(lambda t: {"MMULAB_BUILD_DIR": str(t / "build$HOME")}),
        2,
        ("MMULAB_BUILD_DIR=", "build$HOME'", "holds '$': make expands it"),
    ),
    "MMULAB_BUILD_DIR=<path with %> -> exit 2 naming the path and why": Row(
        ("kconfig:nommu",),
        with_paths(lambda t: {"MMULAB_BUILD_DIR": str(t / "100%")}),
        2,
        ("MMULAB_BUILD_DIR=", "100%'", "holds '%': make takes it for a pattern"),
    ),
    "MMULAB_BUILD_DIR=<path with # = ,> -> accepted (a real build takes them)": Row(
        ("list",), with_paths(lambda t: {"MMULAB_BUILD_DIR": str(t / "a#b=c,d")}), 0, answer="clean"
    ),
    "LINUX_SRC=<a tree whose path holds a colon> -> exit 2 naming the path and why": Row(
        ("kconfig:nommu",),
        with_paths(lambda t: {"LINUX_SRC": folder(t / "linux:6.12")}),
        2,
        ("LINUX_SRC=", "linux:6.12'", "holds ':': kbuild refuses a source tree holding it"),
    ),
    "MMULAB_CONFIG_OVERLAY=<a link to a folder with a space> -> accepted, exit 0": Row(
        ("list",), with_paths(linked_overlay_with_a_space), 0, answer="clean"
    ),
    "MMULAB_CONFIGS=<path with # and a space> -> accepted, exit 0": Row(
        ("list",), with_paths(lambda t: copied_configs(t / "tree #2", lambda configs: None)), 0, answer="clean"
    ),
    "MMULAB_DL_DIR, MMULAB_CCACHE_DIR with a space and a colon -> a real download works, exit 0": Row(
        ("fetch:demo",), caches_with_a_space_and_a_colon, 0, answer="clean", stdout=("demo: 1.0 from http://",)
    ),
    "MMULAB_CONFIGS=<a copy without demos.toml> -> exit 2 naming the file": Row(
        ("list",), with_paths(missing_config_file), 2, ("demos.toml: missing", "MMULAB_CONFIGS")
    ),
    "LINUX_SRC=<a directory that is no kernel tree> -> exit 1 naming the tree": Row(
        ("kconfig:nommu",),
        with_paths(not_a_kernel_tree),
        1,
        ("kconfig:nommu", "not-linux: not a kernel source tree", "check LINUX_SRC"),
    ),
    # --- kernel config fragments ---
    "MMULAB_FRAGMENT_NOSUCH=<a file> -> exit 2 naming the variable and the variants": Row(
        ("list",),
        with_paths(lambda t: {"MMULAB_FRAGMENT_NOSUCH": str(fragment(t, "CONFIG_X=y\n"))}),
        2,
        ("MMULAB_FRAGMENT_NOSUCH", "no variant 'nosuch'", "variants: mmu, mmu-full, nommu"),
    ),
    "MMULAB_FRAGMENT_NOMMU=<missing file> -> exit 2 naming MMULAB_FRAGMENT_NOMMU": Row(
        ("kconfig:nommu",),
        with_paths(lambda t: {"MMULAB_FRAGMENT_NOMMU": str(t / "nothere.config")}),
        2,
        ("MMULAB_FRAGMENT_NOMMU=", "no such file"),
    ),
    "MMULAB_FRAGMENT_NOMMU=<fragment with a junk line> -> exit 2 naming file:line": Row(
        ("kconfig:nommu",),
        with_paths(lambda t: {"MMULAB_FRAGMENT_NOMMU": str(fragment(t, "CONFIG_X=y\nthis is junk\n"))}),
        2,
        ("my.config:2: not a Kconfig line: 'this is junk'", "CONFIG_X=y"),
    ),
    "broken Jinja2 kernel template -> exit 2 naming the template and line": Row(
        ("kconfig:nommu",), with_paths(broken_template), 2, ("kconfig:nommu", "riscv64.config.j2:", "template error")
    ),
    # --- a user's demos.toml (MMULAB_CONFIG_OVERLAY): exit 2 naming the overlay file and the field ---
    "overlay demos.toml invalid TOML -> exit 2 naming the file and the position": Row(
        ("list",), overlay("demos.toml", "[demos.hello\n"), 2, ("mine/demos.toml: invalid TOML", "line 1")
    ),
    "overlay run on an unknown variant -> exit 2 naming the field": Row(
        ("list",),
        overlay("demos.toml", ASM_BUILD + '[demos.hello.runs.risc]\nmust = ["hi"]\n'),
        2,
        ("mine/demos.toml: demos.hello.runs.risc.variant: 'risc' is not a variant",),
    ),
    "overlay run with an unknown qemu option set -> exit 2 naming the field and the sets": Row(
        ("list",),
        overlay("demos.toml", ASM_BUILD + '[demos.hello.runs.nommu]\nqemu = "turbo"\nmust = ["hi"]\n'),
        2,
        ("mine/demos.toml: demos.hello.runs.nommu.qemu: 'turbo'", "is not in [qemu_options] (default, mmu-off, "),
    ),
    "overlay build with a missing init source -> exit 2 naming the field and the file": Row(
        ("list",),
        overlay("demos.toml", '[demos.hello.builds.asm]\ninit = ["gone.S"]\n'),
        2,
        ("mine/demos.toml: demos.hello.builds.asm.init:", "gone.S: no such file"),
    ),
    "overlay asm build given a .c source -> exit 2 naming the field and the suffixes": Row(
        ("list",),
        overlay("demos.toml", '[demos.hello.builds.asm]\ninit = ["hello.c"]\n'),
        2,
        ("mine/demos.toml: demos.hello.builds.asm.init:", "hello.c: not a source of language asm (.S, .s)"),
    ),
    "overlay build in an unknown language -> exit 2 naming the languages": Row(
        ("list",),
        overlay("demos.toml", '[demos.hello.builds.rust]\ninit = ["hello.S"]\n'),
        2,
        ("mine/demos.toml: demos.hello.builds.rust: 'rust' is not a language", "(asm, c, busybox)"),
    ),
    "overlay pass run without must -> exit 2 naming the field": Row(
        ("list",),
        overlay("demos.toml", ASM_BUILD + "[demos.hello.runs.nommu]\ntimeout = 5\n"),
        2,
        ("mine/demos.toml: demos.hello.runs.nommu.must:", "needs at least one line"),
    ),
    "overlay timeout = 0 -> exit 2 naming the field": Row(
        ("list",),
        overlay("demos.toml", ASM_BUILD + '[demos.hello.runs.nommu]\nmust = ["hi"]\ntimeout = 0\n'),
        2,
        ("mine/demos.toml: demos.hello.runs.nommu.timeout:", "positive, finite number of seconds"),
    ),
    "overlay timeout = inf -> exit 2 naming the field": Row(
        ("list",),
        overlay("demos.toml", ASM_BUILD + '[demos.hello.runs.nommu]\nmust = ["hi"]\ntimeout = inf\n'),
        2,
        ("mine/demos.toml: demos.hello.runs.nommu.timeout: inf:", "finite number of seconds"),
    ),
    "overlay timeout = true -> exit 2 naming the field": Row(
        ("list",),
        overlay("demos.toml", ASM_BUILD + '[demos.hello.runs.nommu]\nmust = ["hi"]\ntimeout = true\n'),
        2,
        ("mine/demos.toml: demos.hello.runs.nommu.timeout: expected int or float, found True",),
    ),
    "overlay expect = maybe -> exit 2 naming the field and its values": Row(
        ("list",),
        overlay("demos.toml", ASM_BUILD + '[demos.hello.runs.nommu]\nmust = ["hi"]\nexpect = "maybe"\n'),
        2,
        ("mine/demos.toml: demos.hello.runs.nommu.expect: 'maybe' is not one of pass, hang",),
    ),
    "overlay [defaults] timeout = '5s' -> exit 2 naming the overlay, not configs/": Row(
        ("list",),
        overlay("demos.toml", '[defaults]\ntimeout = "5s"\n'),
        2,
        ("mine/demos.toml: defaults.timeout: expected int or float, found '5s'",),
    ),
    "overlay demo that is not a table -> exit 2 naming the overlay, not configs/": Row(
        ("list",), overlay("demos.toml", "[demos]\nhello = 3\n"), 2, ("mine/demos.toml: demos.hello: expected a table",)
    ),
    "overlay variants.toml kconfig written with CONFIG_ -> exit 2 naming the field and the form": Row(
        ("list",),
        overlay("variants.toml", '[variants.mine]\nkconfig = { CONFIG_SWAP = true }\nqemu = { machine = "virt" }\n'),
        2,
        ("mine/variants.toml: variants.mine.kconfig.CONFIG_SWAP:", "(no CONFIG_)"),
    ),
    # --- downloads: a bad mirror is one warning line; the run goes on with the next origin ---
    "mirror serving a wrong file -> warning naming the URL, exit 0 from the next origin": Row(
        ("fetch:demo",),
        served_source("wrong"),
        0,
        ("/wrong/demo-1.0.tar: sha256 mismatch", "skipped; fix or remove this mirror"),
        answer="warning",
        stdout=("demo: 1.0 from http://127.0.0.1",),
    ),
    "mirror serving a truncated file -> warning naming the URL, exit 0 from the next origin": Row(
        ("fetch:demo",),
        served_source("truncated"),
        0,
        ("/truncated/demo-1.0.tar: ", "truncated or broken transfer", "skipped; fix or remove this mirror"),
        answer="warning",
    ),
    # --- interactive boots without a terminal on stdin (these rows run with stdin from /dev/null) ---
    "doit shell:nommu, no terminal -> exit 2 before anything builds, naming the scripted way": Row(
        ("shell:nommu",),
        env(),
        2,
        ("shell:nommu: needs a terminal on stdin", "end-of-input", "doit smoke:shell-busybox-nommu", "boot:nommu"),
    ),
    "doit console:clone_vm-asm-nommu, no terminal -> exit 2 naming its smoke task": Row(
        ("console:clone_vm-asm-nommu",),
        env(),
        2,
        ("console:clone_vm-asm-nommu: needs a terminal on stdin", "doit smoke:clone_vm-asm-nommu"),
    ),
    "doit -n 2 console (every interactive boot), no terminal -> exit 2": Row(
        ("-n", "2", "console"), env(), 2, ("console:", "needs a terminal on stdin")
    ),
    "doit 'shell:*', no terminal -> exit 2": Row(("shell:*",), env(), 2, ("shell:", "needs a terminal on stdin")),
    "doit list shell, no terminal -> works (only running one needs a terminal)": Row(
        ("list", "shell"), env(), 0, answer="clean", stdout=("shell",)
    ),
    # --- doit's own usage errors: exit 3, no traceback ---
    "unknown task no-such-task -> exit 3, doit's own error": Row(
        ("no-such-task",), env(), 3, ('Invalid parameter: "no-such-task"',), answer="doit"
    ),
    "doit info no-such-task -> exit 3, one line naming the task": Row(
        ("info", "no-such-task"), env(), 3, ("no task 'no-such-task'", "doit list --all"), answer="doit"
    ),
    "doit -n abc boot -> exit 3, doit's own error": Row(
        ("-n", "abc", "boot"), env(), 3, ("num_process",), answer="doit"
    ),
}


def run_without_terminal(args: list[str], variables: Env) -> subprocess.CompletedProcess[str]:
    """doit as a script runs it; every row answers before any build, within 60 s."""
    return run_bounded(doit_argv(args), {**os.environ, **variables}, 60)


@pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
def test_bad_input(row: Row, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    variables = {name: "" for name in CLEARED}
    variables |= {"MMULAB_BUILD_DIR": str(tmp_path / "build"), "MMULAB_DL_DIR": str(tmp_path / "dl")}
    variables |= row.setup(tmp_path, request)
    result = run_without_terminal(list(row.args), variables)
    shown = f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr + result.stdout, shown
    assert result.returncode == row.exit, shown
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    for text in row.stdout:
        assert text in result.stdout, shown
    if row.answer == "clean":
        assert lines == [], shown
        return
    if row.answer == "doit":
        assert lines[0].startswith("ERROR: "), shown
        assert all(not line.startswith("mmulab:") for line in lines), shown
    else:
        assert len(lines) == 1, shown
        assert lines[0].startswith(f"mmulab: {row.answer}: "), shown
    for name in row.names:
        assert name in lines[0], shown


def test_table_has_at_least_15_kinds_of_bad_input() -> None:
    assert len([row for row in ROWS.values() if row.exit != 0 or row.answer == "warning"]) >= 15
