"""Issue 18's fuzz test: `mmulab verify` against generated hostile `.tar.xz` archives and mutated release folders.

For every generated example verify either accepts (exit 0, one line) or says what is wrong (problem lines and a
count, or exactly one `mmulab: error:` line) and exits 1; it never raises, never writes outside its temporary
folder, always removes that folder, leaves no file open, and stays under fixed bounds of memory (tracemalloc's
peak) and work (the bytes xz gives it, bounded by the archive caps, lowered here so a bomb is cheap). There is no
wall-clock assertion: the work is bounded by sizes and counts.

Reproducible: hypothesis runs derandomized (the same examples on every run and machine) and with no example
database, so nothing is written into the checkout. MMULAB_FUZZ_EXAMPLES=N (read by this file only, from the
caller) runs N examples per property instead of the CI default, for a longer hunt.

The defect this test found that the issue did not name (tar header values tarfile does not check) is pinned by
its exact reproducers at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import itertools
import json
import lzma
import os
import re
import stat
import subprocess
import sys
import tarfile
import tempfile
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import hypothesis
import pytest
from conftest import caller_variable, clean_environment
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_verify import UNSIGNED, write_release

import mmulab.release.verify  # noqa: F401  imported now: its imports are no part of verify's memory bound
from mmulab import cli
from mmulab.build import extract
from mmulab.core.errors import UserError
from mmulab.core.fsutil import CHUNK, sha256_of
from mmulab.release import archive as release_archive

EXAMPLES = int(caller_variable("MMULAB_FUZZ_EXAMPLES") or 0)  # 0: each property's own default
# Caps of the archive reader for these tests: small, so a bomb or a member flood costs milliseconds.
CAP_BYTES = 256 << 10
CAP_MEMBERS = 64
CAP_HEADER = 16 << 10
CAP_XZ_MEMORY = 16 << 20  # the xz decoder's memory limit (an 8 MiB dictionary, xz's default, fits)
# What verify may allocate for one example (tracemalloc's peak: Python's objects and, through Python's allocator,
# liblzma's): the decoder's limit and a few of its 1 MiB read chunks, whatever the archive claims. A reader
# holding a member, a header chain or the padding between xz streams in memory would not stay under it.
MEMORY_BOUND = CAP_XZ_MEMORY + 4 * CHUNK
DEEP = 1200  # levels of a deep tree (defect 2)
CHAIN = 3000  # chained metadata headers (defect 2)

PLAIN = "abcdefgh0123_-."
ODD = [" ", "\t", "\\", ":", "*", "'", '"', "=", "%", "é", "ß", "\u202e", "\u200b", "\U0001f600", "\x7f", "\x01"]
NON_UTF8 = ["\udc80", "\udcff", "\udcc3"]  # a raw byte 0x80.. of a file name, as os.fsdecode spells it
SAFE_ODD = [c for c in ODD if c.isascii()]
OUTSIDE = "@OUTSIDE@"  # replaced by the example's sentinel folder (absolute) when the archive or folder is made


# Hypothesis keeps caches (the constants it read from our modules, Unicode tables) in `.hypothesis/` under the
# working directory, the checkout, and writes them while pytest collects, before any fixture. Pointed here, where
# nothing can be created, it keeps them in memory: nothing is written anywhere (it ignores a cache it cannot write).
hypothesis.configuration.set_hypothesis_home_dir(Path(os.devnull) / "hypothesis")


def settings_for(default: int) -> settings:
    return settings(
        max_examples=EXAMPLES or default,
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    )


# ---------------------------------------------------------------------------------------------------------------
# Names


def chars(ascii_only: bool = False) -> list[str]:
    odd = SAFE_ODD if ascii_only else ODD
    return [*PLAIN, *odd, *NON_UTF8]


def components(ascii_only: bool = False) -> st.SearchStrategy[str]:
    plain = st.lists(st.sampled_from(PLAIN), min_size=1, max_size=6).map("".join)
    return st.one_of(
        plain,
        st.sampled_from(["d", "nommu", "boots", ".", "..", "manifest.json"]),
        plain,
        st.integers(100, 300).map(lambda n: "L" * n),  # a long name: GNU long-name / pax path header
        st.lists(st.sampled_from(chars(ascii_only)), min_size=1, max_size=4).map("".join),
    )


@st.composite
def member_names(draw: st.DrawFn, ascii_only: bool = False) -> str:
    """A member path: mostly under `r1/`, spelled every way (`a/./b`, `a//b`, `./a`, `a/`), sometimes absolute
    or with `..`, sometimes very deep or very long."""
    parts = draw(st.lists(components(ascii_only), min_size=1, max_size=4))
    if draw(st.integers(0, 9)) == 0:
        parts = ["d"] * draw(st.sampled_from([DEEP, 50])) + parts
    seps = draw(st.lists(st.sampled_from(["/", "/", "/", "//", "/./"]), min_size=len(parts), max_size=len(parts)))
    name = "".join(sep + part for sep, part in zip(seps, parts, strict=True))
    top = draw(st.sampled_from([*["r1"] * 12, "./r1", "", "/", "../r1", "../../../outside", OUTSIDE]))
    name = (top + name) if top else name.lstrip("/")
    if draw(st.booleans()) and draw(st.booleans()):
        name += "/"
    return name


# ---------------------------------------------------------------------------------------------------------------
# Archives


class Kind(bytes):
    """A tar member type, shown by name in a falsifying example."""

    NAMES: ClassVar[dict[bytes, str]] = {
        tarfile.REGTYPE: "REG",
        tarfile.DIRTYPE: "DIR",
        tarfile.SYMTYPE: "SYM",
        tarfile.LNKTYPE: "LNK",
        tarfile.FIFOTYPE: "FIFO",
        tarfile.CHRTYPE: "CHR",
        tarfile.BLKTYPE: "BLK",
        tarfile.CONTTYPE: "CONT",
        b"Z": "UNKNOWN",
    }

    def __repr__(self) -> str:
        return f"tarfile.{self.NAMES[bytes(self)]}"


@dataclasses.dataclass(frozen=True)
class Member:
    """One generated tar member (a falsifying example prints these: the exact member list to reproduce)."""

    kind: Kind
    name: str
    link: str = ""
    data: bytes = b""
    zeros: int = 0  # a run of zeros after data: a cheap bomb
    mode: int = 0o644
    mtime: int = 1_700_000_000
    fmt: int = tarfile.GNU_FORMAT
    pax: tuple[tuple[bytes, bytes], ...] = ()  # raw records of a pax header before it (odd keys, odd values)
    chain: tuple[bytes, int] = (b"", 0)  # (type, count): metadata headers chained before it

    def blocks(self, outside: Path) -> bytes:
        info = tarfile.TarInfo(self.name.replace(OUTSIDE, str(outside)))
        info.type = bytes(self.kind)
        info.linkname = self.link.replace(OUTSIDE, str(outside))
        info.mode = self.mode
        info.mtime = self.mtime
        payload = self.data + bytes(self.zeros) if self.kind in (tarfile.REGTYPE, tarfile.CONTTYPE, b"Z") else b""
        info.size = len(payload)
        try:
            header = info.tobuf(self.fmt, "utf-8", "surrogateescape")
        except ValueError:  # a field this format cannot hold
            header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        prefix = b""
        if self.pax:
            prefix += pax_header(b"x", self.pax)
        kind, count = self.chain
        if count:
            record = ((b"path", b"r1/chained"),)
            one = pax_header(kind, record) if kind in (b"x", b"g") else long_header(kind, b"r1/chained")
            prefix = one * count + prefix
        return prefix + header + padded(payload)


def padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % tarfile.BLOCKSIZE)


def pax_header(kind: bytes, records: tuple[tuple[bytes, bytes], ...]) -> bytes:
    """A raw pax header (`x` or `g`): any bytes as keys and values, as a hostile writer would make it."""
    body = b""
    for key, value in records:
        rest = b" " + key + b"=" + value + b"\n"
        length = len(rest) + 1
        while len(str(length).encode()) + len(rest) != length:
            length += 1
        body += str(length).encode() + rest
    return long_header(kind, body, terminate=False)


def long_header(kind: bytes, body: bytes, terminate: bool = True) -> bytes:
    """A metadata header (GNU `L`/`K`, pax `x`/`g`) and its body."""
    body = body + b"\0" if terminate else body
    info = tarfile.TarInfo("././@LongLink")
    info.type, info.size = kind, len(body)
    return info.tobuf(tarfile.USTAR_FORMAT) + padded(body)


PAX_KEYS = [
    *(b"path", b"linkpath", b"size", b"uid", b"uname", b"SCHILY.xattr.user.x"),
    *(b"", b"\xff\xfe", b"a=b", b"comment", b"GNU.sparse.name", b"GNU.sparse.minor"),
    b"mtime",
    b"GNU.sparse.map",
    b"GNU.sparse.size",
    b"GNU.sparse.major",
    b"GNU.sparse.realsize",
    b"hdrcharset",
]
PAX_VALUES = [
    b"r1/a\0b",
    b"r1/\xff\xfe",  # a name that is not UTF-8
    b"",
    b"-5",
    b"99999999999999",
    b"nan",
    b"1e400",
    b"-1e20",
    b"0x10",
    b"r1/pax-path",
    b"../escape",
    b"/abs",
    b"BINARY",
    b"1,2,3",
    b"\n",
]


@st.composite
def members(draw: st.DrawFn, ascii_only: bool = False) -> Member:
    kind = Kind(draw(st.sampled_from([*[tarfile.REGTYPE] * 6, *[tarfile.DIRTYPE, tarfile.SYMTYPE] * 2, *Kind.NAMES])))
    name = draw(member_names(ascii_only))
    link = ""
    if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
        link = draw(
            st.one_of(
                member_names(ascii_only),
                st.sampled_from([".", "..", "", "r1", "r1/manifest.json", "manifest.json", "SHA256SUMS"]),
                st.integers(0, 6).map(lambda n: "../" * n + "outside/sentinel"),
                st.just(f"{OUTSIDE}/sentinel"),
                st.just("/etc/passwd"),
            )
        )
    data = draw(st.binary(max_size=40))
    zeros = draw(st.sampled_from([0, 0, 0, 600, 3 * CAP_BYTES, 16 * CAP_BYTES]))
    fmt = draw(st.sampled_from([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]))
    pax: tuple[tuple[bytes, bytes], ...] = ()
    if draw(st.integers(0, 5)) == 0:
        pax = tuple(
            draw(st.lists(st.tuples(st.sampled_from(PAX_KEYS), st.sampled_from(PAX_VALUES)), min_size=1, max_size=3))
        )
    chain: tuple[bytes, int] = (b"", 0)
    if draw(st.integers(0, 7)) == 0:
        count = draw(st.sampled_from([CHAIN, 1, 2]))
        chain = (draw(st.sampled_from([b"L", b"K", b"x", b"g"])), count)
    mode = draw(st.sampled_from([0o644, 0o000, 0o4755, 0o777]))
    mtime = draw(st.sampled_from([1_700_000_000, 0, -1, 2**70]))
    return Member(kind, name, link, data, zeros, mode, mtime, fmt, pax, chain)


@dataclasses.dataclass(frozen=True)
class Archive:
    """A generated `.tar.xz`: a real release's members (or none) with generated ones inserted or swapped in, then
    the xz layer: several streams, padding, truncation, flipped bytes, trailing junk."""

    release: bool
    dot_slash: bool  # the release's members spelled `./r1/...`
    dropped: tuple[int, ...]  # release members left out, by index
    extra: tuple[tuple[int, Member], ...]  # (position, member) inserted
    end_marker: bool
    after_end: bytes  # junk after tar's end marker
    streams: tuple[int, ...]  # split points of the tar bytes into xz streams
    padding: tuple[int, ...]  # zero bytes between streams (a multiple of 4 is legal xz)
    check: int
    dictionary: int | None  # the first block's LZMA2 dictionary size byte rewritten (40: 4 GiB, as a hostile header)
    flip: int | None  # flip one byte of the xz file at this position (modulo its size)
    cut: int | None  # cut the xz file at this byte (modulo its size)
    trailing: bytes

    def write(self, path: Path, outside: Path, base: list[Member]) -> Path:
        chosen = [m for i, m in enumerate(base) if self.release and i not in self.dropped]
        if self.dot_slash:
            chosen = [dataclasses.replace(m, name="./" + m.name) for m in chosen]
        for position, extra in self.extra:
            chosen.insert(position % (len(chosen) + 1), extra)
        tar = b"".join(m.blocks(outside) for m in chosen)
        if self.end_marker:
            tar += bytes(2 * tarfile.BLOCKSIZE)
        tar += self.after_end
        tar = padded(tar)
        cuts = sorted({0, *(p % (len(tar) + 1) for p in self.streams), len(tar)})
        data = b""
        for index, (start, end) in enumerate(itertools.pairwise(cuts)):
            if index:
                data += bytes(self.padding[index % len(self.padding)] if self.padding else 0)
            stream = lzma.compress(tar[start:end], format=lzma.FORMAT_XZ, check=self.check)
            data += asking_for_dictionary(stream, self.dictionary) if index == 0 and self.dictionary else stream
        if self.flip is not None and data:
            position = self.flip % len(data)
            data = data[:position] + bytes([data[position] ^ 0x20]) + data[position + 1 :]
        if self.cut is not None and data:
            data = data[: self.cut % len(data)]
        path.write_bytes(data + self.trailing)
        return path


def asking_for_dictionary(stream: bytes, size_byte: int) -> bytes:
    """An xz stream whose first block header asks for another LZMA2 dictionary (its CRC32 made right again): the
    decoder's memory is what the header says, so a hostile one asks for gigabytes."""
    import zlib

    start = 12  # after the stream header
    length = (stream[start] + 1) * 4
    header = bytearray(stream[start : start + length])
    flags, position = header[1], 2
    for present in (0x40, 0x80):  # compressed size, uncompressed size: variable-length integers
        if flags & present:
            while header[position] & 0x80:
                position += 1
            position += 1
    if header[position] != 0x21 or header[position + 1] != 1:  # LZMA2 with one property byte
        return stream
    header[position + 2] = size_byte
    header[-4:] = zlib.crc32(bytes(header[:-4])).to_bytes(4, "little")
    return stream[:start] + bytes(header) + stream[start + length :]


