"""Small file helpers every stage uses: atomic writes and copies, digests, typed JSON records.

Kept free of heavy imports (no requests, no jinja2) so the reporter and a no-op run stay fast.
"""

from __future__ import annotations

import contextlib
import filecmp
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Self

from mmulab.core.errors import UserError

CHUNK = 1 << 20
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextmanager
def _replaced(path: Path, mode: int | None) -> Iterator[Path]:
    """A temporary sibling of `path` to fill; renamed over `path` when the block succeeds, removed if not."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, mode if mode is not None else 0o666 & ~_UMASK)  # mkstemp made it 0600
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _unchanged(path: Path, content: bytes | Path, mode: int | None) -> bool:
    """Whether `path` already holds exactly `content` (bytes, or a file's) with the wanted mode. Then it is left
    alone: its mtime stays, so doit does not re-hash it for every task that depends on it on every run."""
    try:
        info = path.stat()
        size = content.stat().st_size if isinstance(content, Path) else len(content)
        if info.st_size != size or (mode is not None and info.st_mode & 0o7777 != mode):
            return False
        if isinstance(content, Path):
            return filecmp.cmp(path, content, shallow=False)
        return path.read_bytes() == content
    except OSError:
        return False


def write_atomic(path: Path, content: str | bytes, mode: int | None = None) -> None:
    """Write a file so that readers see the old content or the new one, never a part (same content: no write)."""
    data = content.encode() if isinstance(content, str) else content
    if _unchanged(path, data, mode):
        return
    with _replaced(path, mode) as tmp:
        tmp.write_bytes(data)


def copy_atomic(source: Path, destination: Path, mode: int | None = None) -> None:
    """Copy a build output into place through a temporary sibling: readers never see half a file. An identical
    output (a rebuild that changed nothing) keeps the old file and its mtime, so nothing downstream reruns."""
    if _unchanged(destination, source, mode):
        return
    with _replaced(destination, mode) as tmp:
        shutil.copyfile(source, tmp)


def relative_from(start: Path, target: Path) -> str | None:
    """`target` as a process working in `start` reaches it, relative (symlinks resolved first), or None when the
    two share no folder below / (a relative path would then depend on how deep `start` lies)."""
    real_start, real_target = os.path.realpath(start), os.path.realpath(target)
    if os.path.commonpath([real_start, real_target]) == os.path.sep:
        return None
    return os.path.relpath(real_target, real_start)


def _digest_of(path: Path, digest: hashlib._Hash) -> str:
    """The hex `digest` of the file at `path`, read in chunks (never the whole file in memory)."""
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    return _digest_of(path, hashlib.sha256())


def sha1_of(path: Path) -> str:
    """SHA1, which SPDX requires of every file; not for trust (sha256 is what mmulab checks)."""
    return _digest_of(path, hashlib.sha1(usedforsecurity=False))


def tree_digest(root: Path) -> str:
    """One sha256 over every file's relative path and content (symlinks by their target)."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            content = os.readlink(path).encode()
        elif path.is_file():
            content = path.read_bytes()
        else:
            continue
        digest.update(str(path.relative_to(root)).encode() + b"\0" + hashlib.sha256(content).digest())
    return digest.hexdigest()


def digest_of(*parts: Any) -> str:
    """A stable digest of JSON-able values (paths and dataclasses by their text): cache keys."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _frozen(value: Any) -> Any:
    """JSON lists as tuples, all the way down: records are frozen values and compare with tuples."""
    return tuple(_frozen(item) for item in value) if isinstance(value, list) else value


class JsonRecord:
    """Mixin for the frozen dataclasses a stage writes beside its outputs (what it built, from what)."""

    def write(self, path: Path) -> None:
        write_atomic(path, json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")  # type: ignore[call-overload]

    @classmethod
    def read(cls, path: Path) -> Self:
        """The record at `path`; a missing or damaged one is a UserError telling to rerun its stage."""
        try:
            data = json.loads(path.read_text())
            known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
            return cls(**{k: _frozen(v) for k, v in data.items() if k in known})
        except (OSError, ValueError, TypeError) as exc:
            raise UserError(f"{path}: missing or damaged record ({type(exc).__name__}); rerun to rebuild it") from None


def remove_tree(top: Path) -> None:
    """Remove the folder `top` and all in it, however deep (shutil.rmtree recurses: RecursionError past ~1,000
    levels, and a path past PATH_MAX fails) and whatever its folders' modes: one folder at a time, each opened
    relative to its parent and made writable first, never following a link. Gone afterwards, or an OSError."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    try:
        descriptor = os.open(top, flags)
    except FileNotFoundError:
        return
    names: list[str] = []  # the path from `top` to the open folder
    pending: list[list[str]] = []  # per level, the subfolders still to remove
    try:
        while True:
            with contextlib.suppress(OSError):
                os.fchmod(descriptor, 0o700)
            with os.scandir(descriptor) as scan:
                entries = list(scan)
            subfolders = [entry.name for entry in entries if entry.is_dir(follow_symlinks=False)]
            for entry in entries:
                if not entry.is_dir(follow_symlinks=False):
                    os.unlink(entry.name, dir_fd=descriptor)
            pending.append(subfolders)
            while not pending[-1] and names:  # this folder is empty: up to its parent, which removes it
                parent = os.open("..", flags, dir_fd=descriptor)
                os.close(descriptor)
                descriptor = parent
                pending.pop()
                os.rmdir(names.pop(), dir_fd=descriptor)
            if not pending[-1]:
                break
            name = pending[-1].pop()
            child = os.open(name, flags, dir_fd=descriptor)
            os.close(descriptor)
            descriptor = child
            names.append(name)
    finally:
        os.close(descriptor)
    os.rmdir(top)
