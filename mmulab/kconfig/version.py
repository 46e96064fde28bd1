"""A kernel tree's version: what the kernel fragment templates branch on when an option was added, renamed or
removed between releases. Read from the tree's own Makefile, so a user's tree (LINUX_SRC) of any version gets the
same version-aware fragments as a pinned series."""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from mmulab.core.errors import ConfigError

_MAKEFILE_FIELD = re.compile(r"^(VERSION|PATCHLEVEL|SUBLEVEL)\s*=\s*(\d*)\s*$", re.M)
_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


class KernelVersion(NamedTuple):
    """major.minor.sublevel; a tuple, so a template compares it with a tuple: `linux_version >= (6, 7)`."""

    major: int
    minor: int
    sublevel: int = 0

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.sublevel}"

    @property
    def series(self) -> str:
        return f"{self.major}.{self.minor}"


def parse_version(text: str) -> KernelVersion | None:
    """6.12.80 (or 6.12, or 6.18.15-1~bpo13+1's upstream part) as a KernelVersion; None when it is not one."""
    match = _VERSION.match(text.strip())
    if not match:
        return None
    return KernelVersion(int(match.group(1)), int(match.group(2)), int(match.group(3) or 0))


def tree_version(tree: Path) -> KernelVersion:
    """The version a kernel tree's top Makefile declares (VERSION, PATCHLEVEL, SUBLEVEL)."""
    makefile = tree / "Makefile"
    try:
        head = makefile.read_text(errors="replace")[:4096]
    except OSError as error:
        problem = f"cannot read the kernel's version ({error.strerror}); is this a Linux tree?"
        raise ConfigError(f"{makefile}: {problem}") from None
    fields = dict(_MAKEFILE_FIELD.findall(head))
    if not fields.get("VERSION") or not fields.get("PATCHLEVEL"):
        raise ConfigError(
            f"{makefile}: no VERSION and PATCHLEVEL lines at its top; is {tree} a Linux source tree (LINUX_SRC)?"
        )
    return KernelVersion(int(fields["VERSION"]), int(fields["PATCHLEVEL"]), int(fields.get("SUBLEVEL") or 0))
