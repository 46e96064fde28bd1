"""The exceptions a user can act on. Each carries a one-line message template (TuxMake's habit), so the
wording of a kind of failure lives in one place and tests can match it."""

from __future__ import annotations

from typing import Any


class UserError(Exception):
    """A problem a user can fix, told as one line naming what to fix; a failed task (exit 1)."""

    template = "{message}"
    exit_code = 1

    def __init__(self, message: str = "", **fields: Any) -> None:
        self.fields = {"message": message, **fields}
        super().__init__(self.template.format(**self.fields))


class ConfigError(UserError):
    """Wrong configuration data or environment: nothing was built (exit 2)."""

    exit_code = 2


class EnvError(ConfigError):
    template = "{variable}={value!r}: {problem}; it accepts {accepts}"


class ToolMissing(UserError):
    template = "{tool}: not found on PATH (install Debian package {package}; ./setup.sh does)"
