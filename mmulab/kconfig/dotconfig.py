"""`.config` text: parse it, write a line, merge a fragment, and prove every requested option survived."""

from __future__ import annotations

import re

from mmulab.core.errors import ConfigError
from mmulab.kconfig.tree import KconfigSource, KconfigTree, explain

_LINE_SET = re.compile(r"^CONFIG_([A-Za-z0-9_]+)=(.*)$")
_LINE_UNSET = re.compile(r"^# CONFIG_([A-Za-z0-9_]+) is not set$")
_RAW_VALUE = re.compile(r"^(y|m|n|0x[0-9a-fA-F]+)$")


def kconfig_line(symbol: str, value: bool | int | str) -> str:
    """One .config line for a Kconfig symbol given as TOML data."""
    if value is True:
        return f"CONFIG_{symbol}=y"
    if value is False:
        return f"# CONFIG_{symbol} is not set"
    if isinstance(value, int) or _RAW_VALUE.match(value):
        return f"CONFIG_{symbol}={value}"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'CONFIG_{symbol}="{escaped}"'


def parse_config(text: str, where: str = ".config") -> dict[str, str]:
    """Symbol -> value ('n' for "is not set"); later lines win, as in Kconfig. Junk lines are an error."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if match := _LINE_SET.match(line):
            values[match.group(1)] = match.group(2)
        elif match := _LINE_UNSET.match(line):
            values[match.group(1)] = "n"
        elif line and not line.startswith("#"):
            raise ConfigError(
                f"{where}:{number}: not a Kconfig line: {line!r} (write CONFIG_X=y or '# CONFIG_X is not set')"
            )
    return values


_SYMBOL_LINE = re.compile(r"^(?:# )?CONFIG_([A-Za-z0-9_]+)(?:=| is not set)")


def merge(config: str, fragment: str) -> str:
    """`config` with every symbol the fragment names replaced by the fragment's line (merge_config.sh's job).

    Lines are removed rather than overridden by a later duplicate: older Kconfig copies (busybox's) keep
    the first value they read.
    """
    named = {m.group(1) for line in fragment.splitlines() if (m := _SYMBOL_LINE.match(line.strip()))}
    kept = [line for line in config.splitlines() if not ((m := _SYMBOL_LINE.match(line)) and m.group(1) in named)]
    return "\n".join(kept) + "\n# --- mmulab fragment ---\n" + fragment


def _shown(symbol: str, value: str | None) -> str:
    return f"# CONFIG_{symbol} is not set" if value in (None, "n") else f"CONFIG_{symbol}={value}"


def verify(requested: dict[str, str], final: dict[str, str], source: KconfigSource | None = None) -> list[str]:
    """One message per requested option the final config does not hold (missing counts as 'n').

    With `source`, each says why, from the Kconfig tree the build reads (parsed once, on the first problem).
    """
    problems = []
    tree: KconfigTree | None = None
    for symbol, want in requested.items():
        got = final.get(symbol, "n")
        if got != want:
            message = f"{_shown(symbol, want)} requested, but the final .config has {_shown(symbol, final.get(symbol))}"
            if source is not None:
                try:
                    tree = tree or source.load()
                    message += explain(tree, symbol, final, want)
                except OSError as exc:
                    message += f" (Kconfig tree not readable to say why: {exc})"
            problems.append(message)
    return problems
