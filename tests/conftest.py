"""Shared fixtures: projects loaded against temporary build directories, a real local HTTP server,
and one extracted kernel tree per test session (the slow tests share it).

No test depends on the caller's environment: when pytest starts (before any test module is imported), every
variable the pipeline or the tools it runs read is removed (`pipeline_variable`), and each test gets its own HOME
(the `home` fixture). What the tests of one run share instead lives under pytest's basetemp, in
`mmulab-session/`: `downloads/` (MMULAB_DL_DIR) and `ccache/` (MMULAB_CCACHE_DIR), so the slow tests of one
run fetch each source and compile the kernel's objects once. Under CI=true a thing the tests need and lack is a
failure, not a skip (`missing`): CI installs everything `./setup.sh --tests` does."""

from __future__ import annotations

import contextlib
import functools
import http.server
import importlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, NoReturn

import pytest

from mmulab.core.doitcli import doit_argv
from mmulab.core.paths import series_root
from mmulab.core.settings import Settings
from mmulab.project.loader import load_project
from mmulab.project.model import Project

# Read by the tests themselves, never by the pipeline: kept (.ci/run starts one redis-server for the whole run).
TEST_VARIABLES = frozenset({"MMULAB_TEST_REDIS"})
# What mmulab/core/settings.py reads, and what the tools it runs read from the environment (make, kbuild, gcc,
# ccache, distcc, QEMU) or what changes their output (locale, time zone).
PIPELINE_PREFIXES = ("MMULAB_", "CCACHE_", "DISTCC_", "KBUILD_", "KCONFIG_", "LC_", "QEMU_", "GCC_")
PIPELINE_NAMES = frozenset(
    {
        *("LINUX_SRC", "BUILDROOT_SRC", "SOURCE_DATE_EPOCH", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"),
        *("LANG", "LANGUAGE", "TZ", "MAKEFLAGS", "MFLAGS", "GNUMAKEFLAGS", "MAKELEVEL", "ARCH", "CROSS_COMPILE"),
        *("CC", "CXX", "CPP", "LD", "AR", "CFLAGS", "CPPFLAGS", "LDFLAGS", "KCFLAGS", "KCPPFLAGS", "KAFLAGS"),
        *("LOCALVERSION", "INSTALL_MOD_PATH", "CPATH", "C_INCLUDE_PATH", "LIBRARY_PATH", "COMPILER_PATH"),
    }
)
# Fixed instead of the caller's: the tools' messages and timestamps the tests read.
TEST_LOCALE = {"LC_ALL": "C.UTF-8", "TZ": "UTC"}
SESSION_DIR = "mmulab-session"


def pipeline_variable(name: str) -> bool:
    return name not in TEST_VARIABLES and (name in PIPELINE_NAMES or name.startswith(PIPELINE_PREFIXES))


class _Session:
    """The variables every test starts from (set in pytest_configure): the session's caches and locale."""

    variables: ClassVar[dict[str, str]] = {}
    original: ClassVar[dict[str, str]] = {}


def clean_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (os.environ) without the caller's pipeline variables, with the session's caches and locale."""
    base = os.environ if base is None else base
    return {**{k: v for k, v in base.items() if not pipeline_variable(k)}, **_Session.variables}


@pytest.hookimpl(trylast=True)  # after the tmpdir plugin's: its factory names basetemp
def pytest_configure(config: pytest.Config) -> None:
    """Scrub the process's environment once, before any test module is imported (a module-level
    load_project() sees the clean one too), and point the caches at this run's own folders."""
    if _Session.original:  # a second configure in this process (pytester): already scrubbed
        return
    session = config._tmp_path_factory.getbasetemp() / SESSION_DIR  # the tmp_path_factory fixture's own factory
    for name in ("home", "downloads", "ccache"):
        (session / name).mkdir(parents=True, exist_ok=True)
    _Session.variables = {
        **TEST_LOCALE,
        "MMULAB_DL_DIR": str(session / "downloads"),
        "MMULAB_CCACHE_DIR": str(session / "ccache"),
    }
    _Session.original = dict(os.environ)
    scrubbed = {**clean_environment(), "HOME": str(session / "home")}
    os.environ.clear()
    os.environ.update(scrubbed)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _Session.original:
        os.environ.clear()
        os.environ.update(_Session.original)
        _Session.original = {}


