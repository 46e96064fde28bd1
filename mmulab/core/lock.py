"""One run at a time per build directory: doit's dependency database and the stage outputs are not safe
to share between concurrent runs. A second run waits, saying for whom, then goes on; other build
directories (MMULAB_BUILD_DIR) are not affected.
"""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path
from typing import TextIO


class BuildLock:
    """An exclusive flock on <build dir>/.lock, held for the life of the process, with the holder's pid in it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: TextIO | None = None

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def acquire(self, say: TextIO | None = None) -> None:
        """Take the lock, waiting (and saying so once on `say`) while another run holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            stream = say or sys.stderr
            stream.write(f"mmulab: waiting for the run holding {self.path} (pid {self.holder()})\n")
            stream.flush()
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self.handle = handle
