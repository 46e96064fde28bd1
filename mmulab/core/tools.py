"""External tools: which Debian package provides each, their versions (cache keys), and one narrow
runner every external command goes through, build tools and QEMU alike (tests replace it with a fake that
records commands, or one that plays a scripted console).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO

from mmulab.core.errors import ToolMissing, UserError
from mmulab.core.fsutil import write_atomic
from mmulab.core.progress import Progress
from mmulab.core.settings import PROJECT_ROOT

PACKAGES_FILE = PROJECT_ROOT / "configs" / "debian-packages.txt"
_RELEVANT = re.compile(r"error|Error \d|\*\*\*|undefined reference|No rule to make|fatal|cannot|not found", re.I)
INTERRUPT_GRACE_SECONDS = 10


@functools.cache
def package_of(command: str, packages_file: Path = PACKAGES_FILE) -> str:
    """The Debian package that provides `command`, from configs/debian-packages.txt."""
    try:
        lines = packages_file.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        words = line.split("#", 1)[0].split()
        if len(words) > 1 and command in words[1:]:
            return words[0].split("=", 1)[0]
    return ""


def missing(command: str) -> UserError:
    """The error for a command not on PATH: which Debian package to install, when the project knows it."""
    package = package_of(command)
    if package:
        return ToolMissing(tool=command, package=package)
    return UserError(f"{command}: not found on PATH (no package of configs/debian-packages.txt provides it)")


def require(command: str) -> str:
    """The path of `command`, or an error naming the Debian package to install."""
    path = shutil.which(command)
    if not path:
        raise missing(command)
    return path


def relevant_lines(text: str, limit: int = 15) -> str:
    """The error lines of a tool's output (or its tail when none stand out), for a short failure report."""
    lines = [line for line in text.rstrip().splitlines() if not line.startswith("$ ")]
    picked = [line for line in lines if _RELEVANT.search(line)]
    return "\n".join((picked or lines)[-limit:])


class ToolVersions:
    """`tool --version` first lines, part of cache keys: a new compiler or QEMU rebuilds what it made.

    Remembered in a small file keyed by the binary's path, size and mtime, so a no-op run starts no tool
    (QEMU alone takes 60 ms to print its version).
    """

    def __init__(self, memo: Path) -> None:
        self.memo = memo
        self._known: dict[str, list[Any]] | None = None  # real path: [size, mtime_ns, version line]

    def _load(self) -> dict[str, list[Any]]:
        if self._known is None:
            try:
                self._known = json.loads(self.memo.read_text())
            except (OSError, ValueError):
                self._known = {}
        return self._known

    def version(self, command: str) -> str:
        path = shutil.which(command)
        if not path:
            return f"{command}: missing"
        real = os.path.realpath(path)
        info = os.stat(real)
        stamp = [info.st_size, info.st_mtime_ns]
        known = self._load()
        if known.get(real, [None])[:2] == stamp:
            return str(known[real][2])
        try:
            result = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
            text = (result.stdout or result.stderr).strip()
        except OSError as exc:
            text = f"unusable ({exc.strerror})"
        first = f"{command}: {text.splitlines()[0] if text else 'unknown'}"
        known[real] = [*stamp, first]
        with contextlib.suppress(OSError):
            write_atomic(self.memo, json.dumps(known, indent=1, sort_keys=True) + "\n")
        return first


