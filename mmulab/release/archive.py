"""A stranger's release archive, read as a hostile stream: refuse before writing, then extract into a fresh folder.

A `.tar.xz` is read twice: the first pass only looks at the members and refuses (one line, nothing written)
absolute or `..` names, links that leave the release or pass through another link, a member written through a
link or replacing one, device nodes and fifos, trees deeper than a release is, and decompression bombs (caps on
the bytes coming out of xz, on the member count, on metadata headers and on how many of them come in a row).
The second pass applies the same rules again, member by member, before each one is written.
"""

from __future__ import annotations

import contextlib
import lzma
import posixpath
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO

from mmulab.build.extract import LinkGuard
from mmulab.core.errors import UserError
from mmulab.core.fsutil import CHUNK, remove_tree
from mmulab.release.format import SUMS

# Caps for reading a stranger's archive; module constants so tests can lower them.
MAX_TOTAL_BYTES = 2 << 30  # what may come out of xz in all (members' contents), 2 GiB
MAX_MEMBERS = 10_000  # a release has about a hundred files
MAX_HEADER_BYTES = 4 << 10  # one pax / GNU long-name header's body (Python <3.11.10's pax regex is quadratic in it)
MAX_METADATA_BYTES = 64 << 10  # all pax / GNU long-name bodies (publish writes one per name over 100 bytes)
MAX_HEADER_CHAIN = 8  # metadata headers in a row before a member (tar writes one or two; tarfile recurses per one)
MAX_DEPTH = 64  # path components of a member or release file (a release's deepest file has 4)
MAX_NAME_BYTES = 1024  # a member's name or link target (a release's longest is under 100)
MAX_COMPONENT_BYTES = 255  # one component of a name (NAME_MAX: a longer one fails to extract)
XZ_MEMLIMIT = 256 << 20  # the xz decoder's memory (a hostile header can ask for 1.5 GiB of dictionary)
_SLACK_PER_MEMBER = 4096  # tar header, padding and a small pax header per member, on top of the contents
_RECORD = 10240  # end-of-archive blocks and record padding
_LONG_HEADERS = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE, b"X")


class _Refused(UserError):
    """A hostile or broken archive: refused before (or instead of) writing anything."""


# ---------------------------------------------------------------------------------------------------------------
# Reading a stranger's .tar.xz


class _CappedXz:
    """The decompressed bytes of an .xz file, on demand; refuses once more than `cap` bytes came out (a bomb).

    Decompressing ourselves (not lzma.open) bounds the decoder's memory too and lets the cap bite while
    streaming, before a bomb's bytes are ever held or written.
    """

    def __init__(self, handle: IO[bytes], cap: int, label: str) -> None:
        self._handle, self._cap, self._label = handle, cap, label
        self._decoder = lzma.LZMADecompressor(format=lzma.FORMAT_XZ, memlimit=XZ_MEMLIMIT)
        self._carried = b""  # what a finished stream's decoder read past its end: the next stream's start
        self.total = 0

    def _input(self) -> bytes:
        data, self._carried = self._carried or self._handle.read(CHUNK), b""
        return data

    def _next_stream(self) -> bool:
        """An .xz file may hold several streams one after another (zero padding between them, which xz allows):
        start the next one; False at the end of the file."""
        rest = self._decoder.unused_data.lstrip(b"\0")
        while not rest:  # padding is dropped as it is read: never held, never scanned twice
            more = self._input()
            if not more:
                return False
            rest = more.lstrip(b"\0")
        self._decoder = lzma.LZMADecompressor(format=lzma.FORMAT_XZ, memlimit=XZ_MEMLIMIT)
        self._carried = rest
        return True

    def drain(self) -> None:
        """Read to the end of the file's last stream: tar stops at its end marker, but a cut or damaged file
        must be refused too (every stream's check is verified on the way, under the same cap)."""
        while self.read(CHUNK):
            pass

    def read(self, size: int = -1) -> bytes:
        size = CHUNK if size is None or size < 0 else size
        out = b""
        try:
            while not out:
                if self._decoder.eof and not self._next_stream():
                    break
                data = b""
                if self._decoder.needs_input:
                    data = self._input()
                    if not data:
                        raise _Refused(f"{self._label}: refusing archive: truncated xz data")
                out = self._decoder.decompress(data, max_length=size)
        except lzma.LZMAError as exc:
            raise _Refused(f"{self._label}: refusing archive: not valid xz data ({exc})") from None
        self.total += len(out)
        if self.total > self._cap:
            raise _Refused(
                f"{self._label}: refusing archive: it decompresses to more than {self._cap} bytes (a decompression "
                "bomb?); nothing was written"
            )
        return out