@st.composite
def archives(draw: st.DrawFn, ascii_only: bool = False) -> Archive:
    release = draw(st.booleans())
    corrupt = draw(st.integers(0, 3)) == 0  # a quarter of them damaged at the xz layer
    return Archive(
        release=release,
        dot_slash=draw(st.booleans()),
        dropped=tuple(draw(st.lists(st.integers(0, 30), max_size=2))),
        extra=tuple(draw(st.lists(st.tuples(st.integers(0, 40), members(ascii_only)), max_size=6))),
        end_marker=draw(st.integers(0, 5)) != 0,
        after_end=draw(st.sampled_from([b"", b"", b"junk after the end", bytes(1024)])),
        streams=tuple(draw(st.lists(st.integers(0, 1 << 16), max_size=3))),
        padding=tuple(draw(st.lists(st.sampled_from([0, 4, 8, 1 << 12, 3, 1]), max_size=3))),
        check=draw(st.sampled_from([lzma.CHECK_CRC64, lzma.CHECK_CRC32, lzma.CHECK_SHA256, lzma.CHECK_NONE])),
        dictionary=draw(st.sampled_from([23, 30, 40])) if draw(st.integers(0, 9)) == 0 else None,
        flip=draw(st.integers(0, 1 << 16)) if corrupt and draw(st.booleans()) else None,
        cut=draw(st.integers(0, 1 << 16)) if corrupt else None,
        trailing=draw(st.sampled_from([b"", b"", b"", bytes(4), b"\xfd7zXZ\0", b"trailing junk"])) if corrupt else b"",
    )


