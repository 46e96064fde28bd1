"""doit `uptodate` checks that do their work when doit asks, never when tasks are declared.

doit's own config_changed wants the value at declaration; these take a function instead, so declaring
every task of `doit list` runs no compiler, renders no template and reads no tool version.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmulab.core.errors import UserError
from mmulab.core.fsutil import JsonRecord, digest_of


class InputsUnchanged:
    """Up to date while the digest of `inputs()` equals the one saved at the task's last success.

    When the inputs cannot be computed (a tool or file is missing, a template is broken) the task is out
    of date, so its action runs and fails with the one-line error that says what to fix.
    """

    def __init__(self, inputs: Callable[[], Any]) -> None:
        self.inputs = inputs

    def __repr__(self) -> str:
        function = getattr(self.inputs, "func", self.inputs)
        return f"inputs unchanged ({getattr(function, '__name__', 'inputs')})"

    def __call__(self, task: Any, values: dict[str, Any]) -> bool:
        try:
            digest = digest_of(self.inputs())
        except (UserError, OSError):
            return False
        task.value_savers.append(lambda: {"inputs": digest})
        return values.get("inputs") == digest


class RecordedPathExists:
    """Up to date only while the file a stage's record points to is still there (e.g. a download cache
    entry someone deleted): removing any part of the caches leads to a redo, never a crash."""

    def __init__(self, record: Path, kind: type[JsonRecord], field: str) -> None:
        self.record, self.kind, self.field = record, kind, field

    def __repr__(self) -> str:
        return f"{self.record.name}: {self.field} still there"

    def __call__(self) -> bool:
        try:
            return Path(getattr(self.kind.read(self.record), self.field)).exists()
        except UserError:
            return False


class Check:
    """A plain callable check (a function and its arguments) that doit calls without task arguments."""

    def __init__(self, function: Callable[..., bool], *args: Any) -> None:
        self.function, self.args = function, args

    def __repr__(self) -> str:
        return getattr(self.function, "__name__", "check")

    def __call__(self) -> bool:
        return self.function(*self.args)