@pytest.fixture(autouse=True)
def home(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Each test's own empty HOME (as TuxMake's `home` fixture), and no pipeline variable but the session's,
    however the test before it left the environment."""
    for name in [name for name in os.environ if pipeline_variable(name)]:
        monkeypatch.delenv(name)
    for name, value in _Session.variables.items():
        monkeypatch.setenv(name, value)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    return home


def live_descendants(root: int | None = None) -> dict[int, str]:
    """Every live process under `root` (this one by default), pid -> its name, from the kernel's children lists
    (/proc/<pid>/task/<tid>/children: cheap, only the tree below us is read); zombies are over and left out."""
    found: dict[int, str] = {}
    stack = [os.getpid() if root is None else root]
    while stack:
        pid = stack.pop()
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                try:
                    stat = Path(f"/proc/{child}/stat").read_text()
                except OSError:
                    continue
                name, _, rest = stat.partition(" (")[2].rpartition(") ")
                if rest[:1] != "Z":
                    found[child] = name
                stack.append(child)
    return found


LEFT_BEHIND_GRACE = 5.0  # seconds a process a test ended may take to go (polled; a bound, not a wait)
# Helpers that live as long as pytest by design: multiprocessing's spawn context starts one resource tracker (and
# forkserver one server) for the whole process, the first time a test uses it.
LIFELONG_HELPERS = ("from multiprocessing.resource_tracker import main", "from multiprocessing.forkserver import main")


def _lifelong(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return any(helper in command for helper in LIFELONG_HELPERS)


def _left(before: set[int]) -> dict[int, str]:
    return {p: n for p, n in live_descendants().items() if p not in before and not _lifelong(p)}


@pytest.fixture(autouse=True)
def no_process_left_behind() -> Iterator[None]:
    """A test, passed or failed, leaves no process of its own running: the processes under pytest after it (its
    fixtures' teardowns done) are those there before it. One left behind is killed and the test errors, naming it."""
    before = set(live_descendants())
    yield
    give_up = time.monotonic() + LEFT_BEHIND_GRACE
    while (left := _left(before)) and time.monotonic() < give_up:
        time.sleep(0.02)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if left:
        named = ", ".join(f"{name} (pid {pid})" for pid, name in sorted(left.items()))
        pytest.fail(f"the test left process(es) running: {named}", pytrace=False)


def caller_variable(name: str) -> str:
    """A variable as the caller set it, for a test that takes a thing from the caller (BUILDROOT_SRC: a
    Buildroot tree the tests would otherwise skip without); never passed on to the pipeline."""
    return _Session.original.get(name, os.environ.get(name, "")).strip()


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def missing(what: str, how: str) -> NoReturn:
    """A thing this test needs is not here: skip, naming it and how to provide it; under CI=true fail instead,
    because CI installs everything `./setup.sh --tests` does. Every skip in tests/ goes through here."""
    message = f"needs {what} ({how})"
    if under_ci():
        pytest.fail(f"CI=true: {message}", pytrace=False)
    pytest.skip(message)


def needs_module(name: str, how: str) -> ModuleType:
    """pytest.importorskip through `missing`."""
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"the Python module {name}", how)


# doit on this checkout, as the pipeline itself starts it (mmulab.core.doitcli): `python -m doit -f dodo.py -d .`
DOIT = doit_argv([])


TEST_PACKAGES = Path(__file__).parent / "debian-packages.txt"
TESTS_DIR = Path(__file__).parent
# Run in a new process: import tests/<module>.py, call <function>(*argv strings), write the bytes it returns.
_CALL = (
    "import importlib, sys; sys.path.insert(0, sys.argv[1]); "
    "sys.stdout.buffer.write(getattr(importlib.import_module(sys.argv[2]), sys.argv[3])(*sys.argv[4:]))"
)


def output_of_new_process(call: str, args: list[str], hash_seed: int, cwd: Path, timezone: str) -> bytes:
    """The bytes `call` ("test_module:function", given `args`) returns when run in a new Python process with
    this PYTHONHASHSEED, working directory and time zone."""
    module, function = call.split(":")
    cwd.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-c", _CALL, str(TESTS_DIR), module, function, *args],
        env={**clean_environment(), "PYTHONHASHSEED": str(hash_seed), "TZ": timezone},
        cwd=cwd,
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout


def same_bytes_in_two_processes(call: str, args: list[str], scratch: Path) -> bytes:
    """`call`'s output from two new processes that differ in hash seed (set and dict-of-set orders), working
    directory and time zone: determinism proven across runs, not twice within one process. Returns it."""
    first = output_of_new_process(call, args, 1, scratch / "cwd-one", "UTC")
    second = output_of_new_process(call, args, 2, scratch / "cwd-two" / "deeper", "Pacific/Kiritimati")
    assert first, f"{call} wrote nothing"
    assert first == second, f"{call}: different bytes from two processes (hash seed, cwd, TZ UTC vs +14)"
    return first


def pytest_runtest_setup(item: pytest.Item) -> None:
    """`@pytest.mark.needs("tool", ...)`: skip (fail under CI=true), naming the tool and its Debian package, where
    it is missing."""
    from mmulab.core.tools import package_of

    for marker in item.iter_markers("needs"):
        for tool in marker.args:
            if shutil.which(tool) is None:
                if package := package_of(tool):
                    missing(tool, f"Debian package {package}; ./setup.sh installs it")
                package = package_of(tool, TEST_PACKAGES) or "unknown"
                missing(tool, f"Debian package {package}, for tests only; ./setup.sh --tests installs it")


@functools.cache
def checkout_configs() -> Project:
    """This checkout's configs/ read with no environment variable at all: what a module may enumerate at
    collection (its parametrized cases, variants, demos), the same on every machine."""
    return load_project(Settings.from_environment({}))


def default_root(build_dir: Path) -> Path:
    """The folder of `build_dir` that a run of the default kernel series builds in (build/linux-<series>/)."""
    return series_root(build_dir, checkout_configs().series)


def user_tree_root(build_dir: Path) -> Path:
    """The folder of `build_dir` that a run with LINUX_SRC (a user's own tree) builds in (build/linux-src/)."""
    return series_root(build_dir, "", user_tree=True)


class LazyProject:
    """`load_project()` (from the tests' clean environment) on first use, never when a test module is imported."""

    @functools.cached_property
    def _project(self) -> Project:
        return load_project()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._project, name)


def make_project(build_dir: Path, **overrides) -> Project:
    """The repository's project with its build directory (and any other setting) replaced."""
    settings = replace(Settings.from_environment(), build_dir=build_dir, **overrides)
    return load_project(settings)


def run_doit(args: list[str], env: dict[str, str], timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        doit_argv(args),
        env={**clean_environment(), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def session_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A build directory shared by the slow tests of one session: the kernel is extracted/built once. A test
    that uses it must build what it needs itself (a doit target or a fixture), never count on another test
    having run first: pytest-randomly runs them in any order."""
    return tmp_path_factory.mktemp("build")


@pytest.fixture(scope="session")
def kernel_tree(session_build: Path) -> Path:
    """An extracted, verified Linux tree from the pinned sources (real fetch, real extraction), in the slow
    tests' shared session build; extracted by whichever test asks first."""
    result = run_doit(["extract:linux"], {"MMULAB_BUILD_DIR": str(session_build)})
    assert result.returncode == 0, result.stdout + result.stderr
    tree = default_root(session_build) / "src" / "linux"
    assert (tree / "Makefile").is_file()
    return tree


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves files, plus /truncated/<name>: announces the full length, sends half, hangs up."""

    hits: list[str]

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.server.hits.append(self.path)  # type: ignore[attr-defined]
        if self.path.startswith("/truncated/"):
            data = (Path(self.directory) / self.path.removeprefix("/truncated/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


class LocalServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        handler = lambda *a, **k: _Handler(*a, directory=str(root), **k)  # noqa: E731
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.hits = []  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def hits(self) -> list[str]:
        return self.httpd.hits  # type: ignore[attr-defined]


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[LocalServer]:
    root = tmp_path / "www"
    root.mkdir()
    server = LocalServer(root)
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def hung_port() -> Iterator[int]:
    """A loopback port that accepts connections (the kernel does) and never answers: a hung server."""
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        yield hung.getsockname()[1]