# ---------------------------------------------------------------------------------------------------------------
# Release folders


@dataclasses.dataclass(frozen=True)
class Mutation:
    """One change to a good release folder (a falsifying example prints the list: the exact steps)."""

    op: str
    path: str = ""  # a release path, or an index into the release's files as "#N"
    value: Any = None

    def apply(self, root: Path, outside: Path) -> None:
        with contextlib.suppress(OSError):  # a name the file system cannot hold (over 255 bytes): no change
            self._apply(root, outside)

    def _apply(self, root: Path, outside: Path) -> None:
        path = self.target(root)
        if self.op == "flip":
            if path.is_file() and not path.is_symlink() and path.stat().st_size:
                data = bytearray(path.read_bytes())
                data[self.value % len(data)] ^= 1
                path.write_bytes(bytes(data))
        elif self.op == "delete":
            if path.is_file() or path.is_symlink():
                path.unlink()
        elif self.op == "deep":
            folder = path
            for _ in range(self.value):
                folder = folder / "d"
            if make_parents(root, folder / "f"):
                (folder / "f").write_bytes(b"deep")
        elif self.op in NEW_ENTRY:
            if make_parents(root, path) and not path.exists() and not path.is_symlink():
                NEW_ENTRY[self.op](path, self.value, outside)
        elif self.op == "regenerate-sums":
            sums_of_regular_files(root)
        elif not writable_file(root / self.path):
            return
        elif self.op == "json":
            key_path, junk = self.value
            write_json(root / self.path, key_path, junk)
        elif self.op == "raw":
            (root / self.path).write_bytes(self.value)
        elif self.op == "sums-line":
            with (root / self.path).open("ab") as handle:
                handle.write(self.value)

    def target(self, root: Path) -> Path:
        if self.path.startswith("#"):
            files = sorted(p for p in walk(root) if p.is_file() and not p.is_symlink())
            return files[int(self.path[1:]) % len(files)] if files else root / "none"
        return root / self.path


