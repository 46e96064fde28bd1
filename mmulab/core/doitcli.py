"""The doit command line, defined once: doit's sub-commands, which of them only read, which one an argv names
(read the way doit reads it), and the command that starts doit on a checkout. The build lock, the checks dodo.py
makes before doit runs, `doit repro`, `verify --rebuild`, the soak and the tests all take it from here.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from doit.cmd_base import DodoTaskLoader
from doit.cmdparse import CmdOption, CmdParse, CmdParseError
from doit.doit_cmd import DoitMain

from mmulab.core.settings import PROJECT_ROOT

# doit's own sub-commands, as doit lists them (`doit help`); a command line naming none runs tasks.
_COMMAND_CLASSES = {command.get_name(): command for command in DoitMain.DOIT_CMDS}
COMMANDS = frozenset(_COMMAND_CLASSES)
DEFAULT_COMMAND = "run"
# The sub-commands that only read: they never wait for a running build (core.lock).
READ_ONLY_COMMANDS = frozenset({"list", "help", "info", "tabcompletion", "dumpdb"})


@dataclass(frozen=True)
class Invocation:
    """A doit command line as doit reads it: the sub-command, and the arguments that follow it."""

    command: str
    arguments: tuple[str, ...]

    def positional(self) -> tuple[str, ...]:
        """What the sub-command gets past its own options (task names, for info), read by the sub-command's
        own option parser; () when doit will refuse the options (doit says so itself)."""
        command = _COMMAND_CLASSES[self.command](task_loader=DodoTaskLoader())
        try:
            _values, positional = command.cmdparser.parse(list(self.arguments))
        except CmdParseError:
            return ()
        return tuple(positional)


def read(argv: Sequence[str]) -> Invocation:
    """doit's own reading of its arguments (DoitMain.run): the dodo-file options (-f, -d, -k) may come first,
    NAME=value sets one of doit's command-line variables, and then the first argument is the sub-command if it
    names one; else the sub-command is run and every argument is its own."""
    dodo_options = CmdParse([CmdOption(option) for option in DodoTaskLoader.cmd_options])
    try:
        _values, rest = dodo_options.parse_only(list(argv))
    except CmdParseError:  # as in doit: an option of `run` itself (-n 2) comes first, so no sub-command is named
        rest = list(argv)
    arguments = [argument for argument in rest if argument.startswith("-") or "=" not in argument]
    if arguments and arguments[0] in COMMANDS:
        return Invocation(arguments[0], tuple(arguments[1:]))
    return Invocation(DEFAULT_COMMAND, tuple(arguments))


def doit_argv(args: Sequence[str], checkout: Path = PROJECT_ROOT) -> list[str]:
    """The command that runs doit with `args` on `checkout`'s dodo.py, from that checkout, with this Python: a
    sub-command first, then -f/-d, then the rest. dumpdb reads no dodo.py and refuses -f/-d: give it --db-file."""
    head = [sys.executable, "-m", "doit"]
    dodo = ["-f", str(checkout / "dodo.py"), "-d", str(checkout)]
    if args and args[0] == "dumpdb":
        return [*head, *args]
    if args and args[0] in COMMANDS:
        return [*head, args[0], *dodo, *args[1:]]
    return [*head, *dodo, *args]
