"""`mmulab bisect`: the first commit of a kernel git tree (LINUX_SRC) that turns a case from PASS to FAIL.

The loop is git's own algorithm driven from here: `git rev-list --bisect-all BAD ^GOOD...` orders the commits left
to test best first, and the first one neither tested nor skipped is tested next; no `git bisect` state is ever
written. Each commit is checked out in the bisect's own clone of the tree (`git clone --shared`, under the build
directory), never in the user's tree: its branch, HEAD, files and refs are only read. An `Oracle` (the pipeline's:
`bisectstep.PipelineOracle`) says of a commit good, bad or skip; the state (bounds, skips, every step) is written
after each step, so Ctrl-C loses at most the step under way and `--resume` continues.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from mmulab.core.errors import ConfigError, UserError
from mmulab.core.fsutil import write_atomic
from mmulab.core.tools import RUNNER, Runner

STATE_VERSION = 1
SIDE_BY_SIDE_LINES = 12
SIDE_WIDTH = 60


class Mark(StrEnum):
    """What a step says of a commit."""

    GOOD = "good"
    BAD = "bad"
    SKIP = "skip"


@dataclass(frozen=True)
class CaseRun:
    """One case booted at one commit: what its verdict said, and where its console was kept."""

    case: str
    observed: str
    passed: bool
    reason: str = ""
    notes: tuple[str, ...] = ()
    console: str = ""


@dataclass(frozen=True)
class Step:
    """One commit tested: its mark and why, how long it took and how many boots it needed."""

    commit: str
    subject: str
    mark: Mark
    reason: str
    seconds: float
    attempts: int = 1
    cases: tuple[CaseRun, ...] = ()
    role: str = "step"  # "good" / "bad": the check of --good / --bad; "step": a bisect step

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mark": self.mark.value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Step:
        cases = tuple(CaseRun(**{**case, "notes": tuple(case.get("notes", ()))}) for case in data.get("cases", ()))
        return cls(**{**data, "mark": Mark(data["mark"]), "cases": cases})


# The oracle: a commit (checked out in the bisect's clone) to its Step (its role is set by the loop).
Oracle = Callable[[str], Step]


@dataclass(frozen=True)
class State:
    """Everything a bisect knows: what it was asked, the bounds so far and every step taken (the state file)."""

    tree: str
    good: str
    bad: str
    cases: tuple[str, ...]
    retries: int
    goods: tuple[str, ...] = ()
    bads: tuple[str, ...] = ()
    skips: tuple[str, ...] = ()
    steps: tuple[Step, ...] = ()
    version: int = STATE_VERSION

    def after(self, step: Step) -> State:
        steps = (*self.steps, step)
        if step.mark is Mark.GOOD:
            return replace(self, goods=(*self.goods, step.commit), steps=steps)
        if step.mark is Mark.BAD:
            return replace(self, bads=(*self.bads, step.commit), steps=steps)
        return replace(self, skips=(*self.skips, step.commit), steps=steps)

    def checked(self, role: str) -> bool:
        return any(step.role == role for step in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "steps": [step.to_dict() for step in self.steps]}

    def write(self, path: Path) -> None:
        write_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @staticmethod
    def write_to(path: Path) -> Callable[[State], None]:
        return lambda state: state.write(path)

    @classmethod
    def read(cls, path: Path) -> State:
        try:
            data = json.loads(path.read_text())
            if data.get("version") != STATE_VERSION:
                raise ValueError(f"version {data.get('version')!r}, not {STATE_VERSION}")
            steps = tuple(Step.from_dict(step) for step in data["steps"])
            tuples = {name: tuple(data[name]) for name in ("cases", "goods", "bads", "skips")}
            return cls(**{**data, **tuples, "steps": steps})
        except FileNotFoundError:
            raise ConfigError(f"bisect --resume: no bisect to resume ({path} does not exist)") from None
        except (ValueError, KeyError, TypeError) as error:
            raise ConfigError(
                f"bisect --resume: {path}: not a bisect state file ({error}); start again with --good and --bad"
            ) from None


@dataclass(frozen=True)
class Commit:
    hash: str
    subject: str
    date: str  # the author date, ISO 8601


class Git:
    """The few git commands a bisect needs, on one repository: the narrow seam the fast tests keep real (on
    small repositories) while the build and boot are faked."""

    def __init__(self, tree: Path, runner: Runner = RUNNER) -> None:
        self.tree, self.runner = tree, runner

    def _git(self, *args: str) -> str:
        return self.runner.query(["git", "-C", str(self.tree), *args])

    def check_repository(self, what: str) -> None:
        try:
            top = self._git("rev-parse", "--show-toplevel")
        except UserError:
            top = ""
        if not top or Path(top).resolve() != self.tree.resolve():
            raise ConfigError(
                f"bisect: {what}={self.tree}: not a git repository (a bisect walks the tree's history: clone the "
                "kernel with git, or `git init` and commit the tree)"
            )

    def resolve(self, ref: str, option: str) -> str:
        try:
            return self._git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        except UserError:
            raise ConfigError(f"bisect: {option} {ref}: no such commit in {self.tree} (`git log` lists them)") from None

    def is_ancestor(self, older: str, newer: str) -> bool:
        try:
            self._git("merge-base", "--is-ancestor", older, newer)
        except UserError:
            return False
        return True

    def modified(self) -> list[str]:
        """The tracked files with uncommitted changes (staged or not)."""
        return self._git("diff", "--name-only", "HEAD").splitlines()

    def commit(self, ref: str) -> Commit:
        hash_, subject, date = self._git("show", "-s", "--format=%H%x00%s%x00%aI", ref).split("\x00")
        return Commit(hash_, subject, date)

    def bisect_all(self, bad: str, goods: Sequence[str]) -> list[str]:
        """Every commit that may be the first bad one (bad itself included), best to test first."""
        out = self._git("rev-list", "--bisect-all", bad, *(f"^{good}" for good in goods))
        return [line.split()[0] for line in out.splitlines() if line.strip()]

    def distance(self, older: str, newer: str) -> int:
        return int(self._git("rev-list", "--count", f"{older}..{newer}"))

    def clone_to(self, target: Path) -> None:
        """A clone sharing this repository's objects (nothing is written into it), with no files checked out."""
        target.parent.mkdir(parents=True, exist_ok=True)
        self.runner.query(["git", "clone", "--quiet", "--shared", "--no-checkout", str(self.tree), str(target)])

    def checkout(self, commit: str) -> None:
        """Only the files that differ change (and get a new mtime): make rebuilds what they touch."""
        self._git("-c", "advice.detachedHead=false", "checkout", "--quiet", "--force", "--detach", commit)

    def origin(self) -> str:
        """The repository this one was cloned from ("" when none)."""
        try:
            return self._git("config", "--get", "remote.origin.url")
        except UserError:
            return ""


