"""One browser terminal's QEMU: a judged boot of a case, or a busybox shell on a variant, each QEMU in its own
process group, and the lab's limit on how many run at once (the others wait in line, told their place).

A boot goes through the pipeline's own boot path (`qemu.boot_case`: the case's command line, timeout, trap watch
and verdict), so the lab boots exactly what `doit smoke:<case>` boots; the console reaches the page as it comes
through the Runner's tap. A shell is the variant's `doit shell:<variant>` case, with the serial line on a pipe
(`-serial stdio -monitor none`): what the page types reaches the guest's serial line and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from mmulab.boot import charts, qemu
from mmulab.boot.judge import Verdict
from mmulab.core.errors import UserError
from mmulab.core.tools import Runner, Stream
from mmulab.pipeline import actions
from mmulab.pipeline.tasks import interactive_boots
from mmulab.project.model import Project, with_cmdline

READ_SECONDS = 0.2  # a shell's reader looks at its stop flag this often


@dataclass(frozen=True)
class Limits:
    """What a shared lab machine allows: QEMUs at once, seconds without a byte either way before a machine is
    stopped, and the largest piece of input one websocket message may carry."""

    machines: int
    idle: float
    input_bytes: int = 4096


@dataclass(frozen=True)
class Shell:
    """A variant's busybox shell: the case `doit shell:<variant>` boots and what it appends to the command line."""

    variant: str
    case: str
    append: str


def shells(project: Project) -> dict[str, Shell]:
    """Every variant that has a shell, as `doit shell:<variant>` declares it."""
    return {
        boot.name: Shell(boot.name, boot.case, boot.append)
        for boot in interactive_boots(project)
        if boot.basename == "shell"
    }


class LiveRunner(Runner):
    """The Runner a lab machine's QEMU runs through: every piece of output goes to `tap` as it comes, and `stop()`
    (from any thread) kills the machine's process group, before or while it runs."""

    def __init__(self, tap: Callable[[bytes], None]) -> None:
        self.tap = tap
        self._lock = threading.Lock()
        self._current: Stream | None = None
        self.stopped = False

    @contextlib.contextmanager
    def stream(self, command: Sequence[str | Path], *, stdin: bool = False) -> Iterator[Stream]:
        with super().stream(command, stdin=stdin) as machine:
            machine.tap = self.tap
            with self._lock:
                self._current = machine
                stopped = self.stopped
            if stopped:  # the tab closed while it started
                machine.kill()
            try:
                yield machine
            finally:
                with self._lock:
                    self._current = None

    def stop(self) -> None:
        with self._lock:
            self.stopped = True
            if self._current is not None:
                self._current.kill()

    def send(self, data: bytes) -> int:
        """Input for the guest's serial line; how many bytes went in (none once stopped or while the pipe is full)."""
        with self._lock:
            machine = None if self.stopped else self._current
        return machine.send(data) if machine is not None else 0


@dataclass(frozen=True)
class Judged:
    """A finished boot: its verdict and the chart its console draws (None without data lines)."""

    verdict: Verdict
    chart: bytes | None


def boot(project: Project, case_name: str, folder: Path, runner: LiveRunner) -> Judged:
    """Boot one case as `doit smoke:<case>` does (blocking: run it in a thread), its console and trap log in
    `folder`; judged, and its chart drawn as the release draws it."""
    case = project.boots[case_name]
    pipeline = actions.boot_files(project, case)
    files = qemu.BootFiles(pipeline.kernel, pipeline.initrd, folder / f"{case_name}.log", folder / f"{case_name}.traps")
    verdict = qemu.boot_case(
        project.toolchain,
        project.variants[case.variant],
        case,
        files,
        actions.resolver(project, case),
        runner=runner,
    )
    console = files.console_log.read_text(errors="replace")
    try:
        chart = charts.draw_case(case_name, case.variant, console, charts.case_specs(project, case_name))
    except UserError:  # a malformed data line: the verdict still stands
        chart = None
    return Judged(verdict, chart)


def shell_command(project: Project, shell: Shell) -> list[str]:
    """The QEMU command of `doit shell:<variant>`, with the serial line on stdio and no monitor."""
    case = with_cmdline(project, project.boots[shell.case], shell.append)
    files = actions.boot_files(project, case)
    variant = project.variants[case.variant]
    return qemu.qemu_command(project.toolchain, variant, files.kernel, files.initrd, case, interactive=False)


def run_shell(command: list[str], runner: LiveRunner) -> int | None:
    """Run a shell's QEMU until it powers off or is stopped (blocking: run it in a thread); its exit code."""
    with runner.stream(command, stdin=True) as machine:
        while machine.read(READ_SECONDS) is not None:
            pass
        return machine.poll()


class Slots:
    """At most `limit` machines at once; the others wait in line, in order, each told its place (1 is next) when
    it joins and whenever the line moves. Used from the event loop only."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0
        self._waiting: list[tuple[asyncio.Future[None], Callable[[int], None]]] = []

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def acquire(self, told: Callable[[int], None]) -> None:
        if self.running < self.limit and not self._waiting:
            self.running += 1
            return
        entry = (asyncio.get_running_loop().create_future(), told)
        self._waiting.append(entry)
        told(len(self._waiting))
        try:
            await entry[0]
        except asyncio.CancelledError:
            if entry in self._waiting:
                left = self._waiting.index(entry)
                del self._waiting[left]
                self._retell(left)
            else:  # the slot was handed over just as the waiter left: pass it on
                self.release()
            raise

    def release(self) -> None:
        if self._waiting:
            future, _told = self._waiting.pop(0)
            future.set_result(None)  # the slot goes straight to the next in line
            self._retell(0)
        else:
            self.running -= 1

    def _retell(self, moved: int) -> None:
        """Tell those from index `moved` on their new place (those before it did not move)."""
        for place, (_future, told) in enumerate(self._waiting[moved:], moved + 1):
            told(place)
