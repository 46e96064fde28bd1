"""Live progress for long builds (kernel, musl, busybox), read from the build's own output lines.

On a terminal one line is refreshed in place (`kernel nommu: 1834/2210 files  0:52`); elsewhere (CI, a
log) a heartbeat line about every 30 s, so nobody mistakes a long build for a hang. The total comes from
the previous build in the same work directory, or an estimate from configs/ on the first one.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TextIO

from mmulab.core.fsutil import write_atomic

HEARTBEAT_SECONDS = 30.0
REFRESH_SECONDS = 0.25


class ProgressMode(StrEnum):
    """How a long build shows its progress (MMULAB_PROGRESS); AUTO is TTY on a terminal, PLAIN elsewhere."""

    AUTO = "auto"
    TTY = "tty"  # one line refreshed in place
    PLAIN = "plain"  # a heartbeat line about every 30 s
    OFF = "off"


@dataclass(frozen=True)
class ProgressSpec:
    """What to count in a build's output and where its total is remembered."""

    label: str
    pattern: str
    memo: Path
    estimate: int = 0

    def remembered_total(self) -> tuple[int, bool]:
        """(total, exact): the last complete build's count, else the estimate."""
        try:
            return int(json.loads(self.memo.read_text())["count"]), True
        except (OSError, ValueError, KeyError, TypeError):
            return self.estimate, False


class Progress:
    """Counts matching lines and shows them; `mode` is TTY, PLAIN or OFF (AUTO is resolved by for_terminal)."""

    def __init__(
        self,
        spec: ProgressSpec,
        mode: ProgressMode,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec, self.mode, self.clock = spec, ProgressMode(mode), clock
        self.stream = stream or sys.__stderr__ or sys.stderr
        self.pattern = re.compile(spec.pattern)
        self.total, self.exact = spec.remembered_total()
        self.count = 0
        self.started = clock()
        self.last_shown = self.started

    @classmethod
    def for_terminal(cls, spec: ProgressSpec, setting: ProgressMode) -> Progress:
        """`setting` is MMULAB_PROGRESS: AUTO picks TTY when stderr is a terminal, PLAIN otherwise."""
        stream = sys.__stderr__ or sys.stderr
        mode = ProgressMode(setting)
        if mode is ProgressMode.AUTO:
            mode = ProgressMode.TTY if stream.isatty() else ProgressMode.PLAIN
        return cls(spec, mode, stream)

    def line(self, text: str) -> None:
        if self.pattern.search(text):
            self.count += 1
        self.tick()

    def text(self) -> str:
        elapsed = int(self.clock() - self.started)
        known = self.total and self.count <= self.total
        done = f"{self.count}/{'' if self.exact else '~'}{self.total}" if known else f"{self.count}"
        return f"{self.spec.label}: {done} files  {elapsed // 60}:{elapsed % 60:02d}"

    def tick(self) -> None:
        now = self.clock()
        if self.mode is ProgressMode.TTY and now - self.last_shown >= REFRESH_SECONDS:
            self.stream.write("\r\033[K" + self.text())
            self.stream.flush()
            self.last_shown = now
        elif self.mode is ProgressMode.PLAIN and now - self.last_shown >= HEARTBEAT_SECONDS:
            self.stream.write(self.text() + "\n")
            self.stream.flush()
            self.last_shown = now

    def finish(self, succeeded: bool) -> None:
        """Clear the live line; remember the count of a complete build as the next total.

        An incremental build in the same directory compiles only a few files: the largest complete count
        is kept, so the next full build (a changed option) still shows a meaningful total."""
        if self.mode is ProgressMode.TTY:
            self.stream.write("\r\033[K")
            self.stream.flush()
        if succeeded and self.count:
            largest = max(self.count, self.total if self.exact else 0)
            write_atomic(self.spec.memo, json.dumps({"count": largest}) + "\n")