@dataclass(frozen=True)
class Outcome:
    """How a bisect ended: the first bad commit, or the commits it could be (skips hid it)."""

    first_bad: Commit | None
    candidates: tuple[Commit, ...]
    steps: tuple[Step, ...]


def check_inputs(git: Git, good: str, bad: str, cases: Sequence[str], known_cases: Sequence[str]) -> tuple[str, str]:
    """The refs as commit hashes, after the checks a bisect makes before it builds anything (each one line)."""
    for case in cases:
        if case not in known_cases:
            raise ConfigError(f"bisect: --case {case}: no such boot case (`doit list smoke` lists them)")
    good_hash, bad_hash = git.resolve(good, "--good"), git.resolve(bad, "--bad")
    if good_hash == bad_hash or not git.is_ancestor(good_hash, bad_hash):
        raise ConfigError(
            f"bisect: --good {good} is not an ancestor of --bad {bad}: the good commit must come before the bad one"
        )
    modified = git.modified()
    if modified:
        more = f" and {len(modified) - 1} more" if len(modified) > 1 else ""
        raise ConfigError(
            f"bisect: {git.tree} has uncommitted changes ({modified[0]}{more}): commit or stash them (a bisect "
            "tests commits, so the change would be silently left out)"
        )
    return good_hash, bad_hash


