"""A real redis-server for the compile cache's tests and benchmark: on a free loopback port, with its own
temporary directory, nothing saved to disk, stopped (and its directory removed) afterwards.

With MMULAB_TEST_REDIS=redis://127.0.0.1:PORT set (.ci/run starts one for the whole run) that server is
used and left running; a test then clears what it stored before and after it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

START_SECONDS = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ask(url: str, *words: str) -> bytes:
    """One Redis command (RESP array) and its raw reply: the tests' own client, no library needed."""
    parts = urlsplit(url.split("|", 1)[0])
    command = f"*{len(words)}\r\n".encode() + b"".join(f"${len(w)}\r\n{w}\r\n".encode() for w in words)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(command)
        return sock.recv(65536)


class RedisServer:
    """`with RedisServer() as url:` a running server's redis:// URL."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.directory: Path | None = None
        self.url = os.environ.get("MMULAB_TEST_REDIS", "")
        self.shared = bool(self.url)

    def __enter__(self) -> str:
        if not self.shared:
            self._start()
        ask(self.url, "FLUSHALL")
        return self.url

    def _start(self) -> None:
        redis = shutil.which("redis-server")
        if not redis:
            raise RuntimeError("redis-server is not installed (Debian package redis-server; ./setup.sh --tests)")
        self.directory = Path(tempfile.mkdtemp(prefix="mmulab-redis-"))
        port = free_port()
        self.process = subprocess.Popen(
            [
                *(redis, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
                *("--dir", str(self.directory), "--logfile", str(self.directory / "redis.log")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"redis://127.0.0.1:{port}"
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                if ask(self.url, "PING").startswith(b"+PONG"):
                    return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"redis-server did not start on port {port}")
            time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        if self.shared:
            ask(self.url, "FLUSHALL")
            return
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