NEW_ENTRY: dict[str, Callable[[Path, Any, Path], None]] = {
    "add": lambda path, data, _: path.write_bytes(data),
    "symlink": lambda path, link, outside: path.symlink_to(link.replace(OUTSIDE, str(outside))),
    "fifo": lambda path, _, __: os.mkfifo(path),
    "device": lambda path, _, __: os.mknod(path, stat.S_IFCHR | 0o644, os.makedev(1, 3)),
    "hardlink-outside": lambda path, _, outside: os.link(outside / "sentinel", path),
}


def make_parents(root: Path, path: Path) -> bool:
    """mkdir -p without recursion (os.makedirs recurses once per missing level) and never through a link or a
    file (the mutation would then write outside the release): False when it cannot."""
    folder = root
    for part in path.relative_to(root).parts[:-1]:
        folder = folder / part
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            return False
        folder.mkdir(exist_ok=True)
    return True


def writable_file(path: Path) -> bool:
    """A regular file (or nothing yet) whose folder is a real one: writing it stays inside the release."""
    return not path.is_symlink() and (path.is_file() or not path.exists()) and path.parent.is_dir()


def sums_of_regular_files(root: Path) -> None:
    """SHA256SUMS made to vouch for every regular file (test_verify's write_sums, without recursion or links)."""
    paths = sorted(p.relative_to(root).as_posix() for p in walk(root) if stat.S_ISREG(p.lstat().st_mode))
    text = "".join(f"{sha256_of(root / p)}  {p}\n" for p in paths if p != "SHA256SUMS")
    (root / "SHA256SUMS").write_bytes(os.fsencode(text))


def write_json(path: Path, key_path: tuple[str, ...], junk: Any) -> None:
    """Put `junk` at `key_path` of the JSON document `path` (the whole document for an empty path)."""
    try:
        document: Any = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        document = {}
    if not key_path:
        document = junk
    else:
        node = document
        for key in key_path[:-1]:
            if not isinstance(node, dict):
                break
            node = node.setdefault(key, {})
        if isinstance(node, dict):
            node[key_path[-1]] = junk
    text = json.dumps(document, ensure_ascii=bool(len(key_path) % 2), allow_nan=True)
    if isinstance(junk, Nested):
        text = text.replace(json.dumps(junk), junk.text(), 1)
    path.write_bytes(text.encode("utf-8", "surrogatepass"))


DOCUMENTS = ["manifest.json", "sbom.spdx.json", "provenance.intoto.json"]
KEYS = ["files", "sources", "format", "subject", "packages", "checksums", "digest", "sha256", "name", "file"]


def json_junk(ascii_only: bool) -> st.SearchStrategy[Any]:
    odd_keys = ["\ud800", "\udcff", "é"] if not ascii_only else []
    keys = st.one_of(st.sampled_from([*KEYS, "r1/x", "../x", "nommu/Image", "", *odd_keys]), member_names(ascii_only))
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.sampled_from([0, -1, 10**30, 1.5, float("nan"), float("inf")]),
        st.sampled_from(["", "0" * 64, "f" * 64, "sha256", "./nommu/Image", "sources/../..", *odd_keys]),
        keys,
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)),
        max_leaves=8,
    )


class Nested(int):
    """JSON arrays nested this deep, written as text (json.dumps and hypothesis's printer would recurse)."""

    def __repr__(self) -> str:
        return f"Nested({int(self)})"

    def text(self) -> str:
        return "[" * self + "0" + "]" * self