def next_commit(git: Git, state: State) -> tuple[str | None, list[str]]:
    """The next commit to test (None when done) and the commits the first bad one may still be."""
    bad = state.bads[-1] if state.bads else state.bad
    goods = list(state.goods) or [state.good]
    suspects = git.bisect_all(bad, goods)
    untested = [c for c in suspects if c != bad and c not in state.skips]
    return (untested[0] if untested else None), suspects


def _check(role: str, commit: str, oracle: Oracle, option: str, ref: str) -> Step:
    step = replace(oracle(commit), role=role)
    wanted = Mark.GOOD if role == "good" else Mark.BAD
    if step.mark is wanted:
        return step
    if step.mark is Mark.SKIP:
        raise ConfigError(f"bisect: {option} {ref} cannot be tested: {step.reason}; choose another {option} commit")
    said = "passes" if step.mark is Mark.GOOD else f"fails ({step.reason})"
    raise ConfigError(f"bisect: {option} {ref} {said}: it is not a {role} commit")


def run(
    git: Git,
    state: State,
    oracle: Oracle,
    save: Callable[[State], None],
    say: Callable[[str], None],
    checkout: Callable[[str], None],
) -> tuple[State, Outcome]:
    """Check --good and --bad (unless the state already has), then test commits until one remains or only skipped
    ones do. `checkout` puts a commit in the bisect's clone; `save` writes the state after every step."""
    for role, commit, option in (("good", state.good, "--good"), ("bad", state.bad, "--bad")):
        if state.checked(role):
            continue
        checkout(commit)
        say(f"bisect: checking {option} {commit[:12]} ...")
        step = _check(role, commit, oracle, option, commit[:12])
        state = state.after(step)
        save(state)
        say(f"bisect: {option} {commit[:12]} is {step.mark.value} ({step.seconds:.0f} s)")
    while True:
        candidate, suspects = next_commit(git, state)
        if candidate is None:
            break
        left = len([c for c in suspects if c not in state.skips])
        number = sum(step.role == "step" for step in state.steps) + 1
        checkout(candidate)
        step = oracle(candidate)
        state = state.after(step)
        save(state)
        say(
            f"bisect: step {number}: {candidate[:12]} {step.subject[:50]!r}: {step.mark.value}"
            + (f" ({step.reason})" if step.reason and step.mark is not Mark.GOOD else "")
            + f", {step.seconds:.0f} s, about {max(left - 1, 1).bit_length()} step(s) left"
        )
    bad = state.bads[-1] if state.bads else state.bad
    if len(suspects) == 1:
        return state, Outcome(git.commit(bad), (), state.steps)
    ordered = [c for c in suspects if c in state.skips] + [bad]
    return state, Outcome(None, tuple(git.commit(c) for c in ordered), state.steps)


# --- what it ends with ---

_TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\]\s?")
_NUMBER = re.compile(r"\b(?:0x)?[0-9a-f.]*[0-9][0-9a-f.]*\b")  # 7.31, 0x80001000, 000000008042fdd0


def _normal(line: str) -> str:
    """A console line without what differs between two boots of the same behaviour: the time stamp, numbers
    (addresses, measured ratios) and the kernel's version banner (the commit is in it)."""
    line = _TIMESTAMP.sub("", line.rstrip())
    return "Linux version" if line.startswith("Linux version") else _NUMBER.sub("#", line)


def side_by_side(good: Sequence[str], bad: Sequence[str], lines: int = SIDE_BY_SIDE_LINES) -> str:
    """The good and the bad console next to each other, without their time stamps, from the first line where they
    differ (time stamps, addresses and the version banner aside)."""
    first = next(
        (i for i, (a, b) in enumerate(zip(good, bad, strict=False)) if _normal(a) != _normal(b)),
        min(len(good), len(bad)),
    )
    rows = [f"{'good'.ljust(SIDE_WIDTH)} | bad", f"{'-' * SIDE_WIDTH}-+-{'-' * SIDE_WIDTH}"]
    for i in range(first, min(first + lines, max(len(good), len(bad)))):
        left = _TIMESTAMP.sub("", good[i].rstrip()) if i < len(good) else ""
        right = _TIMESTAMP.sub("", bad[i].rstrip()) if i < len(bad) else ""
        rows.append(f"{left[:SIDE_WIDTH].ljust(SIDE_WIDTH)} | {right[:SIDE_WIDTH]}")
    return f"from console line {first + 1}:\n" + "\n".join(rows)


