"""`mmulab verify`: check a release someone handed you from its own bytes and its signature, then optionally
rebuild it offline."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import TextIO

from mmulab.core.errors import ExitCode, say
from mmulab.release import signing
from mmulab.release.archive import unpacked
from mmulab.release.check import Problem, ProblemKind, check_release
from mmulab.release.format import MANIFEST, PROVENANCE, SBOM, SUMS
from mmulab.release.rebuild import rebuild

# ---------------------------------------------------------------------------------------------------------------
# The command


def verify(
    target: Path,
    rebuild_it: bool = False,
    accepted: tuple[str, ...] = (),
    out: TextIO | None = None,
    keys: tuple[signing.PublicKey, ...] = (),
) -> int:
    """Verify the release directory or `.tar.xz` at `target`, its signature against the trusted `keys`; one line
    per problem on `out` (stdout); 0 or 1."""
    out = out or sys.stdout
    shown = str(target)
    with contextlib.ExitStack() as stack:
        root = target if target.is_dir() else stack.enter_context(unpacked(target))
        outcome, manifest = check_release(root)
        # No provenance read (missing, too large, not JSON) is already a problem of the outcome: nothing to judge.
        signature = signing.judge(outcome.provenance, keys) if outcome.provenance is not None else None
        signed = (
            [Problem(ProblemKind.MISMATCH, PROVENANCE, signature.problem)] if signature and signature.problem else []
        )
        problems = tuple(dict.fromkeys([*outcome.problems, *signed]))
        for problem in problems:
            say(problem.line(), out)
        if problems:
            say(f"mmulab: verify: {shown}: {len(problems)} problem(s) in {outcome.files} files", out)
            if rebuild_it:
                say("mmulab: verify: rebuild not attempted: the release does not agree with itself", out)
            return ExitCode.FAILED
        say(
            f"mmulab: verify: {shown}: {outcome.files} files agree with {SUMS}, {MANIFEST}, {SBOM}, {PROVENANCE}",
            file=out,
        )
        if signature is not None:
            say(f"mmulab: verify: {shown}: {signature.note}", out)
        if not rebuild_it or manifest is None:
            return ExitCode.OK
        lines, compared = rebuild(root, manifest, accepted, out)
        for line in lines:
            say(line, out)
        if lines:
            what = "does not match" if compared else "not attempted"
            say(f"mmulab: verify: {shown}: rebuild {what}: {len(lines)} problem(s)", out)
            return ExitCode.FAILED
        say(f"mmulab: verify: {shown}: rebuilt bit for bit: {compared} files identical", out)
        return ExitCode.OK
    raise AssertionError("unreachable")