@st.composite
def mutations(draw: st.DrawFn, ascii_only: bool = False) -> Mutation:
    op = draw(
        st.sampled_from(
            [
                "flip",
                "delete",
                "add",
                "deep",
                "symlink",
                "fifo",
                "device",
                "hardlink-outside",
                "json",
                "raw",
                "sums-line",
                "json",
                "json",
            ]
        )
    )
    name = draw(st.one_of(st.integers(0, 40).map(lambda n: f"#{n}"), member_names(ascii_only).map(relative)))
    if op == "flip":
        return Mutation(op, name, draw(st.integers(0, 1 << 12)))
    if op == "add":
        return Mutation(op, name, draw(st.binary(max_size=32)))
    if op == "deep":
        deep = draw(st.sampled_from([DEEP, 20]))
        return Mutation(op, draw(st.sampled_from(["x", "nommu", "boots/x y"])), deep)
    if op == "symlink":
        link = draw(
            st.one_of(
                st.sampled_from([".", "..", "manifest.json", "nommu", "nommu/Image", "loop", f"{OUTSIDE}/sentinel"]),
                st.integers(1, 6).map(lambda n: "../" * n + "outside/sentinel"),
            )
        )
        return Mutation(op, name, link)
    if op == "json":
        document = draw(st.sampled_from(DOCUMENTS))
        key_path = tuple(draw(st.lists(st.sampled_from(KEYS), max_size=3)))
        junk = draw(st.one_of(json_junk(ascii_only), st.sampled_from([Nested(900), Nested(5000)])))
        return Mutation(op, document, (key_path, junk))
    if op == "raw":
        document = draw(st.sampled_from([*DOCUMENTS, "SHA256SUMS"]))
        junk = draw(
            st.one_of(
                st.lists(st.integers(0, 127 if ascii_only else 255), max_size=64).map(bytes),
                st.sampled_from([b"[" * 100_000, b"{" * 5000, b"1" * 5000, b"\xef\xbb\xbf{}", b'{"files": {}}']),
            )
        )
        return Mutation(op, document, junk)
    if op == "sums-line":
        path = draw(member_names(ascii_only))
        line = draw(st.sampled_from(["0" * 64, "zz", ""])) + draw(st.sampled_from(["  ", " *", " "])) + path
        return Mutation(op, "SHA256SUMS", os.fsencode(line) + draw(st.sampled_from([b"\n", b"\r\n", b""])))
    return Mutation(op, name)


def relative(name: str) -> str:
    """A member name as a path inside the release folder (no absolute path, no `..`: those would write outside)."""
    parts = [p for p in name.split("/") if p not in ("", ".", "..", "r1")]
    return "/".join(parts) or "x"


@st.composite
def release_changes(draw: st.DrawFn, ascii_only: bool = False) -> tuple[Mutation, ...]:
    changes = draw(st.lists(mutations(ascii_only), min_size=1, max_size=4))
    if draw(st.booleans()):  # the sums made to vouch for the changed files: the deeper checks must judge them
        changes.append(Mutation("regenerate-sums"))
    return tuple(changes)


# ---------------------------------------------------------------------------------------------------------------
# Running verify and judging what it did


@dataclasses.dataclass(frozen=True)
class Place:
    """One example's folders: `tmp` (verify's TMPDIR), `outside` (a sentinel), `given` (the release or the
    archive's parent) and `cwd` (the working directory)."""

    top: Path

    def __post_init__(self) -> None:
        for name in ("tmp", "outside", "given", "cwd"):
            (self.top / name).mkdir()
        (self.outside / "sentinel").write_bytes(b"outside: never to be written")
        (self.outside / "folder").mkdir()

    @property
    def tmp(self) -> Path:
        return self.top / "tmp"

    @property
    def outside(self) -> Path:
        return self.top / "outside"

    @property
    def given(self) -> Path:
        return self.top / "given"

    @property
    def cwd(self) -> Path:
        return self.top / "cwd"

    def snapshot(self) -> dict[str, tuple[int, int, str]]:
        """Everything but tmp/, by path: (file type and mode, size, content digest or link text)."""
        seen: dict[str, tuple[int, int, str]] = {}
        for path in walk(self.top):
            relative = path.relative_to(self.top).as_posix()
            if relative == "tmp" or relative.startswith("tmp/"):
                continue
            info = path.lstat()
            content = ""
            if stat.S_ISLNK(info.st_mode):
                content = os.readlink(path)
            elif stat.S_ISREG(info.st_mode):
                content = hashlib.sha256(path.read_bytes()).hexdigest()
            seen[relative] = (info.st_mode, info.st_size if not stat.S_ISDIR(info.st_mode) else 0, content)
        return seen


def walk(root: Path) -> Iterator[Path]:
    """Every path under `root`, links not followed, without recursion (a tree may be 1,200 levels deep)."""
    stack = [root]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                path = Path(entry.path)
                yield path
                if entry.is_dir(follow_symlinks=False):
                    stack.append(path)


def remove(root: Path) -> None:
    """rm -rf without recursion (shutil.rmtree recurses once per level)."""
    paths = sorted(walk(root), key=lambda p: len(p.parts), reverse=True)
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
        else:
            path.unlink()
    root.rmdir()


@dataclasses.dataclass(frozen=True)
class Run:
    code: int
    out: list[str]
    err: list[str]


VERIFY_LINE = re.compile(r"mmulab: verify: (.+): (\d+) files agree with SHA256SUMS, manifest.json, sbom.spdx.json, ")
PROBLEM_LINE = re.compile(r"(missing|mismatch|unexpected): .+")