def _console(run: CaseRun) -> list[str]:
    try:
        return Path(run.console).read_text(errors="replace").splitlines()
    except OSError:
        return []


def comparison(git: Git, outcome: Outcome) -> tuple[CaseRun | None, CaseRun | None]:
    """At the first bad commit, its first failing case; the same case at the nearest good commit."""
    if outcome.first_bad is None:
        return None, None
    bad_step = next(s for s in reversed(outcome.steps) if s.commit == outcome.first_bad.hash and s.mark is Mark.BAD)
    bad_run = next((run for run in bad_step.cases if not run.passed), None)
    if bad_run is None:
        return None, None
    goods = [s for s in outcome.steps if s.mark is Mark.GOOD]
    nearest = min(goods, key=lambda s: git.distance(s.commit, outcome.first_bad.hash if outcome.first_bad else ""))
    good_run = next((run for run in nearest.cases if run.case == bad_run.case), None)
    return good_run, bad_run


def _step_line(number: int, step: Step) -> str:
    label = {"good": "--good", "bad": "--bad"}.get(step.role, f"step {number}")
    reason = f"  {step.reason}" if step.reason and step.mark is not Mark.GOOD else ""
    retried = f" ({step.attempts} boots)" if step.attempts > 1 else ""
    return f"  {label:<8} {step.commit[:12]}  {step.mark.value:<4} {step.seconds:7.1f} s{retried}{reason}"


def text(git: Git, outcome: Outcome) -> str:
    """What `mmulab bisect` prints at the end: the answer, the consoles side by side, the note, the steps."""
    lines = []
    if outcome.first_bad is not None:
        commit = outcome.first_bad
        lines.append(f"bisect: first bad commit: {commit.hash} {commit.subject!r} (author date {commit.date})")
    else:
        lines.append(
            f"bisect: the first bad commit could be any of these {len(outcome.candidates)} (the skipped commits "
            "between the last good and the first bad one could not be tested):"
        )
        lines += [f"  {c.hash[:12]} {c.subject!r} ({c.date})" for c in outcome.candidates]
    good_run, bad_run = comparison(git, outcome)
    if bad_run is not None:
        lines.append(f"bisect: {bad_run.case}: {bad_run.observed}: {bad_run.reason}")
        lines += [f"  {note}" for note in bad_run.notes]
        if good_run is not None:
            lines.append(side_by_side(_console(good_run), _console(bad_run)))
        lines.append(f"bisect: consoles: good {good_run.console if good_run else '-'}, bad {bad_run.console}")
    steps = [s for s in outcome.steps if s.role == "step"]
    lines.append(f"bisect: {len(steps)} step(s) after checking --good and --bad:")
    number = 0
    for step in outcome.steps:
        number += step.role == "step"
        lines.append(_step_line(number, step))
    return "\n".join(lines)


def report(git: Git, outcome: Outcome) -> dict[str, Any]:
    """bisect.json: the same as the text, as data."""
    good_run, bad_run = comparison(git, outcome)
    return {
        "first_bad": asdict(outcome.first_bad) if outcome.first_bad else None,
        "candidates": [asdict(c) for c in outcome.candidates],
        "case": bad_run.case if bad_run else None,
        "notes": list(bad_run.notes) if bad_run else [],
        "consoles": {"good": good_run.console if good_run else None, "bad": bad_run.console if bad_run else None},
        "side_by_side": side_by_side(_console(good_run), _console(bad_run)) if good_run and bad_run else "",
        "steps": [step.to_dict() for step in outcome.steps],
        "seconds": round(sum(step.seconds for step in outcome.steps), 1),
    }
