"""Extract a fetched source safely (no member may land outside its tree), apply its patches, fingerprint the tree."""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from mmulab.core.errors import UserError
from mmulab.core.fsutil import JsonRecord
from mmulab.core.tools import RUNNER, Runner


@dataclass(frozen=True)
class Extracted(JsonRecord):
    """What an extraction produced: the tree, from which archive, with which patches (name, sha256)."""

    tree: str
    sha256: str
    version: str
    patches: tuple[tuple[str, str], ...]


def _safe_members(
    archive: tarfile.TarFile, strip: int, label: str, absolute_links: bool = False
) -> Iterator[tarfile.TarInfo]:
    """Members with `strip` leading components removed; anything that could land outside is refused.

    Checked lexically (no realpath per member, which made extraction twice as slow): no absolute or
    `..` names, links only to places inside the tree, no device nodes, no setuid/setgid bits, and no member
    under a symbolic link. `absolute_links` keeps links to absolute paths (a root file system skeleton's, like
    Buildroot's /etc/init.d links): they are data in the tree, and nothing is ever extracted through them.
    """
    links: set[str] = set()
    for member in archive:
        parts = PurePosixPath(member.name).parts
        if member.name.startswith("/") or ".." in parts:
            raise UserError(f"{label}: refusing archive member {member.name!r}: it escapes the target directory")
        if len(parts) <= strip:
            continue
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            raise UserError(f"{label}: refusing archive member {member.name!r}: not a file, directory or link")
        name = "/".join(parts[strip:])
        if any("/".join(parts[strip:end]) in links for end in range(strip + 1, len(parts))):
            raise UserError(f"{label}: refusing archive member {member.name!r}: it lies under a symbolic link")
        changes: dict[str, Any] = {"name": name, "mode": member.mode & 0o777, "uid": None, "gid": None}
        changes |= {"uname": None, "gname": None}
        if member.issym() or member.islnk():
            base = posixpath.dirname(name) if member.issym() else ""
            target = posixpath.normpath(posixpath.join(base, member.linkname))
            kept = absolute_links and member.issym() and member.linkname.startswith("/")
            if not kept and (member.linkname.startswith("/") or target == ".." or target.startswith("../")):
                raise UserError(
                    f"{label}: refusing archive member {member.name!r}: its link {member.linkname!r} "
                    "escapes the target directory"
                )
            if member.islnk():
                changes["linkname"] = "/".join(PurePosixPath(member.linkname).parts[strip:])
            else:
                links.add(name)
        yield member.replace(**changes, deep=False)


def apply_patches(tree: Path, patches: tuple[Path, ...], label: str, log: Path, runner: Runner = RUNNER) -> None:
    """Apply `patches` in order with patch -p1 (output in `log`); a patch that does not apply fails naming it."""
    logged = runner.log(log)
    for patch in patches:
        command = ["patch", "-p1", "--batch", "--forward", "-d", str(tree), "-i", str(patch)]
        logged.run(command, f"{label}: patch {patch.name}")


def extract(
    archive_path: Path,
    target: Path,
    strip: int = 1,
    patches: tuple[Path, ...] = (),
    runner: Runner = RUNNER,
    absolute_links: bool = False,
) -> None:
    """Extract (and patch) into `target` via a temporary sibling and one rename: the tree is whole or absent."""
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    label = archive_path.name
    try:
        with tarfile.open(archive_path) as archive:
            archive.extractall(
                tmp, members=_safe_members(archive, strip, label, absolute_links), filter="fully_trusted"
            )
        if patches:
            apply_patches(tmp, patches, label, target.parent / f"{target.name}.patch.log", runner)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def tree_fingerprint(tree: Path, runner: Runner = RUNNER) -> str:
    """A user's kernel tree (LINUX_SRC): git HEAD plus a hash of uncommitted changes; "" for a tree that
    is not a git checkout (then make runs every time and decides itself)."""
    try:
        head = runner.query(["git", "-C", str(tree), "rev-parse", "HEAD"])
        diff = runner.query(["git", "-C", str(tree), "diff", "HEAD"])
    except UserError:
        return ""
    return f"{head}+{hashlib.sha256(diff.encode()).hexdigest()}"
