"""Kernel configuration: render a variant's fragment, merge it onto a base config, and prove it survived.

Like kunit's kunitconfig handling: the fragment is the contract. After olddefconfig, every option it
asked for must hold in the final .config; a dropped one fails by name, with the `depends on` of its
Kconfig entry and the current values of the symbols in it.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .configdata import Toolchain, Variant
from .errors import ConfigError, UserError
from .tools import RUNNER, Runner

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


def fragment_context(
    variant: Variant, toolchain: Toolchain, base_config: str, kconfig: Mapping[str, Any]
) -> dict[str, Any]:
    """The names every fragment template sees, kernel's and busybox's alike. The sysroot and the compiler's
    own header directory stay placeholders ({sysroot}, {gcc_include}): they are filled in when the build
    runs, so declaring tasks runs no compiler and cache keys do not depend on the checkout's path."""
    return {
        "variant": variant.name,
        "mmu": variant.mmu,
        "base_config": base_config,
        "cmdline": variant.cmdline,
        "cross_prefix": toolchain.cross_prefix,
        "sysroot": "{sysroot}",
        "gcc_include": "{gcc_include}",
        "kconfig": dict(kconfig),
    }


def render_template(template: Path, context: Mapping[str, Any]) -> str:
    """A Jinja2 config fragment: undefined names are errors, blocks leave no blank lines; checked as Kconfig."""
    import jinja2  # only when a fragment is rendered: a no-op run never needs it

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template.parent),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["kconfig_line"] = kconfig_line
    try:
        text = env.get_template(template.name).render(**context)
    except jinja2.TemplateError as exc:
        where = f"{template}:{getattr(exc, 'lineno', None) or '?'}"
        raise ConfigError(f"{where}: template error: {exc} (variant {context.get('variant')})") from None
    parse_config(text, str(template))
    return text


def template_inputs(template: Path, context: Mapping[str, Any]) -> list[Any]:
    """What a rendered fragment depends on, known without rendering it (so a no-op run never imports
    jinja2): every file of the template's folder (a template may include another) and the context."""
    files = sorted(p for p in template.parent.iterdir() if p.is_file())
    return [template.name, [(p.name, hashlib.sha256(p.read_bytes()).hexdigest()) for p in files], dict(context)]


def fragment_inputs(variant: Variant, toolchain: Toolchain) -> list[Any]:
    """The inputs of render_fragment(variant, toolchain): the template's and the extra fragments'."""
    context = fragment_context(variant, toolchain, variant.base_config, variant.kconfig)
    return [template_inputs(variant.template, context), [(str(f), f.read_text()) for f in variant.fragments]]


def render_fragment(variant: Variant, toolchain: Toolchain) -> str:
    """The variant's kernel fragment: its template rendered with its data, then its extra fragments."""
    text = render_template(variant.template, fragment_context(variant, toolchain, variant.base_config, variant.kconfig))
    for fragment in variant.fragments:
        body = fragment.read_text()
        parse_config(body, str(fragment))
        text += f"\n# --- {fragment} ---\n{body}"
    return text


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


def make_args(source: Path, objdir: Path, toolchain: Toolchain) -> list[str]:
    return [
        "make",
        "-C",
        str(source),
        f"O={objdir}",
        f"ARCH={toolchain.arch}",
        f"CROSS_COMPILE={toolchain.cross_prefix}",
    ]


_SYMBOL_LINE = re.compile(r"^(?:# )?CONFIG_([A-Za-z0-9_]+)(?:=| is not set)")


def merge(config: str, fragment: str) -> str:
    """`config` with every symbol the fragment names replaced by the fragment's line (merge_config.sh's job).

    Lines are removed rather than overridden by a later duplicate: older Kconfig copies (busybox's) keep
    the first value they read.
    """
    named = {m.group(1) for line in fragment.splitlines() if (m := _SYMBOL_LINE.match(line.strip()))}
    kept = [line for line in config.splitlines() if not ((m := _SYMBOL_LINE.match(line)) and m.group(1) in named)]
    return "\n".join(kept) + "\n# --- mmulab fragment ---\n" + fragment


def apply_fragment(
    make: list[str],
    objdir: Path,
    base_config: str,
    fragment: str,
    log: Path,
    what: str,
    update: list[str],
    roots: tuple[Path, ...],
    env: Mapping[str, str] | None = None,
    runner: Runner = RUNNER,
) -> str:
    """make <base_config>, merge the fragment, run `update` (olddefconfig...), verify; return the final .config.

    `roots` are searched for the Kconfig entries of options that did not survive, to say why.
    """
    objdir.mkdir(parents=True, exist_ok=True)
    logged = runner.log(log)
    logged.run([*make, base_config], f"{what}: make {base_config}", env=env)
    config_path = objdir / ".config"
    config_path.write_text(merge(config_path.read_text(), fragment))
    logged.run([*make, *update], f"{what}: make {' '.join(update)}", feed=b"\n" * 20000, env=env)
    final_text = config_path.read_text()
    problems = verify(parse_config(fragment, "fragment"), parse_config(final_text), roots)
    if problems:
        raise UserError(
            f"{what}: {len(problems)} requested option(s) did not survive {update[-1]}:\n"
            + "\n".join(f"  - {p}" for p in problems)
        )
    return final_text


