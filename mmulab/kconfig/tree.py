"""The Kconfig tree one build actually reads, and why a symbol could not take a requested value.

The kernel's own scripts/kconfig has no mode that explains a dropped symbol (helpnewconfig only covers
visible new ones) and kconfiglib (last release 14.1.0, 2020) cannot parse 6.12 (`modules`), so this
module follows `source` from the top file like kconfig does, with the build's SRCARCH, and keeps for
each `config` entry what gates it: enclosing `if`/`menu`/`choice` conditions and its own `depends on`.
Pure parsing and evaluation: no subprocess, no macro functions ($(shell,...) is unknown, taken as met).
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

NO_SUCH_SYMBOL = " (no such Kconfig symbol in this version: a typo, or an option of another version?)"


@dataclass(frozen=True)
class KconfigSource:
    """Where a Kconfig tree is: roots searched in order for each sourced path (first hit wins, like
    kconfig's cwd-then-$srctree), the top file, and the variables `source` paths may use."""

    roots: tuple[Path, ...]
    top: str = "Kconfig"
    env: tuple[tuple[str, str], ...] = ()

    def load(self) -> KconfigTree:
        return load(self.roots, self.top, dict(self.env))


def srcarch(arch: str) -> str:
    """The arch/ directory for ARCH, as the kernel Makefile maps it."""
    aliases = {"i386": "x86", "x86_64": "x86", "sparc32": "sparc", "sparc64": "sparc", "parisc64": "parisc"}
    return aliases.get(arch, arch)


def linux_source(tree: Path, arch: str) -> KconfigSource:
    """The Kconfig tree `make ARCH=arch` reads in a Linux source tree."""
    return KconfigSource((tree,), "Kconfig", (("ARCH", arch), ("SRCARCH", srcarch(arch))))


@dataclass(frozen=True)
class Condition:
    """One thing that gates an entry. kind: 'depends on' (the entry's own), 'if' (an enclosing if block),
    'menu' / 'choice' (an enclosing block's `depends on`), 'visible if' / 'prompt if' (only hide the prompt).
    For block conditions `line` is the block's own line and `block` its text (e.g. 'menu "Kernel hacking"')."""

    kind: str
    expression: str
    file: str
    line: int
    block: str = ""


@dataclass(frozen=True)
class Range:
    low: str
    high: str
    condition: str | None
    file: str
    line: int


@dataclass(frozen=True)
class Select:
    """`select target [if condition]` in the entry of `selector`."""

    selector: str
    target: str
    condition: str | None
    file: str
    line: int


@dataclass(frozen=True)
class Entry:
    """One definition (`config` / `menuconfig`) of a symbol; a symbol may have several."""

    symbol: str
    file: str
    line: int
    type: str
    has_prompt: bool
    depends: tuple[Condition, ...]
    conditions: tuple[Condition, ...]
    prompt_conditions: tuple[Condition, ...] = ()
    ranges: tuple[Range, ...] = ()
    choice: str = ""


@dataclass(frozen=True, eq=False)
class KconfigTree:
    roots: tuple[Path, ...]
    top: str
    entries: Mapping[str, tuple[Entry, ...]]
    selects: Mapping[str, tuple[Select, ...]]
    choices: Mapping[str, tuple[str, ...]]
    files: frozenset[Path]
    missing: tuple[str, ...] = field(default=())


# --- parsing -------------------------------------------------------------------------------------------

_TYPES = {"bool": "bool", "boolean": "bool", "tristate": "tristate", "string": "string", "int": "int", "hex": "hex"}
_SOURCES = ("source", "rsource", "osource", "orsource")
_ATTRIBUTES = {*_TYPES, "prompt", "def_bool", "def_tristate", "default", "depends", "select", "imply", "range"}
_ATTRIBUTES |= {"visible", "option", "modules", "optional", "transitional"}
_ASSIGNMENT = re.compile(r"^([A-Za-z0-9_-]+)\s*(?::=|\+=|=)\s*(.*)$")
_PATH_VARIABLE = re.compile(r"\$\(([A-Za-z0-9_-]+)\)|\$\{([A-Za-z0-9_]+)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_EXPRESSION_VARIABLE = re.compile(r"\$\(([A-Za-z0-9_-]+)\)")


@dataclass
class _Block:
    kind: str
    file: str
    line: int
    title: str
    conditions: list[Condition] = field(default_factory=list)
    visibility: list[Condition] = field(default_factory=list)


@dataclass
class _Builder:
    symbol: str
    file: str
    line: int
    conditions: tuple[Condition, ...]
    visibility: list[Condition]
    choice: str
    type: str = ""
    has_prompt: bool = False
    depends: list[Condition] = field(default_factory=list)
    ranges: list[Range] = field(default_factory=list)

    def entry(self) -> Entry:
        return Entry(
            self.symbol,
            self.file,
            self.line,
            self.type,
            self.has_prompt,
            tuple(self.depends),
            self.conditions,
            tuple(self.visibility),
            tuple(self.ranges),
            self.choice,
        )


def _strip_comment(text: str) -> str:
    if "#" not in text:
        return text
    quote, depth = "", 0
    for index, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "(" and index and text[index - 1] == "$":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
        elif char == "#" and not depth:
            return text[:index].rstrip()
    return text


_PROMPT = re.compile(r"""^(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')\s*(.*)$""")


def _split_prompt(text: str) -> tuple[str | None, str | None]:
    """'"Prompt" if EXPR' -> (prompt, condition); no quoted prompt -> (None, None)."""
    match = _PROMPT.match(text)
    if not match:
        return None, None
    rest = match.group(3)
    condition = rest[3:].strip() if rest.startswith("if ") else ""
    return match.group(1) if match.group(1) is not None else match.group(2), condition or None


def _indent(line: str) -> int:
    lead = line[: len(line) - len(line.lstrip())]
    return len(lead.expandtabs(8)) if "\t" in lead else len(lead)


def _skip_help(lines: list[str], index: int) -> int:
    """Index of the first line after a help text: it ends at a line indented less than its first line."""
    first = 0
    while index < len(lines):
        line = lines[index]
        if line.strip():
            indent = _indent(line)
            if indent == 0 or indent < first:
                break
            first = first or indent
        index += 1
    return index


class _Parser:
    def __init__(self, roots: tuple[Path, ...], env: Mapping[str, str]) -> None:
        self.roots = roots
        self.env = dict(env)
        self.variables: dict[str, str] = {}
        self.entries: dict[str, list[Entry]] = {}
        self.selects: dict[str, list[Select]] = {}
        self.choices: dict[str, list[str]] = {}
        self.files: set[Path] = set()
        self.missing: list[str] = []
        self.stack: list[_Block] = []
        self.owner: _Builder | _Block | None = None

    def close(self) -> None:
        if isinstance(self.owner, _Builder):
            self.entries.setdefault(self.owner.symbol, []).append(self.owner.entry())
        self.owner = None

    def expand_path(self, text: str) -> str:
        def one(match: re.Match[str]) -> str:
            name = match.group(1) or match.group(2) or match.group(3)
            if name in self.env:
                return self.env[name]
            if match.group(1) and name in self.variables and "$" not in self.variables[name]:
                return self.variables[name]
            return ""

        return _PATH_VARIABLE.sub(one, text)

    def expand_expression(self, text: str) -> str:
        """Plain variables ($(SRCARCH)) are substituted; macro functions stay, evaluated as unknown."""
        if "$" not in text:
            return text

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            value = self.env.get(name, self.variables.get(name))
            return value if value is not None and "$" not in value else match.group(0)

        return _EXPRESSION_VARIABLE.sub(one, text)

    def resolve(self, target: str) -> list[tuple[str, Path]]:
        """(shown name, file) for a sourced path: absolute, or the first root holding it; globs expand."""
        if os.path.isabs(target):
            candidates = [Path(p) for p in sorted(Path("/").glob(target[1:]))] if _is_glob(target) else [Path(target)]
            return [(str(p), p) for p in candidates if p.is_file()]
        target = posixpath.normpath(target)
        if not _is_glob(target):
            for root in self.roots:
                path = root / target
                if path.is_file():
                    return [(target, path)]
            return []
        found: dict[str, Path] = {}
        for root in self.roots:
            for path in sorted(root.glob(target)):
                if path.is_file():
                    found.setdefault(path.relative_to(root).as_posix(), path)
        return sorted(found.items())

    def parse_file(self, name: str, path: Path, chain: tuple[Path, ...]) -> None:
        self.files.add(path)
        lines = path.read_text(errors="replace").split("\n")
        index = 0
        while index < len(lines):
            number = index + 1
            text = lines[index].strip()
            index += 1
            if not text or text[0] == "#":
                continue
            while text.endswith("\\") and index < len(lines):
                text = text[:-1] + " " + lines[index].strip()
                index += 1
            word, _, rest = text.partition(" ")
            if "\t" in word:
                word, _, more = word.partition("\t")
                rest = f"{more} {rest}"
            rest = _strip_comment(rest.strip())
            if word in ("help", "---help---"):
                index = _skip_help(lines, index)
            elif word in ("config", "menuconfig"):
                self.close()
                self.start_entry(rest.split()[0] if rest else "", name, number)
            elif word in ("if", "menu", "choice"):
                self.close()
                self.start_block(word, rest, name, number)
            elif word in ("endif", "endmenu", "endchoice"):
                self.close()
                self.end_block(word[3:])
            elif word in _SOURCES:
                self.close()
                self.source(word, rest, name, number, (*chain, path))
            elif word in ("comment", "mainmenu"):
                self.close()
                self.owner = _Block("comment", name, number, "")
            elif word not in _ATTRIBUTES and (match := _ASSIGNMENT.match(text)):
                self.variables[match.group(1)] = match.group(2).strip()
            elif isinstance(self.owner, _Builder):
                self.entry_attribute(self.owner, word, rest, name, number)
            elif isinstance(self.owner, _Block):
                self.block_attribute(self.owner, word, rest, name, number)
        if isinstance(self.owner, _Builder):  # an entry ends with its file
            self.close()

    def start_entry(self, symbol: str, name: str, number: int) -> None:
        choice = next((b for b in reversed(self.stack) if b.kind == "choice"), None)
        where = f"{choice.file}:{choice.line}" if choice else ""
        if choice:
            self.choices.setdefault(where, []).append(symbol)
        self.owner = _Builder(
            symbol,
            name,
            number,
            tuple(c for block in self.stack for c in block.conditions),
            [c for block in self.stack for c in block.visibility],
            where,
        )

    def start_block(self, kind: str, rest: str, name: str, number: int) -> None:
        if kind == "if":
            expression = self.expand_expression(rest)
            self.stack.append(_Block("if", name, number, "", [Condition("if", expression, name, number)]))
            return
        title = f"menu {rest}" if kind == "menu" else "choice"
        self.stack.append(_Block(kind, name, number, title))
        self.owner = self.stack[-1]

    def end_block(self, kind: str) -> None:
        while self.stack:
            if self.stack.pop().kind == kind:
                return

    def source(self, word: str, rest: str, name: str, number: int, chain: tuple[Path, ...]) -> None:
        target = rest.strip()
        if target[:1] in ("'", '"'):
            target = target[1 : target.index(target[0], 1)] if target[0] in target[1:] else target[1:]
        target = self.expand_path(target)
        if word in ("rsource", "orsource") and not os.path.isabs(target):
            target = posixpath.join(posixpath.dirname(name), target)
        found = self.resolve(target)
        if not found and word in ("source", "rsource"):
            self.missing.append(f"{name}:{number}: {target}")
        for shown, path in found:
            if path not in chain:
                self.parse_file(shown, path, chain)

    def entry_attribute(self, builder: _Builder, word: str, rest: str, name: str, number: int) -> None:
        if word in _TYPES or word == "prompt":
            builder.type = _TYPES.get(word, builder.type)
            prompt, condition = _split_prompt(rest)
            if prompt is not None:
                builder.has_prompt = True
                if condition:
                    builder.visibility.append(Condition("prompt if", self.expand_expression(condition), name, number))
        elif word in ("def_bool", "def_tristate"):
            builder.type = word[4:]
        elif word == "depends" and rest.startswith("on"):
            expression = self.expand_expression(rest[2:].strip())
            builder.depends.append(Condition("depends on", expression, name, builder.line))
        elif word == "select" and rest:
            target, _, condition = rest.partition(" if ")
            selection = Select(builder.symbol, target.strip(), condition.strip() or None, name, number)
            self.selects.setdefault(selection.target, []).append(selection)
        elif word == "range":
            bounds, _, condition = rest.partition(" if ")
            parts = bounds.split()
            if len(parts) == 2:
                builder.ranges.append(Range(parts[0], parts[1], condition.strip() or None, name, number))

    def block_attribute(self, block: _Block, word: str, rest: str, name: str, number: int) -> None:
        if block.kind == "comment":
            return
        if word == "depends" and rest.startswith("on"):
            expression = self.expand_expression(rest[2:].strip())
            block.conditions.append(Condition(block.kind, expression, block.file, block.line, block.title))
        elif word == "visible" and rest.startswith("if"):
            expression = self.expand_expression(rest[2:].strip())
            block.visibility.append(Condition("visible if", expression, block.file, block.line, block.title))
        elif block.kind == "choice" and (word in _TYPES or word == "prompt"):
            _prompt, condition = _split_prompt(rest)
            if condition:
                block.visibility.append(Condition("prompt if", self.expand_expression(condition), name, number))


def _is_glob(path: str) -> bool:
    return any(char in path for char in "*?[")


def load(roots: tuple[Path, ...], top: str = "Kconfig", env: Mapping[str, str] | None = None) -> KconfigTree:
    """Parse the tree reached from `top` (searched in `roots`) by following source lines, once.

    A sourced file that is missing is listed in `missing` rather than failing: explanations are best effort.
    """
    parser = _Parser(tuple(roots), env or {})
    found = parser.resolve(top)
    if not found:
        raise FileNotFoundError(f"no {top} in {', '.join(str(r) for r in roots)}")
    for name, path in found:
        parser.parse_file(name, path, ())
    parser.close()
    return KconfigTree(
        parser.roots,
        top,
        {k: tuple(v) for k, v in parser.entries.items()},
        {k: tuple(v) for k, v in parser.selects.items()},
        {k: tuple(v) for k, v in parser.choices.items()},
        frozenset(parser.files),
        tuple(parser.missing),
    )


# --- evaluation ----------------------------------------------------------------------------------------

_OPERATORS = ("||", "&&", "!=", "<=", ">=", "!", "(", ")", "=", "<", ">")
_COMPARISONS = ("=", "!=", "<", ">", "<=", ">=")


def _tokens(expression: str) -> list[str]:
    """Operators, quoted strings, words, and whole $(...) macros (one token each)."""
    tokens, index, size = [], 0, len(expression)
    while index < size:
        char = expression[index]
        if char.isspace():
            index += 1
        elif expression.startswith("$(", index):
            depth, end = 0, index + 1
            while end < size:
                depth += {"(": 1, ")": -1}.get(expression[end], 0)
                end += 1
                if depth == 0:
                    break
            tokens.append(expression[index:end])
            index = end
        elif char in "\"'":
            end = expression.find(char, index + 1)
            end = size - 1 if end < 0 else end
            tokens.append(expression[index : end + 1])
            index = end + 1
        elif operator := next((op for op in _OPERATORS if expression.startswith(op, index)), None):
            tokens.append(operator)
            index += len(operator)
        else:
            end = index
            while end < size and (expression[end].isalnum() or expression[end] in "_-."):
                end += 1
            tokens.append(expression[index : max(end, index + 1)])
            index = max(end, index + 1)
    return tokens


def _is_symbol(token: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9_]+", token)) and token not in ("y", "m", "n") and _number(token) is None


def _number(text: str) -> int | None:
    for base in (0, 10):
        try:
            return int(text, base)
        except ValueError:
            pass
    return None


def symbols(expression: str) -> list[str]:
    """The symbols an expression reads, sorted (macros and constants left out)."""
    return sorted({token for token in _tokens(expression) if _is_symbol(token)})


def evaluate(expression: str, values: Mapping[str, str]) -> int:
    """Kconfig tristate logic (n=0, m=1, y=2) over the final .config values.

    What cannot be known here ($(cc-option,...) macros, a malformed expression) counts as met, so an
    explanation never blames a condition it could not evaluate.
    """
    tokens = _tokens(expression)
    position = 0

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> str:
        nonlocal position
        position += 1
        return tokens[position - 1]

    def value_of(token: str) -> str | None:
        if token.startswith("$("):
            return None
        if token[:1] in ("'", '"'):
            return token[1:-1]
        if token in ("y", "m", "n") or (_number(token) is not None and token not in values):
            return token
        value = values.get(token, "n")
        return value[1:-1] if len(value) > 1 and value[0] == value[-1] == '"' else value

    def tristate(value: str | None) -> int:
        return 2 if value is None else {"y": 2, "m": 1}.get(value, 0)

    def compare(operator: str, left: str | None, right: str | None) -> int:
        if left is None or right is None:
            return 2
        a, b = _number(left), _number(right)
        # two numbers compare as numbers, anything else as strings: -1, 0 or 1
        order = (a > b) - (a < b) if a is not None and b is not None else (left > right) - (left < right)
        result = {
            "=": order == 0,
            "!=": order != 0,
            "<": order < 0,
            ">": order > 0,
            "<=": order <= 0,
            ">=": order >= 0,
        }[operator]
        return 2 if result else 0

    def primary() -> int:
        token = take()
        if token == "!":
            return 2 - primary()
        if token == "(":
            result = disjunction()
            take()
            return result
        if peek() in _COMPARISONS:
            operator = take()
            return compare(operator, value_of(token), value_of(take()))
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
    except (IndexError, KeyError):
        return 2


# --- explanation ---------------------------------------------------------------------------------------


def _values(expression: str, values: Mapping[str, str]) -> str:
    return ", ".join(f"{s}={values.get(s, 'n')}" for s in symbols(expression))


def _fix(expression: str, values: Mapping[str, str], need: int) -> str:
    """The one-symbol changes that would meet `expression`: 'add CONFIG_X=y' or "set '# CONFIG_X is not set'"."""
    fixes = []
    for symbol in symbols(expression):
        current = values.get(symbol, "n")
        if current != "y" and evaluate(expression, {**values, symbol: "y"}) >= need:
            fixes.append(f"add CONFIG_{symbol}=y")
        if current != "n" and evaluate(expression, {**values, symbol: "n"}) >= need:
            fixes.append(f"remove CONFIG_{symbol} (set '# CONFIG_{symbol} is not set')")
    return f": {' or '.join(fixes)}" if fixes else ""


def describe(condition: Condition, values: Mapping[str, str], need: int = 1) -> str:
    """One unmet condition, where it is, the values it reads, and the fix if one symbol would do."""
    where = f"{condition.file}:{condition.line}"
    shown = f" ({_values(condition.expression, values)})" if symbols(condition.expression) else ""
    expression, block = condition.expression, condition.block
    text = {
        "depends on": f"unmet 'depends on {expression}' at {where}{shown}",
        "if": f"inside 'if {expression}' at {where}{shown}",
        "visible if": f"prompt hidden inside '{block}' at {where}: 'visible if {expression}'{shown}",
        "prompt if": f"prompt hidden: 'if {expression}' at {where}{shown}",
    }.get(condition.kind, f"inside '{block}' at {where}: unmet 'depends on {expression}'{shown}")
    if evaluate(condition.expression, values) == 1 and need == 2:
        text += " limits it to m"
    return text + _fix(condition.expression, values, need)


def _unmet(conditions: tuple[Condition, ...], values: Mapping[str, str], need: int) -> list[Condition]:
    return [c for c in conditions if evaluate(c.expression, values) < need]


def _selectors(tree: KconfigTree, symbol: str, values: Mapping[str, str], active_only: bool = False) -> str:
    selects = tree.selects.get(symbol, ())
    if active_only:
        selects = tuple(
            s for s in selects if values.get(s.selector, "n") in ("y", "m") and evaluate(s.condition or "y", values)
        )
    names = list(dict.fromkeys(f"{s.selector}={values.get(s.selector, 'n')}" for s in selects))
    more = f" and {len(names) - 6} more" if len(names) > 6 else ""
    return ", ".join(names[:6]) + more


def explain(tree: KconfigTree, symbol: str, values: Mapping[str, str], want: str | None = None) -> str:
    """Why `symbol` could not take `want` (a .config value) given the final `values`: '; reason; reason'.

    Only the definitions in the tree this build reads count. If any prompted definition has all its
    dependencies met, the others' unmet ones do not matter (Kconfig ORs definitions), so the reason is
    then a hidden prompt, a range, a select or a choice; otherwise every unmet condition is named.
    """
    entries = tree.entries.get(symbol, ())
    if not entries:
        return _not_in_tree(tree, symbol)
    notes = _reasons(tree, symbol, entries, values, want)
    return f"; {'; '.join(notes)}" if notes else ""


def _reasons(
    tree: KconfigTree, symbol: str, entries: tuple[Entry, ...], values: Mapping[str, str], want: str | None
) -> list[str]:
    kind = next((e.type for e in entries if e.type), "")
    got = values.get(symbol, "n")
    if want == "m" and kind == "bool":
        return [f"{symbol} is a bool: it can be y or n, not m"]
    notes: list[str] = []
    if want == "m" and values.get("MODULES", "n") != "y" and "MODULES" in tree.entries:
        notes.append("m needs CONFIG_MODULES=y (add it, or request y)")
    need = 2 if want == "y" and kind == "tristate" else 1
    if want == "n" and got != "n":
        selected = _selectors(tree, symbol, values, active_only=True)
        if selected:
            notes.append(f"selected by {selected}")
        notes += _choice_note(tree, entries, symbol, values, want)
        if not selected and not any(e.has_prompt for e in entries):
            notes.append("no prompt: only its 'default' or a 'select' sets it, a fragment cannot unset it")
        return notes
    prompted = [e for e in entries if e.has_prompt]
    if not prompted:
        selectors = _selectors(tree, symbol, values)
        who = f" (selected by {selectors})" if selectors else " (nothing selects it)"
        where = f"{entries[0].file}:{entries[0].line}"
        return [*notes, f"no prompt at {where}: a fragment cannot set it, only a 'select'{who}"]
    unmet = {e: _unmet(e.conditions + e.depends, values, need) for e in prompted}
    reachable = [e for e in prompted if not unmet[e]]
    if not reachable:
        return notes + [describe(c, values, need) for c in dict.fromkeys(c for e in prompted for c in unmet[e])]
    hidden = {e: _unmet(e.prompt_conditions, values, need) for e in reachable}
    if all(hidden.values()):
        return notes + [describe(c, values, need) for c in dict.fromkeys(c for e in reachable for c in hidden[e])]
    visible = [e for e in reachable if not hidden[e]]
    notes += _range_note(visible, want, values)
    if want == "y" and got != "y":
        notes += _choice_note(tree, visible, symbol, values, want)
    return notes


def _range_note(entries: list[Entry], want: str | None, values: Mapping[str, str]) -> list[str]:
    number = _number(want) if want else None
    if number is None:
        return []
    for entry in entries:
        for bounds in entry.ranges:
            if bounds.condition and evaluate(bounds.condition, values) == 0:
                continue
            low, high = (_number(values.get(b, b).strip('"')) for b in (bounds.low, bounds.high))
            if low is not None and high is not None and not low <= number <= high:
                return [f"{want} is outside 'range {bounds.low} {bounds.high}' at {bounds.file}:{bounds.line}"]
    return []


def _choice_note(
    tree: KconfigTree, entries: list[Entry] | tuple[Entry, ...], symbol: str, values: Mapping[str, str], want: str
) -> list[str]:
    """A choice keeps exactly one member y: unset one by requesting another, set one and the others follow."""
    choice = next((e.choice for e in entries if e.choice), "")
    if not choice:
        return []
    chosen = [f"CONFIG_{s}=y" for s in tree.choices.get(choice, ()) if s != symbol and values.get(s, "n") == "y"]
    if want == "n":
        return [f"a member of the 'choice' at {choice}, which keeps one member set: request another member as y"]
    return [f"a member of the 'choice' at {choice}, which has {', '.join(chosen) or 'another member'} instead"]


def _not_in_tree(tree: KconfigTree, symbol: str) -> str:
    elsewhere = _defined_elsewhere(tree, symbol)
    if not elsewhere:
        return NO_SUCH_SYMBOL
    shown = ", ".join(elsewhere[:3]) + (f" and {len(elsewhere) - 3} more" if len(elsewhere) > 3 else "")
    if all(place.startswith("arch/") for place in elsewhere):
        return f" (defined only for other architectures: {shown})"
    return f" (defined only in Kconfig files this build does not read: {shown})"


@lru_cache(maxsize=4)
def _unread_files(tree: KconfigTree) -> tuple[tuple[str, Path], ...]:
    """Kconfig files under the roots that the tree does not source (other architectures' mostly)."""
    found = []
    for root in tree.roots:
        for directory, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                path = Path(directory) / name
                if (name.startswith("Kconfig") or name == "Config.in") and path not in tree.files:
                    found.append((path.relative_to(root).as_posix(), path))
    return tuple(found)


def _defined_elsewhere(tree: KconfigTree, symbol: str) -> list[str]:
    start = re.compile(rf"^[ \t]*(?:menu)?config[ \t]+{re.escape(symbol)}[ \t]*(?:#.*)?$", re.MULTILINE)
    places = []
    for name, path in _unread_files(tree):
        text = path.read_text(errors="replace")
        if symbol in text:
            places += [f"{name}:{text.count(chr(10), 0, m.start()) + 1}" for m in start.finditer(text)]
    return places
