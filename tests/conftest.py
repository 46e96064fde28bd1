"""Shared fixtures: projects loaded against temporary build directories, a real local HTTP server,
and one extracted kernel tree per test session (the slow tests share it)."""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from mmulab.configdata import Project, load_project
from mmulab.settings import PROJECT_ROOT, Settings

DOIT = [sys.executable, "-m", "doit", "-f", str(PROJECT_ROOT / "dodo.py"), "-d", str(PROJECT_ROOT)]
# doit reads its sub-command only from its first argument: these must come before -f/-d.
DOIT_SUBCOMMANDS = frozenset(
    {"run", "list", "help", "info", "clean", "forget", "ignore", "reset-dep", "strace", "dumpdb", "tabcompletion"}
)


def doit_argv(args: list[str]) -> list[str]:
    """The doit command line for `args`: a sub-command (list, info, forget...) first, then -f/-d, then the rest.
    dumpdb reads no dodo.py and refuses -f/-d: give it --db-file."""
    head, options = DOIT[:3], DOIT[3:]
    if args and args[0] == "dumpdb":
        return [*head, *args]
    if args and args[0] in DOIT_SUBCOMMANDS:
        return [*head, args[0], *options, *args[1:]]
    return [*head, *options, *args]


TEST_PACKAGES = Path(__file__).parent / "debian-packages.txt"


def pytest_runtest_setup(item: pytest.Item) -> None:
    """`@pytest.mark.needs("tool", ...)`: skip, naming the tool and its Debian package, where it is missing."""
    from mmulab.tools import package_of

    for marker in item.iter_markers("needs"):
        for tool in marker.args:
            if shutil.which(tool) is None:
                if package := package_of(tool):
                    pytest.skip(f"needs {tool} (Debian package {package}; ./setup.sh installs it)")
                package = package_of(tool, TEST_PACKAGES) or "unknown"
                pytest.skip(f"needs {tool} (Debian package {package}, for tests only; ./setup.sh --tests installs it)")


def make_project(build_dir: Path, **overrides) -> Project:
    """The repository's project with its build directory (and any other setting) replaced."""
    settings = replace(Settings.from_environment(), build_dir=build_dir, **overrides)
    return load_project(settings)


def run_doit(args: list[str], env: dict[str, str], timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        doit_argv(args),
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def session_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A build directory shared by the slow tests of one session: the kernel is extracted/built once."""
    return tmp_path_factory.mktemp("build")


@pytest.fixture(scope="session")
def kernel_tree(session_build: Path) -> Path:
    """An extracted, verified Linux tree from the pinned sources (real fetch, real extraction)."""
    result = run_doit(["extract:linux"], {"MMULAB_BUILD_DIR": str(session_build)})
    assert result.returncode == 0, result.stdout + result.stderr
    tree = session_build / "src" / "linux"
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