class _Headers:
    """The tar headers of the stream tarfile reads, checked before tarfile sees them.

    tarfile builds what a header asks for before anything can refuse it: a sparse map (gigabytes from kilobytes),
    a global pax header copied into every later member, a negative size that rewinds its bookkeeping, a pax
    header matched by a regex that backtracks (CVE-2024-6232 on an unpatched Python). This reader sits between
    the xz stream and tarfile and walks the tar structure itself, a header at a time: it hands tarfile no byte
    of a header (or a pax or GNU long-name body) before that header passed the archive's budget.
    """

    def __init__(self, source: _CappedXz, label: str) -> None:
        self._source, self._label = source, label
        self._block = bytearray()  # the header or metadata body being collected
        self._want = tarfile.BLOCKSIZE  # bytes of it still to come (0 once the tar end is reached)
        self._skip = 0  # bytes of member data and padding to pass unread
        self._body: bytes = b""  # the type of the metadata body being collected (b"" for a header)
        self._size: int | None = None  # a pax header's size for the next member
        self._sparse = False  # a pax header said GNU.sparse for the next member
        self._chain = 0  # metadata headers in a row
        self.metadata = 0  # bytes of metadata bodies so far

    def refuse(self, why: str) -> _Refused:
        return _Refused(f"{self._label}: refusing archive: {why}; nothing was written")

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        view = memoryview(data)
        while view and self._want:
            if self._skip:
                passed = min(self._skip, len(view))
                self._skip -= passed
                view = view[passed:]
                continue
            taken = min(self._want, len(view))
            self._block += view[:taken]
            self._want -= taken
            view = view[taken:]
            if not self._want:
                self._complete()
        return data

    def _complete(self) -> None:
        block, self._block = bytes(self._block), bytearray()
        if self._body:
            self._metadata(self._body, block)
            self._skip, self._body, self._want = -len(block) % tarfile.BLOCKSIZE, b"", tarfile.BLOCKSIZE
            return
        self._want = tarfile.BLOCKSIZE
        if block == tarfile.NUL * tarfile.BLOCKSIZE or _checksum(block) not in _sums(block):
            self._want = 0  # the tar end (or a header tarfile refuses itself): tarfile reads no further header
            return
        kind, size = block[156:157], _number(block[124:136])
        if size is None or size < 0:
            raise self.refuse("a member with a negative or unreadable size")
        if kind in _LONG_HEADERS:
            if kind == tarfile.XGLTYPE:
                raise self.refuse("a global pax header (it would apply to every later member; tar writes none)")
            if size > MAX_HEADER_BYTES:
                raise self.refuse(f"a {size}-byte metadata header (more than {MAX_HEADER_BYTES})")
            self._chain += 1
            if self._chain > MAX_HEADER_CHAIN:
                raise self.refuse(f"more than {MAX_HEADER_CHAIN} metadata headers (pax or GNU long name) in a row")
            self.metadata += size
            if self.metadata > MAX_METADATA_BYTES:
                raise self.refuse(f"more than {MAX_METADATA_BYTES} bytes of metadata headers (pax or GNU long name)")
            self._body, self._want = kind, size
            if not size:
                self._complete()
            return
        name = _text(block[0:100])
        if block[257:263] == b"ustar\0" and block[345]:
            name = f"{_text(block[345:500])}/{name}"
        if kind == tarfile.GNUTYPE_SPARSE or self._sparse:
            raise self.refuse(f"member {name!r} is a sparse file")
        if self._size is not None:
            size = self._size
        self._chain, self._size = 0, None
        if kind in tarfile.REGULAR_TYPES or kind not in tarfile.SUPPORTED_TYPES:
            self._skip = size + -size % tarfile.BLOCKSIZE  # its data, which tarfile reads or skips

    def _metadata(self, kind: bytes, body: bytes) -> None:
        if kind in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK):
            return  # a name: bounded by the header's size, checked as a name by _Scan
        for key, value in _pax_records(body, self.refuse):
            if key.startswith(b"GNU.sparse."):
                self._sparse = True
            elif key == b"size":
                if not value.isdigit() or len(value) > 20:
                    raise self.refuse(f"a pax size {value[:40]!r} that is not a size")
                self._size = int(value)