def judge(run: Run, target: Path) -> None:
    """The output contract: accepted in two lines (the files agree; signed or not), or problem lines and their
    count, or one error line; exit 0/1."""
    summary = f"mmulab: verify: {target}: "
    if hypothesis.control.currently_in_test_context():
        hypothesis.event("outcome", outcome(run))
    assert run.code in (0, 1), f"exit {run.code}\n{run.out}\n{run.err}"
    if run.code == 0:
        assert run.err == [] and len(run.out) == 2, (run.out, run.err)
        assert run.out[0].startswith(summary) and VERIFY_LINE.match(run.out[0]), run.out
        assert run.out[1] == f"{summary}{UNSIGNED}", run.out  # the fuzz signs nothing
    elif run.err:
        assert run.out == [], (run.out, run.err)
        assert len(run.err) == 1 and run.err[0].startswith("mmulab: error: "), run.err
        assert "Traceback" not in run.err[0]
    else:
        assert len(run.out) >= 2, run.out
        problems, last = run.out[:-1], run.out[-1]
        assert all(PROBLEM_LINE.fullmatch(line) for line in problems), problems
        assert last.startswith(summary) and last.endswith(" files"), last
        assert last.removeprefix(summary).startswith(f"{len(problems)} problem(s) in "), run.out


def outcome(run: Run) -> str:
    """What kind of answer verify gave (--hypothesis-show-statistics counts them: the fuzz reaches every stage)."""
    if run.code == 0:
        return "accepted"
    if run.err:
        reason = re.sub(r"^mmulab: error: [^:]*: ", "", run.err[0])
        return "error: " + re.sub(r"'.*'|\(.*\)|\d+", "_", reason)[:60]
    return "problems: " + ",".join(sorted({line.split(":")[0] for line in run.out[:-1]}))


def strict_text() -> io.TextIOWrapper:
    """A stdout as a UTF-8 terminal gives it: a name that is not UTF-8 cannot be written to it as it is."""
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", newline="\n", write_through=True)


def read_back(stream: io.TextIOWrapper) -> list[str]:
    stream.flush()
    buffer = stream.buffer
    assert isinstance(buffer, io.BytesIO)
    return buffer.getvalue().decode("utf-8", "surrogateescape").splitlines()


class Tally:
    """The bytes xz gave verify (both passes over an archive): the work bound."""

    def __repr__(self) -> str:
        return "<xz output tally>"

    def __init__(self) -> None:
        self.total = 0
        self.streams = 0


def verify_in_process(place: Place, target: Path, tally: Tally) -> Run:
    """cli.main(["verify", target]) with TMPDIR at place.tmp, cwd at place.cwd, stdout strict UTF-8 and stderr
    as Python's (backslashreplace), under tracemalloc; asserts the memory bound and that no fd was left open."""
    out, err = strict_text(), io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace")
    saved_tempdir, saved_cwd, saved_env = tempfile.tempdir, os.getcwd(), os.environ.get("TMPDIR")
    tempfile.tempdir = str(place.tmp)
    os.environ["TMPDIR"] = str(place.tmp)
    os.chdir(place.cwd)
    fds = sorted(os.listdir("/proc/self/fd"))
    limit = sys.getrecursionlimit()
    # hypothesis raises the recursion limit while a test runs, which hides a reader that recurses once per level
    # of a tree or per header: give verify the head room it has in its own process (1,000 frames), no more.
    sys.setrecursionlimit(stack_depth() + PROCESS_RECURSION_LIMIT)
    tracemalloc.start()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(["verify", str(target)])
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 2
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        sys.setrecursionlimit(limit)
        os.chdir(saved_cwd)
        tempfile.tempdir = saved_tempdir
        if saved_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_env
    assert sorted(os.listdir("/proc/self/fd")) == fds, "verify left a file open"
    assert peak < MEMORY_BOUND, f"tracemalloc peak {peak} bytes (bound {MEMORY_BOUND})"
    return Run(code, read_back(out), read_back(err))


PROCESS_RECURSION_LIMIT = 1000  # Python's default: what `mmulab verify` has in its own process


def stack_depth() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


@pytest.fixture
def capped(monkeypatch: pytest.MonkeyPatch) -> Tally:
    """The archive caps lowered (bombs and floods are cheap) and xz's output tallied (the work bound)."""
    monkeypatch.setattr(release_archive, "MAX_TOTAL_BYTES", CAP_BYTES)
    monkeypatch.setattr(release_archive, "MAX_MEMBERS", CAP_MEMBERS)
    monkeypatch.setattr(release_archive, "MAX_HEADER_BYTES", CAP_HEADER)
    monkeypatch.setattr(release_archive, "XZ_MEMLIMIT", CAP_XZ_MEMORY)
    tally = Tally()
    original: Callable[..., bytes] = release_archive._CappedXz.read

    def counted(self: Any, size: int = -1) -> bytes:
        data = original(self, size)
        tally.total += len(data)
        return data

    def opened(self: Any, *args: Any) -> None:
        tally.streams += 1
        original_init(self, *args)

    original_init = release_archive._CappedXz.__init__
    monkeypatch.setattr(release_archive._CappedXz, "read", counted)
    monkeypatch.setattr(release_archive._CappedXz, "__init__", opened)
    return tally


def work_bound() -> int:
    """What xz may give one read of an archive under the lowered caps: the reader's own cap, one chunk past it."""
    cap = CAP_BYTES + 4096 * CAP_MEMBERS + 10240
    return cap + CHUNK


