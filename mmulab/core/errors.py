"""The exceptions a user can act on. Each carries a one-line message template (TuxMake's habit), so the
wording of a kind of failure lives in one place and tests can match it."""

from __future__ import annotations

import sys
from enum import IntEnum
from typing import Any, TextIO


class ExitCode(IntEnum):
    """What every mmulab command (doit's runs and `mmulab ...`) exits with: the same meaning everywhere."""

    OK = 0
    FAILED = 1  # a task or a check failed: the message says what to fix
    BAD_INPUT = 2  # bad configuration, environment or command line: nothing was built
    INTERRUPTED = 130  # Ctrl-C: what finished is kept, a rerun goes on from there


def printable(text: str) -> str:
    """`text` as one line a terminal shows as it is: what is not printable (a newline, `\r`, ESC, a lone
    surrogate from a JSON escape or a file name that is not UTF-8, a bidi override) written as Python escapes
    it: `\n`, `\x1b`, `\udcff`, `\u202e`. Every line with a stranger's text in it goes through here."""
    return text if text.isprintable() else "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def say(text: str, file: TextIO | None = None, flush: bool = False) -> None:
    """Print `text` as one escaped line (`printable`) on `file` (stdout)."""
    print(printable(text), file=file or sys.stdout, flush=flush)


class UserError(Exception):
    """A problem a user can fix, told as one line naming what to fix; a failed task (exit 1)."""

    template = "{message}"
    exit_code = ExitCode.FAILED

    def __init__(self, message: str = "", **fields: Any) -> None:
        self.fields = {"message": message, **fields}
        super().__init__(self.template.format(**self.fields))


class ConfigError(UserError):
    """Wrong configuration data or environment: nothing was built (exit 2)."""

    exit_code = ExitCode.BAD_INPUT


class EnvError(ConfigError):
    template = "{variable}={value!r}: {problem}; it accepts {accepts}"


class ToolMissing(UserError):
    template = "{tool}: not found on PATH (install Debian package {package}; ./setup.sh does)"


class ChartError(UserError):
    """A console's `mmulab: data:` line that cannot be drawn: the case, the console line and the format to write."""

    template = (
        "{case}: console line {line_number}: {reason}: {line!r} "
        "(write `mmulab: data: <chart> <series> <x> <y>`, see docs/writing-demos.md){more}"
    )