def _pax_records(body: bytes, refuse: Callable[[str], _Refused]) -> Iterator[tuple[bytes, bytes]]:
    """The records of a pax header (`<length> <key>=<value>\\n`), parsed in one linear pass: anything else is
    refused before tarfile's own parser sees it."""
    position = 0
    while position < len(body):
        space = body.find(b" ", position, position + 12)
        digits = body[position:space] if space > position else b""
        length = int(digits) if digits.isdigit() else 0
        end = position + length
        if not length or end > len(body) or end <= space + 1 or body[end - 1] != 0x0A:
            raise refuse(f"a malformed pax header (record at byte {position})")
        key, equals, value = body[space + 1 : end - 1].partition(b"=")
        if not key or not equals:
            raise refuse(f"a malformed pax header (record at byte {position})")
        yield key, value
        position = end


def _checksum(block: bytes) -> int | None:
    return _number(block[148:156])


def _sums(block: bytes) -> tuple[int, int]:
    """A header's checksum as tar computes it (its own field as spaces): unsigned and, as some tars did, signed."""
    rest = block[:148] + block[156:]
    return 256 + sum(rest), 256 + sum(b - 256 if b > 127 else b for b in rest)


def _number(field: bytes) -> int | None:
    """A tar number field, as tarfile reads it: octal text, or GNU base-256 (which can be negative)."""
    if field[:1] in (b"\x80", b"\xff"):
        value = int.from_bytes(field[1:], "big")
        return value - (256 ** (len(field) - 1)) if field[:1] == b"\xff" else value
    text = field.split(b"\0", 1)[0].strip()
    try:
        return int(text or b"0", 8)
    except ValueError:
        return None


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


@contextlib.contextmanager
def _open_stream(path: Path) -> Iterator[tarfile.TarFile]:
    """The archive as a forward-only tar stream behind the xz caps."""
    cap = MAX_TOTAL_BYTES + _SLACK_PER_MEMBER * MAX_MEMBERS + _RECORD
    with path.open("rb") as handle:
        stream = _CappedXz(handle, cap, path.name)
        try:
            # "r|" only ever reads the stream; typeshed's file protocol also wants write, tell, seek and close
            with tarfile.open(str(path), "r|", fileobj=_Headers(stream, path.name)) as archive:  # type: ignore[call-overload]
                yield archive
            stream.drain()
        except tarfile.TarError as exc:
            raise _Refused(f"{path.name}: refusing archive: not a readable tar archive ({exc})") from None
        except RecursionError:  # tarfile recurses per metadata header; _Headers refuses a long run first
            raise _Refused(f"{path.name}: refusing archive: its headers nest too deeply; nothing was written") from None
        except (ValueError, OverflowError) as exc:  # values tarfile does not check: a sparse map, nan mtime, a NUL
            raise _Refused(f"{path.name}: refusing archive: a header value tarfile cannot use ({exc})") from None


