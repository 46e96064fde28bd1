"""Real distccd servers for the build farm's tests and benchmark: each on its own loopback address (127.0.0.2,
127.0.0.3...) and a free port, with its own folder and log, stopped (its whole process group) and removed
afterwards. `skewed=True` gives a server whose riscv64-linux-gnu-gcc is a wrapper appending -O0: distccd runs
the compiler a client names from its own PATH (DISTCCD_PATH), as a server with another compiler would.

Started as root, distccd switches to the `distccd` user: its folder (the wrapper, its TMPDIR) must be reachable
by that user, so it lies under the temporary directory when every folder above it lets others in, else under
/tmp. Its log is its stderr, written into a file this process opened: no permission to arrange."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

START_SECONDS = 10.0
COMPILER = "riscv64-linux-gnu-gcc"


def free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def reachable_by_others(folder: Path) -> bool:
    """Every folder from / to `folder` lets other users through (o+x)."""
    return all(path.stat().st_mode & stat.S_IXOTH for path in [folder, *folder.parents])


def server_base() -> Path:
    base = Path(tempfile.gettempdir()).resolve()
    return base if os.getuid() != 0 or reachable_by_others(base) else Path("/tmp")


class DistccServer:
    """`with DistccServer("127.0.0.2") as server:` a running distccd; `server.token` is its MMULAB_DISTCC_HOSTS
    entry, `server.log()` what it logged so far (one COMPILE_OK line per compile), `server.kill()` ends it at
    once, mid-build if need be."""

    def __init__(self, address: str, slots: int = 2, skewed: bool = False) -> None:
        self.address = address
        self.slots = slots
        self.skewed = skewed
        self.process: subprocess.Popen[bytes] | None = None
        self.directory = Path(tempfile.mkdtemp(prefix="mmulab-distccd-", dir=server_base()))
        self.port = 0

    @property
    def token(self) -> str:
        return f"{self.address}:{self.port}/{self.slots}"

    @property
    def name(self) -> str:
        return f"{self.address}:{self.port}"

    def log(self) -> str:
        return (self.directory / "distccd.log").read_text(errors="replace")

    def compiled(self) -> int:
        return self.log().count("COMPILE_OK")

    def __enter__(self) -> DistccServer:
        distccd = shutil.which("distccd")
        if not distccd:
            self._remove()
            raise RuntimeError("distccd is not installed (Debian package distcc; ./setup.sh --tests)")
        self.directory.chmod(0o755)
        scratch = self.directory / "tmp"
        scratch.mkdir(mode=0o1777)
        scratch.chmod(0o1777)
        path = os.environ.get("PATH", os.defpath)
        if self.skewed:
            wrappers = self.directory / "bin"
            wrappers.mkdir(mode=0o755)
            real = shutil.which(COMPILER)
            (wrappers / COMPILER).write_text(f'#!/bin/sh\nexec {real} "$@" -O0\n')
            (wrappers / COMPILER).chmod(0o755)
            path = f"{wrappers}:{path}"
        self.port = free_port(self.address)
        env = {**os.environ, "DISTCCD_PATH": path, "TMPDIR": str(scratch)}
        with open(self.directory / "distccd.log", "wb") as log:
            self.process = subprocess.Popen(
                [
                    *(distccd, "--no-detach", "--daemon", "--log-stderr", "--log-level", "info"),
                    *("--allow", "127.0.0.0/8", "--listen", self.address, "--port", str(self.port)),
                    *("-j", str(self.slots)),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                start_new_session=True,  # its preforked children share the group: kill() ends them all
            )
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                with socket.create_connection((self.address, self.port), timeout=1):
                    return self
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"distccd did not start on {self.name}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL to the server and its children, as a machine that loses power."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._remove()

    def _remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