def assert_contained(place: Place, before: dict[str, tuple[int, int, str]]) -> None:
    after = place.snapshot()
    changed = sorted(set(before.items()) ^ set(after.items()))
    assert not changed, f"verify changed things outside its temporary folder: {changed[:5]}"
    left = sorted(p.name for p in place.tmp.iterdir())
    assert left == [], f"left in its temporary folder: {left}"


@contextlib.contextmanager
def example_place(base: Path) -> Iterator[Place]:
    place = Place(Path(tempfile.mkdtemp(prefix="ex-", dir=base)))
    try:
        yield place
    finally:
        remove(place.top)


class Base(list[Member]):
    """The good release's members (shown briefly in a falsifying example: test_verify.write_release's)."""

    def __repr__(self) -> str:
        return f"<the {len(self)} members of test_verify.write_release's r1/>"


@pytest.fixture(scope="module")
def release_members(tmp_path_factory: pytest.TempPathFactory) -> Base:
    """A good release (tests/test_verify.py's) as the published archive's members: `r1/` and its files."""
    root = write_release(tmp_path_factory.mktemp("fuzz-release") / "r1")
    found = Base([Member(Kind(tarfile.DIRTYPE), "r1", mode=0o755)])
    for path in sorted(walk(root)):
        name = f"r1/{path.relative_to(root).as_posix()}"
        if path.is_dir():
            found.append(Member(Kind(tarfile.DIRTYPE), name, mode=0o755))
        else:
            found.append(Member(Kind(tarfile.REGTYPE), name, data=path.read_bytes()))
    return found


# ---------------------------------------------------------------------------------------------------------------
# The properties


@settings_for(40)
@given(spec=archives())
def test_a_generated_archive_is_accepted_or_refused_in_one_line_within_bounds(
    spec: Archive, tmp_path: Path, capped: Tally, release_members: list[Member]
) -> None:
    with example_place(tmp_path) as place:
        archive = spec.write(place.given / "r1.tar.xz", place.outside, release_members)
        before = place.snapshot()
        capped.total = capped.streams = 0
        run = verify_in_process(place, archive, capped)
        judge(run, archive)
        assert_contained(place, before)
        assert capped.total <= 2 * work_bound(), f"xz gave {capped.total} bytes (two passes of the capped reader)"
        assert capped.streams <= 2


@settings_for(40)
@given(changes=release_changes())
def test_a_mutated_release_folder_is_accepted_or_reported_within_bounds(
    changes: tuple[Mutation, ...], tmp_path: Path, capped: Tally
) -> None:
    with example_place(tmp_path) as place:
        root = write_release(place.given / "r1")
        for change in changes:
            change.apply(root, place.outside)
        before = place.snapshot()
        run = verify_in_process(place, root, capped)
        judge(run, root)
        assert_contained(place, before)
        assert capped.streams == 0  # a folder is read as it is: nothing is decompressed or extracted


# Link games: a few members on a handful of names, links to each other, to `.`/`..` and outside; the shapes
# LinkGuard exists for (`a -> .` then `b -> a/..`; a link, then a member written behind it), which names drawn
# from the whole alphabet almost never form.
GAME_NAMES = ("r1/a", "r1/b", "r1/c", "r1/a/c", "r1/b/c", "r1/a/b/c")
GAME_LINKS = (".", "..", "a", "b", "c", "a/..", "b/..", "../..", "../../outside", "r1/a", "r1/c", OUTSIDE)
GAME_LINKS += (f"{OUTSIDE}/folder", f"{OUTSIDE}/sentinel")


@st.composite
def link_games(draw: st.DrawFn) -> list[Member]:
    found = [Member(Kind(tarfile.DIRTYPE), "r1", mode=0o755)]
    for _ in range(draw(st.integers(1, 6))):
        kind = Kind(draw(st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE])))
        link = draw(st.sampled_from(GAME_LINKS)) if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
        mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
        found.append(Member(kind, draw(st.sampled_from(GAME_NAMES)), link, data=b"written", mode=mode))
    return found


def extracted_as_a_source(place: Place, archive: Path, absolute_links: bool) -> None:
    """The pipeline's own extraction (build/extract.py, LinkGuard; --rebuild extracts a release's sources with it)
    into given/out: whole or refused; and nothing outside given/out changed."""
    before = place.snapshot()
    # refusals, and what extract lets through today (a name too long for the file system: OSError, reported)
    with contextlib.suppress(UserError, lzma.LZMAError, EOFError, OSError):
        extract.extract(archive, place.given / "out", absolute_links=absolute_links)
    after = {path: facts for path, facts in place.snapshot().items() if not path.startswith("given/out/")}
    after.pop("given/out", None)
    changed = sorted(set(before.items()) ^ set(after.items()))
    assert not changed, f"extraction changed things outside its target: {changed[:5]}"


@settings_for(50)
@given(spec=archives(), absolute_links=st.booleans())
def test_a_generated_archive_extracted_as_a_source_leaves_nothing_outside_its_target(
    spec: Archive, absolute_links: bool, tmp_path: Path, release_members: list[Member]
) -> None:
    spec = dataclasses.replace(spec, dictionary=None)  # the xz header is the capped reader's business, not this one's
    with example_place(tmp_path) as place:
        archive = spec.write(place.given / "r1.tar.xz", place.outside, release_members)
        extracted_as_a_source(place, archive, absolute_links)