class _Scan:
    """The per-member rules of a stranger's archive, applied as members stream by (both passes), each member
    checked before it is written: what it names is where it lands, inside the release (LinkGuard)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.names: set[str] = set()
        self.guard = LinkGuard(max_folders=MAX_MEMBERS)
        self.members = 0
        self.total = 0

    def refuse(self, name: str, why: str) -> _Refused:
        return _Refused(f"{self.label}: refusing archive member {name!r}: {why}; nothing was written")

    def check(self, member: tarfile.TarInfo) -> tarfile.TarInfo:
        self.members += 1
        if self.members > MAX_MEMBERS:
            raise _Refused(f"{self.label}: refusing archive: more than {MAX_MEMBERS} members; nothing was written")
        self.total += member.size
        if self.total > MAX_TOTAL_BYTES:
            raise _Refused(
                f"{self.label}: refusing archive: its members hold more than {MAX_TOTAL_BYTES} bytes (a "
                "decompression bomb?); nothing was written"
            )
        for text in (member.name, member.linkname):
            why = _long_name(text)
            if why:
                raise self.refuse(member.name[:MAX_NAME_BYTES], why)
        parts = PurePosixPath(member.name).parts
        if member.name.startswith("/") or ".." in parts:
            raise self.refuse(member.name, "it escapes the release (absolute or `..` path)")
        if len(parts) > MAX_DEPTH:
            raise self.refuse(member.name, f"deeper than {MAX_DEPTH} levels (a release is a shallow tree)")
        name = "/".join(parts)
        if not name and not member.isdir():
            raise self.refuse(member.name, "a file without a name")
        if name in self.names:
            raise self.refuse(member.name, "it appears twice")
        if member.isreg() and member.issparse():
            raise self.refuse(member.name, "a sparse file")
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            raise self.refuse(member.name, "a device node, fifo or other special file (a release holds files)")
        target = ""
        if member.issym() and _resolve(posixpath.join(posixpath.dirname(name), member.linkname)) is None:
            raise self.refuse(member.name, f"its symlink to {member.linkname!r} points out of the release")
        if member.islnk():
            resolved = _resolve(member.linkname)
            if resolved is None or ".." in PurePosixPath(member.linkname).parts:
                raise self.refuse(member.name, f"its hard link to {member.linkname!r} points out of the release")
            target = "/".join(resolved)
        why = self.guard.admit(name, member, target)
        if why:
            raise self.refuse(member.name, why)
        self.names.add(name)
        return member


def _long_name(text: str) -> str | None:
    """Why a member's name or link target is longer than a release's can be; None when it is not."""
    size = len(text.encode("utf-8", "surrogateescape"))
    if size > MAX_NAME_BYTES:
        return f"a {size}-byte name (more than {MAX_NAME_BYTES})"
    longest = max((len(part.encode("utf-8", "surrogateescape")) for part in text.split("/")), default=0)
    if longest > MAX_COMPONENT_BYTES:
        return f"a {longest}-byte name component (more than {MAX_COMPONENT_BYTES})"
    return None


def _resolve(path: str) -> list[str] | None:
    """The components of relative `path`, `..` resolved lexically; None when absolute or it leaves the root."""
    if path.startswith("/"):
        return None
    stack: list[str] = []
    for part in PurePosixPath(path).parts:
        if part != "..":
            stack.append(part)
        elif stack:
            stack.pop()
        else:
            return None
    return stack


def inside_path(path: str) -> str | None:
    """A path named in a release's own files, normalized, when it is relative and stays inside; else None."""
    parts = _resolve(path)
    return "/".join(parts) if parts else None


def scan_archive(path: Path) -> int:
    """First pass: every member checked, nothing written; the number of members, or _Refused."""
    scan = _Scan(path.name)
    with _open_stream(path) as archive:
        for member in archive:
            scan.check(member)
    return scan.members


def _members(archive: tarfile.TarFile, scan: _Scan) -> Iterator[tarfile.TarInfo]:
    for member in archive:
        yield scan.check(member).replace(uid=0, gid=0, uname="", gname="", deep=False)


@contextlib.contextmanager
def unpacked(path: Path) -> Iterator[Path]:
    """The release inside archive `path`, scanned first, then extracted into a fresh temporary directory
    that is removed afterwards (also when refused half-way)."""
    scan_archive(path)
    tmp = Path(tempfile.mkdtemp(prefix="mmulab-verify-"))
    try:
        scan = _Scan(path.name)  # the same rules again: the file may have changed since the first pass
        with _open_stream(path) as archive:
            try:
                archive.extractall(tmp / "release", members=_members(archive, scan), filter="data")
            except tarfile.FilterError as exc:
                raise _Refused(f"{path.name}: refusing archive: {exc}") from None
        yield _release_root(tmp / "release")
    finally:
        try:
            remove_tree(tmp)  # iterative and mode-proof: shutil.rmtree recursed (and ignored its errors)
        except OSError as exc:
            raise UserError(f"{tmp}: could not remove this temporary folder ({exc}); remove it by hand") from None


def _release_root(top: Path) -> Path:
    """The release root inside an extracted archive: the top itself, or its one directory (`<release>/...`)."""
    if top.is_dir() and not (top / SUMS).exists():
        entries = list(top.iterdir())
        if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
            return entries[0]
    top.mkdir(exist_ok=True)
    return top