def configure(
    source: Path,
    objdir: Path,
    variant: Variant,
    toolchain: Toolchain,
    fragment: str,
    log: Path,
    runner: Runner = RUNNER,
) -> str:
    """Produce a verified kernel .config in `objdir` from the variant's base config and fragment."""
    return apply_fragment(
        make_args(source, objdir, toolchain),
        objdir,
        variant.base_config,
        fragment,
        log,
        f"kernel config {variant.name}",
        ["olddefconfig"],
        (source,),
        runner=runner,
    )


def _shown(symbol: str, value: str | None) -> str:
    return f"# CONFIG_{symbol} is not set" if value in (None, "n") else f"CONFIG_{symbol}={value}"


def verify(requested: dict[str, str], final: dict[str, str], roots: tuple[Path, ...] = ()) -> list[str]:
    """One message per requested option the final config does not hold (missing counts as 'n')."""
    problems = []
    for symbol, want in requested.items():
        got = final.get(symbol, "n")
        if got != want:
            message = f"{_shown(symbol, want)} requested, but the final .config has {_shown(symbol, final.get(symbol))}"
            if roots:
                message += explain(roots, symbol, final)
            problems.append(message)
    return problems


_ENTRY_END = re.compile(r"^\s*(config|menuconfig|choice|endchoice|menu|endmenu|if|endif|source|comment)\b")


def _kconfig_files(roots: tuple[Path, ...]):
    """Kconfig files (and busybox's generated Config.in) under the source tree and the build directory."""
    for top in roots:
        for root, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                if name.startswith("Kconfig") or name == "Config.in":
                    yield top, Path(root) / name


def find_entries(roots: tuple[Path, ...], symbol: str) -> list[tuple[str, int, list[str]]]:
    """Every `config SYMBOL` entry: (file relative to its root, line, its `depends on` expressions)."""
    start = re.compile(rf"^\s*(menu)?config\s+{re.escape(symbol)}\s*$")
    entries = []
    for top, file in _kconfig_files(roots):
        lines = file.read_text(errors="replace").splitlines()
        for index, line in enumerate(lines):
            if start.match(line):
                depends = []
                for body in lines[index + 1 :]:
                    if _ENTRY_END.match(body):
                        break
                    if match := re.match(r"^\s*depends\s+on\s+(.+?)\s*$", body):
                        depends.append(match.group(1))
                entries.append((str(file.relative_to(top)), index + 1, depends))
    return entries


def explain(roots: tuple[Path, ...], symbol: str, final: dict[str, str]) -> str:
    """Why a symbol could not take its value: its unmet `depends on`, or that it does not exist."""
    entries = find_entries(roots, symbol)
    if not entries:
        return " (no such Kconfig symbol in this version: a typo, or an option of another version?)"
    notes = []
    for file, line, depends in entries:
        for expression in depends:
            if evaluate(expression, final) == 0:
                symbols = sorted(set(re.findall(r"\b[A-Z][A-Z0-9_]*\b", expression)))
                values = ", ".join(f"{s}={final.get(s, 'n')}" for s in symbols)
                notes.append(f"unmet 'depends on {expression}' at {file}:{line} ({values})")
    return f"; {'; '.join(notes)}" if notes else ""


_TOKEN = re.compile(r'\s*(\|\||&&|!=|<=|>=|[!()=<>]|"[^"]*"|[A-Za-z0-9_]+)')


def evaluate(expression: str, values: dict[str, str]) -> int:
    """Kconfig tristate logic (n=0, m=1, y=2) over the final .config values."""
    tokens = _TOKEN.findall(expression)
    position = 0

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> str:
        nonlocal position
        position += 1
        return tokens[position - 1]

    def value_of(token: str) -> str:
        if token.startswith('"'):
            return token[1:-1]
        return token if token in ("y", "m", "n") else values.get(token, "n")

    def tristate(value: str) -> int:
        return {"y": 2, "m": 1}.get(value, 0)

    def primary() -> int:
        token = take()
        if token == "!":
            return 2 - primary()
        if token == "(":
            result = disjunction()
            take()
            return result
        if peek() in ("=", "!=", "<", ">", "<=", ">="):
            operator, right = take(), value_of(take())
            left = value_of(token)
            equal = left == right
            return 2 if {"=": equal, "!=": not equal}.get(operator, False) else 0
        return tristate(value_of(token))

    def conjunction() -> int:
        result = primary()
        while peek() == "&&":
            take()
            result = min(result, primary())
        return result

    def disjunction() -> int:
        result = conjunction()
        while peek() == "||":
            take()
            result = max(result, conjunction())
        return result

    try:
        return disjunction()
    except IndexError:
        return 2