@settings_for(150)
@given(game=link_games(), absolute_links=st.booleans())
def test_a_link_game_leaves_nothing_outside_the_target_of_verify_or_of_extraction(
    game: list[Member], absolute_links: bool, tmp_path: Path, capped: Tally
) -> None:
    with example_place(tmp_path) as place:
        run_members(place, game, capped)  # verify's reader: contained, one answer
        extracted_as_a_source(place, place.given / "r1.tar.xz", absolute_links)


VENV_BIN = Path(sys.executable).parent


def verify_in_subprocess(place: Place, target: Path) -> Run:
    """The console script, as a user runs it, with a strict ASCII stdout (PYTHONIOENCODING=ascii:strict)."""
    env = {**clean_environment(), "TMPDIR": str(place.tmp), "PYTHONIOENCODING": "ascii:strict"}
    result = subprocess.run(
        [str(VENV_BIN / "mmulab"), "verify", str(target)], capture_output=True, cwd=place.cwd, env=env, check=False
    )
    out = result.stdout.decode("ascii").splitlines()  # not one byte beyond ASCII: the stream was strict ASCII
    err = result.stderr.decode("ascii", "replace").splitlines()
    assert not any(line.startswith("Traceback") for line in err), "\n".join(err)
    return Run(result.returncode, out, err)


@pytest.mark.slow  # a verify process per example (24): the in-process properties hold the same contract, fast
@settings_for(12)
@given(
    spec=archives(),
    changes=release_changes(),
)
def test_the_console_script_with_a_strict_ascii_stdout_gives_one_line_or_problems(
    spec: Archive, changes: tuple[Mutation, ...], tmp_path: Path, release_members: list[Member]
) -> None:
    with example_place(tmp_path) as place:
        archive = spec.write(place.given / "r1.tar.xz", place.outside, release_members)
        root = write_release(place.given / "r1")
        for change in changes:
            change.apply(root, place.outside)
        before = place.snapshot()
        for target in (archive, root):
            judge(verify_in_subprocess(place, target), target)
            assert_contained(place, before)


# ---------------------------------------------------------------------------------------------------------------
# What the fuzz found, each as its exact reproducer


def run_members(place: Place, found: list[Member], tally: Tally) -> Run:
    """verify (in process, as the properties run it) of an archive of exactly these members and tar's end."""
    archive = place.given / "r1.tar.xz"
    tar = b"".join(m.blocks(place.outside) for m in found) + bytes(2 * tarfile.BLOCKSIZE)
    archive.write_bytes(lzma.compress(tar, format=lzma.FORMAT_XZ))
    before = place.snapshot()
    run = verify_in_process(place, archive, tally)
    judge(run, archive)
    assert_contained(place, before)
    return run


TOP = Member(Kind(tarfile.DIRTYPE), "r1", mode=0o755)
TAR_HEADER_VALUES = {  # found by the fuzz: each was a traceback, in tarfile or os.utime
    "pax-sparse-map-not-numbers": [TOP, Member(Kind(tarfile.REGTYPE), "r1/a", pax=((b"GNU.sparse.map", b""),))],
    "pax-sparse-size-not-a-number": [TOP, Member(Kind(tarfile.REGTYPE), "r1/a", pax=((b"GNU.sparse.size", b"x"),))],
    "pax-hdrcharset-not-utf8": [TOP, Member(Kind(tarfile.REGTYPE), "r1/a", pax=((b"hdrcharset", b"\xff"),))],
    "pax-mtime-nan": [TOP, Member(Kind(tarfile.REGTYPE), "r1/a", data=b"hi", pax=((b"mtime", b"nan"),))],
    "pax-mtime-beyond-time_t": [TOP, Member(Kind(tarfile.REGTYPE), "r1/a", data=b"hi", pax=((b"mtime", b"1e400"),))],
    "pax-path-with-nul": [TOP, Member(Kind(tarfile.REGTYPE), "r1/a", pax=((b"path", b"r1/a\0b"),))],
    "base256-mtime-beyond-time_t": [TOP, Member(Kind(tarfile.REGTYPE), "r1/a", data=b"hi", mtime=2**70)],
}


@pytest.mark.parametrize("case", list(TAR_HEADER_VALUES))
def test_tar_header_values_tarfile_does_not_check_are_refused_in_one_line(
    case: str, tmp_path: Path, capped: Tally
) -> None:
    with example_place(tmp_path) as place:
        run = run_members(place, TAR_HEADER_VALUES[case], capped)
    assert run.code == 1 and len(run.err) == 1, run


def test_the_fuzz_properties_hold_for_a_good_archive_and_catch_a_refusal(
    tmp_path: Path, capped: Tally, release_members: Base
) -> None:
    """The judge itself: a good release archive passes every assertion; a `..` member is one error line."""
    found = list(release_members)
    with example_place(tmp_path) as place:
        assert run_members(place, found, capped).code == 0
    with example_place(tmp_path) as place:
        run = run_members(place, [*found, Member(Kind(tarfile.REGTYPE), "r1/../../../outside/x", data=b"x")], capped)
        assert run.code == 1 and "it escapes the release" in run.err[0]
        assert not (place.outside / "x").exists()


def test_hypothesis_writes_nothing_into_the_checkout() -> None:
    """No example database, and its caches pointed where nothing can be created (not `.hypothesis/` here)."""
    from mmulab.core.settings import PROJECT_ROOT

    assert settings_for(1).database is None
    cache = hypothesis.configuration.storage_directory("constants").path
    assert PROJECT_ROOT not in cache.parents
    with pytest.raises(OSError):
        cache.mkdir(parents=True)
