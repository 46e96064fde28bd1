"""A kernel git tree with a known regression, for `mmulab bisect`'s slow test and bench/bench_bisect.py: the
pinned tree as one commit, then twelve small ones (one Kconfig change that the NOMMU fragment cannot survive,
its revert, and one patch that breaks clone(CLONE_VM | CLONE_VFORK) without an MMU)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Ada",
    "GIT_AUTHOR_EMAIL": "ada@example.org",
    "GIT_COMMITTER_NAME": "Ada",
    "GIT_COMMITTER_EMAIL": "ada@example.org",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
}


def git(tree: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(tree), *args], env={**os.environ, **GIT_ENV}, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


CULPRIT_ANCHOR = "\n\treturn kernel_clone(&args);\n}\n#endif\n\nnoinline static int copy_clone_args_from_user"
CULPRIT_CHECK = (
    "\n\tif (!IS_ENABLED(CONFIG_MMU) && (clone_flags & CLONE_VM) && (clone_flags & CLONE_VFORK))"
    "\n\t\tBUG();  /* the regression the bisect must find */"
)
FDPIC_DEPENDS = "depends on ARM || ((M68K || RISCV || SUPERH || XTENSA) && !MMU)"


def edit(tree: Path, path: str, old: str, new: str) -> None:
    """Replace `old` (once) in a file of a tree whose files are hard links to the session's kernel tree: a new
    file takes the old one's place, the shared one stays as it is."""
    target = tree / path
    text = target.read_text()
    assert text.count(old) == 1, f"{path}: {old!r} found {text.count(old)} times"
    fresh = target.with_name(target.name + ".new")
    fresh.write_text(text.replace(old, new))
    fresh.replace(target)


def kernel_series(kernel_tree: Path, tree: Path) -> list[str]:
    """The pinned tree as one commit, then twelve small ones: 6 makes BINFMT_ELF_FDPIC depend on BROKEN (the
    option the NOMMU fragment asks for does not survive olddefconfig: skip), 7 reverts it, 9 makes clone(CLONE_VM |
    CLONE_VFORK) hit BUG() without an MMU; the others touch only a documentation file."""
    subprocess.run(["cp", "-al", str(kernel_tree), str(tree)], check=True)
    git(tree, "init", "--quiet", "--initial-branch=main")
    git(tree, "config", "core.looseCompression", "0")  # the import stays cheap: the objects stored, not deflated
    git(tree, "config", "gc.auto", "0")
    git(tree, "add", "--force", "--all")  # Debian's tree ignores its own top level (its .gitignore ends in `/*`)
    git(tree, "commit", "--quiet", "-m", "Linux 6.12 (pinned)")
    hashes = [git(tree, "rev-parse", "HEAD")]
    notes = "Documentation/bisect-notes.txt"
    for number in range(1, 13):
        if number == 6:
            path, subject = "fs/Kconfig.binfmt", "binfmt: ELF FDPIC marked broken"
            edit(tree, path, FDPIC_DEPENDS, FDPIC_DEPENDS + " && BROKEN")
        elif number == 7:
            path, subject = "fs/Kconfig.binfmt", 'Revert "binfmt: ELF FDPIC marked broken"'
            edit(tree, path, FDPIC_DEPENDS + " && BROKEN", FDPIC_DEPENDS)
        elif number == 9:
            path, subject = "kernel/fork.c", "fork: refuse CLONE_VM | CLONE_VFORK without an MMU"
            edit(tree, path, CULPRIT_ANCHOR, CULPRIT_CHECK + CULPRIT_ANCHOR)
        else:
            path, subject = notes, f"Documentation: bisect note {number}"
            with (tree / notes).open("a") as sink:
                sink.write(f"note {number}\n")
        git(tree, "add", "--force", path)  # the one file: no scan of the whole tree
        git(tree, "commit", "--quiet", "-m", subject)
        hashes.append(git(tree, "rev-parse", "HEAD"))
    return hashes
