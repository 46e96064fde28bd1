"""initramfs images as newc cpio, written in Python so they are deterministic and need no root.

Same entries in, same bytes out: entries sorted by path, one fixed mtime, uid/gid 0, inode numbers
counted in that order, device nodes described rather than created with mknod.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mmulab.build import elfcheck as build_elfcheck
from mmulab.build.busybox import applet_links, output
from mmulab.core.fsutil import write_atomic
from mmulab.core.paths import Layout
from mmulab.project.model import Project


@dataclass(frozen=True)
class Entry:
    """One file in the image. kind: dir, file, symlink or chardev."""

    path: str
    kind: str
    mode: int
    source: Path | None = None
    target: str = ""
    major: int = 0
    minor: int = 0


def base_entries() -> list[Entry]:
    """What every image has: the directories the kernel and init expect, and a console to talk on."""
    return [
        Entry("dev", "dir", 0o755),
        Entry("dev/console", "chardev", 0o600, major=5, minor=1),
        Entry("proc", "dir", 0o755),
        Entry("sys", "dir", 0o755),
        Entry("tmp", "dir", 0o1777),
        Entry("root", "dir", 0o700),
    ]


_TYPE_BITS = {"dir": stat.S_IFDIR, "file": stat.S_IFREG, "symlink": stat.S_IFLNK, "chardev": stat.S_IFCHR}


def _normalised(entries: list[Entry]) -> list[Entry]:
    """Sorted, de-duplicated (last wins), with every parent directory present."""
    by_path: dict[str, Entry] = {}
    for entry in entries:
        path = str(PurePosixPath("/", entry.path).relative_to("/"))
        if path == "." or ".." in PurePosixPath(path).parts:
            raise ValueError(f"bad initramfs path {entry.path!r}")
        by_path[path] = Entry(path, entry.kind, entry.mode, entry.source, entry.target, entry.major, entry.minor)
    for path in list(by_path):
        for parent in PurePosixPath(path).parents:
            if str(parent) != ".":
                by_path.setdefault(str(parent), Entry(str(parent), "dir", 0o755))
    return [by_path[p] for p in sorted(by_path)]


def _record(name: str, ino: int, mode: int, nlink: int, mtime: int, data: bytes, rdev: tuple[int, int]) -> bytes:
    encoded = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, nlink, mtime, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0)
    header = b"070701" + b"".join(f"{value:08X}".encode() for value in fields)
    head = header + encoded
    head += b"\0" * (-len(head) % 4)
    return head + data + b"\0" * (-len(data) % 4)


def pack(entries: list[Entry], mtime: int) -> bytes:
    """The newc archive of `entries` (plus "." and the trailer)."""
    chunks = [_record(".", 1, stat.S_IFDIR | 0o755, 2, mtime, b"", (0, 0))]
    for ino, entry in enumerate(_normalised(entries), start=2):
        data = b""
        if entry.kind == "file":
            assert entry.source is not None
            data = entry.source.read_bytes()
        elif entry.kind == "symlink":
            data = entry.target.encode()
        nlink = 2 if entry.kind == "dir" else 1
        rdev = (entry.major, entry.minor) if entry.kind == "chardev" else (0, 0)
        chunks.append(_record(entry.path, ino, _TYPE_BITS[entry.kind] | entry.mode, nlink, mtime, data, rdev))
    chunks.append(_record("TRAILER!!!", 0, 0, 1, 0, b"", (0, 0)))
    archive = b"".join(chunks)
    return archive + b"\0" * (-len(archive) % 512)


def image_entries(project: Project, layout: Layout, variant: str, build: str) -> list[Entry]:
    """Everything packed for `build` on `variant`; every binary is checked against the variant's ELF rules
    first, so a binary the kernel cannot load fails here by name instead of as `error -8` at boot."""
    info = project.builds[build]
    rules = project.variants[variant].elf_rules
    entries = base_entries()
    binaries = [("init", layout.program(info.init))] if info.init else []
    binaries += [(path, layout.program(program)) for path, program in info.helpers]
    spec = project.toolchain.busybox
    if info.busybox and spec is not None:
        binaries.append((spec.path, output(layout, project.variants[variant])))
        for link in applet_links(output(layout, project.variants[variant], "busybox.links")):
            if link != spec.path:
                entries.append(Entry(link, "symlink", 0o777, target=f"/{spec.path}"))
    for path, binary in binaries:
        build_elfcheck.check(binary, rules, label=f"{path} of {build} ({binary})")
        entries.append(Entry(path, "file", 0o755, source=binary))
    for path, source in info.files:
        mode = 0o755 if path == "init" or source.suffix == ".sh" else 0o644
        entries.append(Entry(path, "file", mode, source=source))
    return entries


def write(entries: list[Entry], output: Path, mtime: int) -> None:
    write_atomic(output, pack(entries, mtime))