@dataclass(frozen=True)
class Log:
    """A stage's log: started fresh, then every command of the stage appends to it."""

    runner: Runner
    path: Path

    def run(
        self,
        command: Sequence[str | Path],
        what: str,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        feed: bytes | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.runner.run(command, self.path, what, cwd=cwd, env=env, feed=feed, progress=progress)


@dataclass(frozen=True)
class Output:
    """What a streamed process printed in one piece: the bytes as they came (for a log) and the lines the
    piece completed, without their line ending (\\n or \\r\\n, a serial console's), undecodable bytes replaced."""

    raw: bytes = b""
    lines: tuple[str, ...] = ()


def _line(data: bytes) -> str:
    return data.decode(errors="replace").rstrip("\r")


class LineBuffer:
    """Cuts output that comes in pieces of any size into whole lines; the unfinished last one waits."""

    def __init__(self) -> None:
        self.pending = b""

    def feed(self, chunk: bytes) -> Output:
        *complete, self.pending = (self.pending + chunk).split(b"\n")
        return Output(chunk, tuple(_line(line) for line in complete))

    def rest(self) -> str:
        """The unfinished last line ("" when the output ended with a line ending), taken out of the buffer."""
        rest, self.pending = self.pending, b""
        return _line(rest) if rest else ""


class Stream:
    """A process started by `Runner.stream` in its own process group, its output (stdout and stderr) read as it
    comes, never blocking longer than asked: the caller keeps its own clocks (a boot's timeout, its trap watch)."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        self.process = process
        self.pid: int | None = process.pid
        self._fd = process.stdout.fileno()
        os.set_blocking(self._fd, False)
        if process.stdin is not None:
            os.set_blocking(process.stdin.fileno(), False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._fd, selectors.EVENT_READ)
        self._lines = LineBuffer()
        self.tap: Callable[[bytes], None] | None = None  # gets every piece of output as it is read (the lab)

    def _chunk(self) -> bytes | None:
        """What the pipe holds now: b"" at the end of the output, None when nothing is there yet."""
        try:
            chunk = os.read(self._fd, 65536)
        except BlockingIOError:
            return None
        if chunk and self.tap is not None:
            self.tap(chunk)
        return chunk

    def send(self, data: bytes) -> int:
        """Write to its stdin (`stream(stdin=True)`) never blocking: the bytes that went in (0: pipe full or gone)."""
        try:
            return os.write(self.process.stdin.fileno(), data) if self.process.stdin else 0
        except (BlockingIOError, BrokenPipeError, ValueError):  # full; the process gone; the pipe closed
            return 0

    def kill(self) -> None:
        """Stop its whole process group now (from any thread): whoever reads it then sees its output end."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def read(self, timeout: float) -> Output | None:
        """What it printed within `timeout` seconds (an empty Output when nothing); None once it printed all it
        will: its output ended, or it exited and nothing came within the timeout."""
        if not self._selector.select(timeout=max(0.0, timeout)):
            return None if self.process.poll() is not None else Output()
        chunk = self._chunk()
        if chunk == b"":
            return None
        return self._lines.feed(chunk) if chunk else Output()

    def drain(self) -> Output:
        """What the pipe holds already, without waiting for more (what a process printed before it got stuck)."""
        chunks = []
        while chunk := self._chunk():
            chunks.append(chunk)
        return self._lines.feed(b"".join(chunks)) if chunks else Output()

    def unfinished(self) -> str:
        """The last line it printed without a line ending, once reading is over ("" when none)."""
        return self._lines.rest()

    def poll(self) -> int | None:
        """Its exit code, None while it runs."""
        return self.process.poll()

    def wait(self, timeout: float) -> int | None:
        """Its exit code once it exits within `timeout` seconds, else None (it runs on)."""
        try:
            return self.process.wait(timeout=max(0.0, timeout))
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        """Stop it with its whole group if it still runs (`_stop_group`), and let go of its pipe."""
        try:
            if self.process.poll() is None:
                _stop_group(self.process)
            self.process.wait()
        finally:
            self._selector.close()
            assert self.process.stdout is not None
            self.process.stdout.close()
            if self.process.stdin is not None:
                with contextlib.suppress(OSError):
                    self.process.stdin.close()


class Runner:
    """Runs external commands with their output in a log; a failure becomes one UserError with the lines
    that matter. The one place the pipeline starts build tools and QEMU (`stream`).

    `env`: variables every command of this runner gets (a build stage's compile cache), under each call's own."""

    env: Mapping[str, str] = MappingProxyType({})

    def with_env(self, env: Mapping[str, str]) -> Runner:
        """This runner (a test's fake too) with `env` added to every command it runs."""
        runner = copy.copy(self)
        runner.env = MappingProxyType({**self.env, **env})
        return runner

    def log(self, path: Path) -> Log:
        """A fresh log at `path`: the previous run's is removed."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        return Log(self, path)

    def run(
        self,
        command: Sequence[str | Path],
        log: Path,
        what: str,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        feed: bytes | None = None,
        progress: Progress | None = None,
    ) -> None:
        argv = [str(part) for part in command]
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as sink:
            sink.write(("$ " + " ".join(argv) + "\n").encode())
            sink.flush()
            code = self.execute(argv, sink, cwd, {**os.environ, **self.env, **(env or {})}, feed, progress)
        if code == 127 or code is None:
            raise UserError(f"{what}: cannot run {missing(argv[0])}")
        if code != 0:
            tail = log.read_text(errors="replace").rsplit("\n$ ", 1)[-1]
            raise UserError(f"{what} failed (exit {code}); full log: {log}\n{relevant_lines(tail)}")

    def execute(
        self,
        argv: list[str],
        sink: BinaryIO,
        cwd: Path | None,
        env: dict[str, str],
        feed: bytes | None,
        progress: Progress | None,
    ) -> int | None:
        """Run one command, its output into `sink`; None when it cannot be started. Never leaves it behind:
        on an interrupt its whole process group gets SIGINT (make removes half-built targets), then SIGKILL."""
        try:
            process = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.PIPE if feed is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except FileNotFoundError:
            return None
        succeeded = False
        try:
            if feed is not None:
                assert process.stdin is not None
                try:
                    process.stdin.write(feed)
                    process.stdin.close()
                except BrokenPipeError:
                    pass
            self._pump(process, sink, progress)
            code = process.wait()
            succeeded = code == 0
            return code
        finally:
            if process.poll() is None:
                _stop_group(process)
            if progress:
                progress.finish(succeeded)

    @staticmethod
    def _pump(process: subprocess.Popen[bytes], sink: BinaryIO, progress: Progress | None) -> None:
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            pending = b""
            while True:
                if not selector.select(timeout=1.0):
                    if progress:
                        progress.tick()
                    continue
                chunk = os.read(process.stdout.fileno(), 65536)
                if not chunk:
                    break
                sink.write(chunk)
                if progress:
                    *lines, pending = (pending + chunk).split(b"\n")
                    for line in lines:
                        progress.line(line.decode(errors="replace"))
        process.stdout.close()

    @contextlib.contextmanager
    def stream(self, command: Sequence[str | Path], *, stdin: bool = False) -> Iterator[Stream]:
        """Start `command` in its own process group, stdin closed (with `stdin`: a pipe for `Stream.send`), its
        output read as it comes (a boot's console, judged while it runs). Never leaves it behind: one still running
        at the end (a timeout, a panic, an interrupt) is stopped with its whole group (`_stop_group`)."""
        argv = [str(part) for part in command]
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except FileNotFoundError:
            raise UserError(f"cannot run {missing(argv[0])}") from None
        stream = Stream(process)
        try:
            yield stream
        finally:
            stream.close()

    def query(self, command: Sequence[str], cwd: Path | None = None) -> str:
        """The stdout of a quick query (gcc -print-file-name, git rev-parse); a failure is a UserError."""
        try:
            result = subprocess.run(list(command), cwd=cwd, capture_output=True, text=True, check=False)
        except FileNotFoundError:
            raise missing(command[0]) from None
        if result.returncode != 0:
            raise UserError(f"{' '.join(command)} failed (exit {result.returncode}): {result.stderr.strip()[:200]}")
        return result.stdout.strip()


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stop a process started in its own group, and everything it started: SIGINT first (make removes
    half-built targets, QEMU shuts down), SIGKILL for whatever still runs after the grace."""
    try:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=INTERRUPT_GRACE_SECONDS)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


RUNNER = Runner()
