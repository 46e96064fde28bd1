"""Extract a fetched source safely (no member may land outside its tree), apply its patches, fingerprint the tree."""

from __future__ import annotations

import hashlib
import os
import posixpath
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from mmulab.core.errors import UserError
from mmulab.core.fsutil import JsonRecord, remove_tree
from mmulab.core.tools import RUNNER, Runner


@dataclass(frozen=True)
class Extracted(JsonRecord):
    """What an extraction produced: the tree, from which archive, with which patches (name, sha256)."""

    tree: str
    sha256: str
    version: str
    patches: tuple[tuple[str, str], ...]


class LinkGuard:
    """What the members so far made on disk, by normalized path, so that no member is written through a link.

    Lexical, a set lookup or two per member (a realpath per member made extraction twice as slow), and
    sound because it keeps three facts true: every member's parent folders are real folders (never a link or a
    file); no path ever changes kind (a symlink is never replaced, nor replaces anything; a file never becomes a
    folder); and no link's target passes through another link, whichever of the two comes first (`l1 -> .`,
    `l2 -> l1/..` is lexically inside but really one level up). So what a later member names is where it lands.
    """

    def __init__(self, max_folders: int | None = None) -> None:
        self.max_folders = max_folders  # a stranger's archive: folders named only as parents count too
        self.folders: set[str] = {""}  # the tree's folders, as members or as parents of members
        self.files: set[str] = set()  # regular files and hard links: what a hard link may name
        self.links: set[str] = set()  # symbolic links
        self._passed: set[str] = set()  # the paths the links' targets pass through (all but their last component)

    def admit(self, name: str, member: tarfile.TarInfo, target: str = "") -> str | None:
        """Record `member`, at normalized path `name` (`target`: a hard link's, normalized); or why it is refused
        (it is then not recorded). A symlink's own text is checked to stay inside by the caller."""
        parent = name.rpartition("/")[0]
        if parent not in self.folders:
            why = self._add_folders(parent)
            if why:
                return why
        if name in self.links:
            return f"it replaces the symlink {name!r}"
        if member.isdir():
            if name in self.files:
                return f"it replaces the file {name!r} with a directory"
            self.folders.add(name)
            return None
        if name in self.folders:
            return f"it replaces the directory {name!r}"
        if member.issym():
            if name in self.files:
                return f"it replaces the file {name!r} with a symlink"
            why = self._add_link(name, member.linkname)
            if why:
                return why
            self.links.add(name)
            return None
        if member.islnk() and target not in self.files:
            return f"its hard link to {member.linkname!r} is not to a file before it"
        self.files.add(name)
        return None

    def _add_folders(self, folder: str) -> str | None:
        """`folder` and its parents become folders, unless one of them is a link or a file."""
        new: list[str] = []
        while folder not in self.folders:
            if folder in self.links:
                return f"it lies behind the symlink {folder!r}"
            if folder in self.files:
                return f"it lies under the file {folder!r}"
            new.append(folder)
            folder = folder.rpartition("/")[0]
        if self.max_folders is not None and len(self.folders) + len(new) > self.max_folders:
            return f"more than {self.max_folders} folders in all"
        self.folders.update(new)
        return None

    def _add_link(self, name: str, linkname: str) -> str | None:
        """A symlink `name` may not be where an earlier target passes, nor its own target pass through a link."""
        if name in self._passed:
            return "the target of an earlier symlink goes through it"
        if linkname.startswith("/"):
            return None  # kept only where the caller allows it: data in the tree, nothing passes through it
        parts = [*PurePosixPath(name).parent.parts, *PurePosixPath(linkname).parts]
        stack: list[str] = []
        passed: list[str] = []
        for index, part in enumerate(parts):
            if part == "..":
                if stack:
                    stack.pop()
                continue
            stack.append(part)
            if index < len(parts) - 1:
                path = "/".join(stack)
                if path in self.links:
                    return f"its target {linkname!r} goes through the symlink {path!r}"
                passed.append(path)
        self._passed.update(passed)
        return None


def _safe_members(
    archive: Iterable[tarfile.TarInfo], strip: int, label: str, absolute_links: bool = False
) -> Iterator[tarfile.TarInfo]:
    """Members with `strip` leading components removed; anything that could land outside is refused.

    Checked lexically, before each member is written: no absolute or `..` names, links only to places inside the
    tree, no device nodes, no setuid/setgid bits, and nothing written through a link (LinkGuard).
    `absolute_links` keeps links to absolute paths (a root file system skeleton's, like Buildroot's
    /etc/init.d links): they are data in the tree, and nothing is ever extracted through them.
    """
    guard = LinkGuard()
    for member in archive:
        parts = PurePosixPath(member.name).parts
        if member.name.startswith("/") or ".." in parts:
            raise UserError(f"{label}: refusing archive member {member.name!r}: it escapes the target directory")
        if len(parts) <= strip:
            continue
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            raise UserError(f"{label}: refusing archive member {member.name!r}: not a file, directory or link")
        name = "/".join(parts[strip:])
        changes: dict[str, Any] = {"name": name, "mode": member.mode & 0o777, "uid": None, "gid": None}
        changes |= {"uname": None, "gname": None}
        target = ""
        if member.issym() or member.islnk():
            base = posixpath.dirname(name) if member.issym() else ""
            resolved = posixpath.normpath(posixpath.join(base, member.linkname))
            kept = absolute_links and member.issym() and member.linkname.startswith("/")
            linkparts = PurePosixPath(member.linkname).parts
            escapes = resolved == ".." or resolved.startswith("../") or (member.islnk() and ".." in linkparts)
            if not kept and (member.linkname.startswith("/") or escapes):
                raise UserError(
                    f"{label}: refusing archive member {member.name!r}: its link {member.linkname!r} "
                    "escapes the target directory"
                )
            if member.islnk():
                target = changes["linkname"] = "/".join(linkparts[strip:])
        why = guard.admit(name, member, target)
        if why:
            raise UserError(f"{label}: refusing archive member {member.name!r}: {why}")
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
        remove_tree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    label = archive_path.name
    try:
        try:
            with tarfile.open(archive_path) as archive:
                members = _safe_members(archive, strip, label, absolute_links)
                archive.extractall(tmp, members=members, filter="fully_trusted")
        except tarfile.TarError as exc:
            raise UserError(f"{label}: not a readable tar archive ({exc})") from None
        except RecursionError:  # tarfile recurses per chained header, os.makedirs per missing folder level
            raise UserError(
                f"{label}: refusing archive: it nests too deeply (thousands of chained headers or folder levels)"
            ) from None
        except (ValueError, OverflowError) as exc:  # values tarfile does not check: a sparse map, nan mtime, a NUL
            raise UserError(f"{label}: refusing archive: a header value tarfile cannot use ({exc})") from None
        if patches:
            apply_patches(tmp, patches, label, target.parent / f"{target.name}.patch.log", runner)
        os.replace(tmp, target)
    except BaseException:
        remove_tree(tmp)
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
