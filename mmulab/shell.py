"""Run external tools with their output in a log file; a failure becomes one UserError with the lines that matter."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from .errors import UserError

_RELEVANT = re.compile(r"error|Error \d|\*\*\*|undefined reference|No rule to make|fatal|cannot|not found", re.I)


def require_tool(name: str, package: str) -> str:
    """The path of `name`, or a UserError telling which Debian package provides it."""
    path = shutil.which(name)
    if not path:
        raise UserError(f"{name}: not found on PATH (install Debian package {package}; ./setup.sh does)")
    return path


def relevant_lines(text: str, limit: int = 15) -> str:
    """The error lines of a tool's output (or its tail when none stand out), for a short failure report."""
    lines = [line for line in text.rstrip().splitlines() if not line.startswith("$ ")]
    picked = [line for line in lines if _RELEVANT.search(line)]
    return "\n".join((picked or lines)[-limit:])


def run_logged(
    command: Sequence[str | Path],
    log: Path,
    what: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    feed: bytes | None = None,
) -> None:
    """Run `command` (with `feed` on its stdin), appending its output to `log`; raise UserError naming
    `what` and the log on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = [str(part) for part in command]
    with log.open("ab") as handle:
        handle.write(("$ " + " ".join(argv) + "\n").encode())
        handle.flush()
        try:
            result = subprocess.run(
                argv,
                cwd=cwd,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                input=feed,
                stdin=None if feed is not None else subprocess.DEVNULL,
            )
        except FileNotFoundError:
            raise UserError(f"{what}: cannot run {argv[0]!r}: not found (./setup.sh installs the tools)") from None
    if result.returncode != 0:
        tail = log.read_text(errors="replace").rsplit("\n$ ", 1)[-1]
        raise UserError(f"{what} failed (exit {result.returncode}); full log: {log}\n{relevant_lines(tail)}")


def tool_version(command: Sequence[str]) -> str:
    """First line of `tool --version`, part of cache keys: a new compiler or QEMU rebuilds what it made."""
    try:
        result = subprocess.run([*command, "--version"], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return f"{command[0]}: missing"
    return (result.stdout or result.stderr).splitlines()[0] if (result.stdout or result.stderr) else "unknown"
