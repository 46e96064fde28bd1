"""`mmulab verify`: check a release someone handed you, from its own bytes, and optionally rebuild it offline.

A release comes from a stranger: its archive may be hostile. A `.tar.xz` is read twice as a stream: the
first pass only looks at the members and refuses (one line, nothing written) absolute or `..` names, links
that leave the release or pass through another link, device nodes and fifos, and decompression bombs (caps
on the bytes coming out of xz, on the member count and on metadata headers); only then is it extracted
into a fresh temporary directory, re-checking every member and with tarfile's "data" filter on top.

Then SHA256SUMS, manifest.json, sbom.spdx.json and provenance.intoto.json must agree with the files. With
`rebuild`, the release's own sources/ seed a temporary download cache (only what this checkout pins, or
what the user accepted by name), the real pipeline runs offline in a temporary build directory with the
manifest's SOURCE_DATE_EPOCH, and every non-volatile release file must come out byte for byte the same.
"""

from __future__ import annotations

import contextlib
import json
import lzma
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any, TextIO

from .errors import UserError
from .fsutil import CHUNK, sha256_of
from .settings import PROJECT_ROOT

if TYPE_CHECKING:
    from .configdata import Project
    from .paths import Layout

# Caps for reading a stranger's archive; module constants so tests can lower them.
MAX_TOTAL_BYTES = 2 << 30  # what may come out of xz in all (members' contents), 2 GiB
MAX_MEMBERS = 10_000  # a release has about a hundred files
MAX_HEADER_BYTES = 64 << 10  # one pax / GNU long-name header's body (tarfile reads it into memory)
XZ_MEMLIMIT = 256 << 20  # the xz decoder's memory (a hostile header can ask for 1.5 GiB of dictionary)
_SLACK_PER_MEMBER = 4096  # tar header, padding and a small pax header per member, on top of the contents
_RECORD = 10240  # end-of-archive blocks and record padding

SUMS = "SHA256SUMS"
MANIFEST = "manifest.json"
SBOM = "sbom.spdx.json"
PROVENANCE = "provenance.intoto.json"
RUN = "run.json"
INDEX = "index.html"
# Files about the rest (manifest["files"] lists everything else); a rebuild compares the rest, not these.
DERIVED = (MANIFEST, RUN, SUMS, SBOM, PROVENANCE, INDEX)
FORMAT = "mmulab-release/1"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
_SUMS_LINE = re.compile(r"([0-9a-f]{64}) [ *](.+)")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_LONG_HEADERS = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE, b"X")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a release, told as one line: `<kind>: <path>[: <detail>]`."""

    kind: str  # "mismatch", "missing" or "unexpected"
    path: str
    detail: str = ""

    def line(self) -> str:
        return f"{self.kind}: {self.path}{f': {self.detail}' if self.detail else ''}"


@dataclass(frozen=True)
class Seed:
    """A source tarball of the release put into the temporary download cache, and why it may be used."""

    name: str
    release_path: str  # sources/<file>
    cache_name: str  # the file name the checkout's origin caches it under
    sha256: str
    version: str
    pinned: bool  # False: not pinned by this checkout, used because the user accepted it by name


@dataclass(frozen=True)
class Outcome:
    """What verifying a release found: its problems, in the order found, and how many files it holds."""

    problems: tuple[Problem, ...]
    files: int


class UsageError(UserError):
    """The command line asks for something that cannot be (exit 2, like argparse's own errors)."""

    exit_code = 2


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
        rest = self._decoder.unused_data
        while not rest.strip(b"\0"):
            more = self._input()
            if not more:
                return False
            rest += more
        self._decoder = lzma.LZMADecompressor(format=lzma.FORMAT_XZ, memlimit=XZ_MEMLIMIT)
        self._carried = rest.lstrip(b"\0")
        return True

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


class _BoundedTarInfo(tarfile.TarInfo):
    """A TarInfo that refuses oversized pax / GNU long-name headers before tarfile reads them into memory."""

    def _proc_member(self, archive: tarfile.TarFile) -> tarfile.TarInfo:  # type: ignore[override]
        if self.type in _LONG_HEADERS and self.size > MAX_HEADER_BYTES:
            raise _Refused(
                f"{Path(str(archive.name or 'archive')).name}: refusing archive: a {self.size}-byte metadata header "
                f"(more than {MAX_HEADER_BYTES}); nothing was written"
            )
        return super()._proc_member(archive)  # type: ignore[misc]


@contextlib.contextmanager
def _open_stream(path: Path) -> Iterator[tarfile.TarFile]:
    """The archive as a forward-only tar stream behind the xz caps."""
    cap = MAX_TOTAL_BYTES + _SLACK_PER_MEMBER * MAX_MEMBERS + _RECORD
    with path.open("rb") as handle:
        stream = _CappedXz(handle, cap, path.name)
        try:
            with tarfile.open(str(path), "r|", fileobj=stream, tarinfo=_BoundedTarInfo) as archive:  # type: ignore
                yield archive
        except tarfile.TarError as exc:
            raise _Refused(f"{path.name}: refusing archive: not a readable tar archive ({exc})") from None


class _Scan:
    """The per-member rules of a stranger's archive, applied as members stream by (both passes)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.names: set[str] = set()
        self.regular: set[str] = set()
        self.symlinks: dict[str, str] = {}  # symlink name -> its link text
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
        parts = PurePosixPath(member.name).parts
        if member.name.startswith("/") or ".." in parts:
            raise self.refuse(member.name, "it escapes the release (absolute or `..` path)")
        name = "/".join(parts)
        if not name and not member.isdir():
            raise self.refuse(member.name, "a file without a name")
        if name in self.names:
            raise self.refuse(member.name, "it appears twice")
        if member.isreg() and member.issparse():
            raise self.refuse(member.name, "a sparse file")
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            raise self.refuse(member.name, "a device node, fifo or other special file (a release holds files)")
        if member.issym():
            if _resolve(posixpath.join(posixpath.dirname(name), member.linkname)) is None:
                raise self.refuse(member.name, f"its symlink to {member.linkname!r} points out of the release")
            self.symlinks[name] = member.linkname
        if member.islnk():
            target = _resolve(member.linkname)
            if target is None or ".." in PurePosixPath(member.linkname).parts:
                raise self.refuse(member.name, f"its hard link to {member.linkname!r} points out of the release")
            if "/".join(target) not in self.regular:
                raise self.refuse(member.name, f"its hard link to {member.linkname!r} is not to a file before it")
        if member.isreg() or member.islnk():
            self.regular.add(name)
        self.names.add(name)
        return member

    def finish(self) -> None:
        """Rules needing every member: nothing is reached through a symlink, neither a member nor a link's
        target (a link through `x -> .` and then `..` is how a lexically inside link escapes)."""
        for name in sorted(self.names):
            parts = PurePosixPath(name).parts
            for index in range(1, len(parts)):
                if "/".join(parts[:index]) in self.symlinks:
                    raise self.refuse(name, f"it lies behind the symlink {'/'.join(parts[:index])!r}")
        for name, linkname in sorted(self.symlinks.items()):
            parts = PurePosixPath(posixpath.join(posixpath.dirname(name), linkname)).parts
            stack: list[str] = []
            for index, part in enumerate(parts):
                if part == "..":
                    stack.pop()
                    continue
                stack.append(part)
                if index < len(parts) - 1 and "/".join(stack) in self.symlinks:
                    raise self.refuse(name, f"its target {linkname!r} goes through the symlink {'/'.join(stack)!r}")


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


def _inside(path: str) -> str | None:
    """A path named in a release's own files, normalized, when it is relative and stays inside; else None."""
    parts = _resolve(path)
    return "/".join(parts) if parts else None


def scan_archive(path: Path) -> int:
    """First pass: every member checked, nothing written; the number of members, or _Refused."""
    scan = _Scan(path.name)
    with _open_stream(path) as archive:
        for member in archive:
            scan.check(member)
    scan.finish()
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
        scan.finish()
        yield _release_root(tmp / "release")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _release_root(top: Path) -> Path:
    """The release root inside an extracted archive: the top itself, or its one directory (`<release>/...`)."""
    if top.is_dir() and not (top / SUMS).exists():
        entries = list(top.iterdir())
        if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
            return entries[0]
    top.mkdir(exist_ok=True)
    return top


# ---------------------------------------------------------------------------------------------------------------
# Checking a release directory


def release_listing(root: Path) -> tuple[dict[str, Path], list[Problem]]:
    """Every regular file of the release by POSIX path; anything else (links, fifos, devices) is a problem."""
    files: dict[str, Path] = {}
    problems: list[Problem] = []
    for directory, dirnames, filenames in os.walk(root):
        base = Path(directory)
        for name in sorted(dirnames):
            if (base / name).is_symlink():
                relative = (base / name).relative_to(root).as_posix()
                problems.append(Problem("unexpected", relative, "a symlink (a release holds regular files only)"))
        for name in sorted(filenames):
            path = base / name
            relative = path.relative_to(root).as_posix()
            if path.is_symlink():
                problems.append(Problem("unexpected", relative, "a symlink (a release holds regular files only)"))
            elif not path.is_file():
                problems.append(Problem("unexpected", relative, "not a regular file"))
            else:
                files[relative] = path
    return dict(sorted(files.items())), problems


class _Digests:
    """sha256 of the release's files, each computed once."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files
        self._cache: dict[str, str] = {}

    def __call__(self, path: str) -> str:
        if path not in self._cache:
            self._cache[path] = sha256_of(self.files[path])
        return self._cache[path]


def _claim(problems: list[Problem], digests: _Digests, path: str, sha256: Any, who: str) -> None:
    """`who` says release file `path` has `sha256`: check it."""
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        problems.append(Problem("mismatch", who, f"{path}: {sha256!r} is not a sha256"))
    elif path not in digests.files:
        problems.append(Problem("missing", path, f"{who} lists it"))
    elif digests(path) != sha256:
        problems.append(Problem("mismatch", path, f"sha256 {digests(path)}, {who} says {sha256}"))


def _check_sums(files: dict[str, Path], digests: _Digests) -> list[Problem]:
    if SUMS not in files:
        return [Problem("missing", SUMS)]
    problems: list[Problem] = []
    listed: list[str] = []
    text = files[SUMS].read_bytes().decode("utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), 1):
        match = _SUMS_LINE.fullmatch(line)
        path = _inside(match.group(2)) if match else None
        if not match or path is None:
            problems.append(Problem("mismatch", SUMS, f"line {number}: not '<sha256>  <relative path>': {line!r}"))
            continue
        if path in listed:
            problems.append(Problem("mismatch", SUMS, f"line {number}: {path} is listed twice"))
            continue
        listed.append(path)
        _claim(problems, digests, path, match.group(1), SUMS)
    if listed != sorted(listed):
        problems.append(Problem("mismatch", SUMS, "not sorted by path"))
    problems += [Problem("unexpected", p, f"not in {SUMS}") for p in files if p != SUMS and p not in listed]
    return problems


def _load_json(files: dict[str, Path], name: str, problems: list[Problem]) -> dict[str, Any] | None:
    if name not in files:
        problems.append(Problem("missing", name))
        return None
    try:
        data = json.loads(files[name].read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        problems.append(Problem("mismatch", name, f"not valid JSON ({exc})"))
        return None
    if not isinstance(data, dict):
        problems.append(Problem("mismatch", name, "not a JSON object"))
        return None
    return data


def _check_manifest(manifest: dict[str, Any], files: dict[str, Path], digests: _Digests) -> list[Problem]:
    problems: list[Problem] = []
    if manifest.get("format") != FORMAT:
        problems.append(Problem("mismatch", MANIFEST, f"format {manifest.get('format')!r}, expected {FORMAT!r}"))
    listed = manifest.get("files")
    if not isinstance(listed, dict):
        return [*problems, Problem("mismatch", MANIFEST, "no files object")]
    for path, sha256 in sorted(listed.items()):
        inside = _inside(path)
        if inside is None or inside in DERIVED:
            problems.append(Problem("mismatch", MANIFEST, f"files lists {path!r}, which it must not"))
            continue
        _claim(problems, digests, inside, sha256, MANIFEST)
    problems += [
        Problem("mismatch", MANIFEST, f"files does not list {path}")
        for path in files
        if path not in DERIVED and path not in listed
    ]
    for source in _entries(manifest, "sources", problems):
        for entry in [source, *_entries(source, "patches", problems)]:
            path = _inside(str(entry.get("file", "")))
            if path is None:
                problems.append(Problem("mismatch", MANIFEST, f"source {source.get('name')!r}: no file"))
            else:
                _claim(problems, digests, path, entry.get("sha256"), MANIFEST)
    return problems


def _entries(data: dict[str, Any], key: str, problems: list[Problem]) -> list[dict[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        problems.append(Problem("mismatch", MANIFEST, f"{key}: not a list of objects"))
        return []
    return value


def _check_sbom(sbom: dict[str, Any], digests: _Digests) -> list[Problem]:
    """Every SPDX file's SHA256 (fileName "./<path>") and every package's whose packageFileName is a release
    file (as given, or under sources/) must be the file's."""
    problems: list[Problem] = []
    if sbom.get("spdxVersion") != "SPDX-2.3":
        problems.append(Problem("mismatch", SBOM, f"spdxVersion {sbom.get('spdxVersion')!r}, expected 'SPDX-2.3'"))
    entries: list[tuple[str, dict[str, Any], str | None]] = []
    for entry in _list_of(sbom, "files"):
        name = entry.get("fileName")
        entries.append((f"file {name!r}", entry, _inside(name.removeprefix("./")) if isinstance(name, str) else None))
    for entry in _list_of(sbom, "packages"):
        name = entry.get("packageFileName")
        if isinstance(name, str):
            candidates = [_inside(name.removeprefix("./")), _inside(f"sources/{PurePosixPath(name).name}")]
            path = next((c for c in candidates if c in digests.files), None)
            if path is not None:  # packages without a file of the release (the release itself, tools) aside
                entries.append((f"package {entry.get('name')!r}", entry, path))
    for what, entry, path in entries:
        sums = [c.get("checksumValue") for c in _list_of(entry, "checksums") if c.get("algorithm") == "SHA256"]
        if path is None or not sums:
            problems.append(Problem("mismatch", SBOM, f"{what}: no release path with a SHA256 checksum"))
            continue
        for sha256 in sums:
            _claim(problems, digests, path, sha256, SBOM)
    if not entries:
        problems.append(Problem("mismatch", SBOM, "lists no file of the release"))
    return problems


def _check_provenance(statement: dict[str, Any], digests: _Digests) -> list[Problem]:
    problems: list[Problem] = []
    if statement.get("_type") != STATEMENT_TYPE:
        problems.append(
            Problem("mismatch", PROVENANCE, f"_type {statement.get('_type')!r}, expected {STATEMENT_TYPE!r}")
        )
    subjects = _list_of(statement, "subject")
    if not subjects:
        problems.append(Problem("mismatch", PROVENANCE, "no subject"))
    for subject in subjects:
        name = subject.get("name")
        digest = subject.get("digest")
        path = _inside(name.removeprefix("./")) if isinstance(name, str) else None
        if path is None or not isinstance(digest, dict) or "sha256" not in digest:
            problems.append(Problem("mismatch", PROVENANCE, f"subject {name!r}: no release path with a sha256"))
            continue
        _claim(problems, digests, path, digest["sha256"], PROVENANCE)
    return problems


def _list_of(data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = data.get(key, [])
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def check_release(root: Path) -> tuple[Outcome, dict[str, Any] | None]:
    """Every check a release directory must pass from its own bytes; the outcome and its manifest (if read)."""
    files, problems = release_listing(root)
    digests = _Digests(files)
    problems += _check_sums(files, digests)
    manifest = _load_json(files, MANIFEST, problems)
    if manifest is not None:
        problems += _check_manifest(manifest, files, digests)
    sbom = _load_json(files, SBOM, problems)
    if sbom is not None:
        problems += _check_sbom(sbom, digests)
    statement = _load_json(files, PROVENANCE, problems)
    if statement is not None:
        problems += _check_provenance(statement, digests)
    return Outcome(tuple(dict.fromkeys(problems)), len(files)), manifest


# ---------------------------------------------------------------------------------------------------------------
# Rebuilding from the release's own sources


def plan_seeds(manifest: dict[str, Any], project: Project, accepted: tuple[str, ...]) -> tuple[list[Seed], list[str]]:
    """Which release sources seed the download cache, and one refusal line for each that may not.

    A source is used when this checkout pins its sha256 in any origin (a local-file origin's `known`
    versions too), or when the user accepted it by name; the checkout's every source must be provided.
    """
    seeds: list[Seed] = []
    refusals: list[str] = []
    provided = {str(s.get("name")): s for s in manifest.get("sources", []) if isinstance(s, dict)}
    for name in accepted:
        if name not in provided:
            raise UsageError(f"--accept-source {name}: the release has no source {name!r}")
    for name, entry in sorted(provided.items()):
        path, sha256 = str(entry.get("file", "")), str(entry.get("sha256", ""))
        source = project.sources.get(name)
        if source is None:
            refusals.append(f"refused: source {name} ({path}): this checkout's configs/sources.toml has no such source")
            continue
        matching = [o for o in source.origins if any(pin.sha256 == sha256 for pin in o.pins())]
        # The origin the release's file came from (same cache name), so the rebuild's sources/ names match.
        pinned = next(
            (o for o in matching if o.filename == PurePosixPath(path).name), matching[0] if matching else None
        )
        if pinned is None and name not in accepted:
            refusals.append(
                f"refused: source {name} ({path}, sha256 {sha256}): not pinned by this checkout's "
                f"configs/sources.toml; check it yourself, then --accept-source {name} uses it"
            )
            continue
        cache_name = pinned.filename if pinned else PurePosixPath(path).name
        seeds.append(Seed(name, path, cache_name, sha256, str(entry.get("version", "")), pinned is not None))
    for name in sorted(set(project.sources) - set(provided)):
        refusals.append(f"missing: sources/{project.sources[name].filename}: this checkout builds source {name}")
    return seeds, refusals


def check_patches(manifest: dict[str, Any], project: Project) -> list[Problem]:
    """The checkout's patches (what the rebuild applies) must be the release's, name by name and byte for byte."""
    problems: list[Problem] = []
    for entry in manifest.get("sources", []):
        source = project.sources.get(entry.get("name")) if isinstance(entry, dict) else None
        if source is None:
            continue
        released = {str(p.get("name")): p for p in entry.get("patches", []) if isinstance(p, dict)}
        ours = {patch.name: patch for patch in source.patches}
        for name in sorted(set(released) | set(ours)):
            where = str(released[name].get("file")) if name in released else f"sources/patches/{source.name}/{name}"
            if name not in released:
                problems.append(
                    Problem("missing", where, f"this checkout applies {_shown(ours[name])} to {source.name}")
                )
            elif name not in ours:
                problems.append(Problem("unexpected", where, f"this checkout does not patch {source.name} with it"))
            elif sha256_of(ours[name]) != released[name].get("sha256"):
                problems.append(
                    Problem("mismatch", where, f"this checkout's {_shown(ours[name])} is {sha256_of(ours[name])}")
                )
        if list(released) != [p.name for p in source.patches if p.name in released]:
            problems.append(Problem("mismatch", MANIFEST, f"source {source.name}: patches in another order"))
    return problems


def _shown(path: Path) -> str:
    try:
        return path.relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return str(path)


def _overlay(seeds: list[Seed], project: Project, cache: Path, directory: Path) -> Path | None:
    """A config overlay pinning the accepted, unpinned sources to the release's bytes (the cache hit then
    passes fetch's check); None when every seed is pinned already."""
    accepted = [seed for seed in seeds if not seed.pinned]
    if not accepted:
        return None
    lines = ["# Written by mmulab verify --rebuild --accept-source: the release's own bytes, accepted by name."]
    for seed in accepted:
        patches = ", ".join(json.dumps(str(p)) for p in project.sources[seed.name].patches)
        lines += [
            f"[sources.{seed.name}]",
            f"version = {json.dumps(seed.version or 'accepted')}",
            f"sha256 = {json.dumps(seed.sha256)}",
            f"filename = {json.dumps(seed.cache_name)}",
            'hash_source = "accepted with mmulab verify --accept-source"',
            f"patches = [{patches}]",
            f"[[sources.{seed.name}.origins]]",
            'kind = "local-file"',
            f"path = {json.dumps(str(cache / seed.name / seed.cache_name))}",
            "",
        ]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sources.toml").write_text("\n".join(lines) + "\n")
    return directory


def rebuild_environment(work: Path, epoch: int, overlay: Path | None) -> dict[str, str]:
    """The pipeline's environment for an offline rebuild: the temporary build and download directories, no
    mirrors, no apt archive, no user kernel tree or fragments, this checkout's configs, the release's epoch."""
    dropped = ("LINUX_SRC", "SOURCE_DATE_EPOCH", "MMULAB_ALLOW_DIRTY")
    env = {k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("MMULAB_FRAGMENT_")}
    for key in ("MMULAB_CONFIGS", "MMULAB_CONFIG_OVERLAY", "MMULAB_ARTIFACTS_DIR"):
        env.pop(key, None)
    env |= {
        "MMULAB_BUILD_DIR": str(work / "build"),
        "MMULAB_DL_DIR": str(work / "downloads"),
        "MMULAB_MIRRORS": "",
        "MMULAB_APT_SOURCES": "/nonexistent",
        "MMULAB_FETCH_RETRIES": "0",
        "SOURCE_DATE_EPOCH": str(epoch),
    }
    if overlay is not None:
        env["MMULAB_CONFIG_OVERLAY"] = str(overlay)
    return env


def run_pipeline(env: dict[str, str]) -> int:
    """`doit all` of this checkout in a separate process (its own lock and database), its output on our
    stderr so that stdout keeps only verify's own lines; its exit code."""
    command = [sys.executable, "-m", "doit", "run", "-f", str(PROJECT_ROOT / "dodo.py"), "-d", str(PROJECT_ROOT)]
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        sink: int | None = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # a captured stderr (tests): inherit the process's own
        sink = None
    return subprocess.call([*command, "all"], env=env, stdout=sink, stderr=sink)


def compare_rebuilt(files: dict[str, Path], rebuilt: dict[str, Path], volatile: tuple[str, ...]) -> list[Problem]:
    """Every non-volatile release file against the rebuilt one, byte for byte (derived files excepted)."""
    problems: list[Problem] = []
    wanted = {p for p in files if p not in DERIVED} | set(rebuilt)
    for path in sorted(wanted):
        if path.startswith(volatile):
            continue
        if path not in rebuilt:
            problems.append(Problem("unexpected", path, "the rebuild does not make it"))
        elif path not in files:
            problems.append(Problem("missing", path, "the rebuild makes it, the release lacks it"))
        elif not _same_bytes(files[path], rebuilt[path]):
            got = sha256_of(rebuilt[path]) if rebuilt[path].is_file() else "nothing"
            problems.append(
                Problem("mismatch", path, f"the rebuild made {got}, the release has {sha256_of(files[path])}")
            )
    return problems


def compare_facts(manifest: dict[str, Any], project: Project, layout: Layout) -> list[Problem]:
    """What the manifest states about the build but does not publish: the busybox fragments' sha256 (hashed,
    not shipped) and each boot case's observed outcome must be the rebuild's too."""
    from .boot import Verdict

    problems: list[Problem] = []
    configs = manifest.get("configs") if isinstance(manifest.get("configs"), dict) else {}
    for variant in sorted(project.variants):
        fragment = layout.busybox_dir(variant) / "fragment.config"
        stated = configs.get(f"busybox-{variant}", {})
        if project.toolchain.busybox is None or not isinstance(stated, dict) or not fragment.is_file():
            continue
        if stated.get("fragment_sha256") != sha256_of(fragment):
            problems.append(
                Problem(
                    "mismatch",
                    MANIFEST,
                    f"configs.busybox-{variant}.fragment_sha256 {stated.get('fragment_sha256')}, the rebuild's is "
                    f"{sha256_of(fragment)}",
                )
            )
    boots = {str(b.get("case")): b for b in manifest.get("boots", []) if isinstance(b, dict)}
    for case in sorted(set(boots) | set(project.boots)):
        if case not in project.boots:
            problems.append(Problem("mismatch", MANIFEST, f"boots: {case}: this checkout has no such boot case"))
            continue
        try:
            observed = Verdict.read(layout.verdict(case)).observed.value
        except UserError:
            problems.append(Problem("mismatch", MANIFEST, f"boots: {case}: the rebuild left no verdict"))
            continue
        if case not in boots:
            problems.append(Problem("mismatch", MANIFEST, f"boots: {case}: missing (the rebuild booted it)"))
        elif boots[case].get("observed") != observed:
            stated = boots[case].get("observed")
            problems.append(
                Problem("mismatch", MANIFEST, f"boots: {case}: observed {stated!r}, the rebuild {observed!r}")
            )
    return problems


def _same_bytes(first: Path, second: Path) -> bool:
    if not second.is_file() or first.stat().st_size != second.stat().st_size:
        return False
    with first.open("rb") as a, second.open("rb") as b:
        while True:
            chunk = a.read(CHUNK)
            if chunk != b.read(CHUNK):
                return False
            if not chunk:
                return True


def rebuild(root: Path, manifest: dict[str, Any], accepted: tuple[str, ...], out: TextIO) -> tuple[list[str], int]:
    """Rebuild the release offline from its own sources and compare: (one line per problem, files compared).

    Says which sources it used and why, one line each, before the build starts.
    """
    from .configdata import load_project
    from .paths import Layout
    from .settings import Settings

    checkout = load_project(Settings.from_environment(rebuild_environment(Path("/nonexistent"), 0, None)))
    seeds, refusals = plan_seeds(manifest, checkout, accepted)
    problems = [problem.line() for problem in check_patches(manifest, checkout)]
    epoch = manifest.get("source_date_epoch")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        problems.append(Problem("mismatch", MANIFEST, f"source_date_epoch {epoch!r} is not seconds >= 0").line())
    if refusals or problems:
        return [*refusals, *problems], 0
    assert isinstance(epoch, int)
    try:
        from . import release
    except ImportError as exc:
        raise UserError(f"--rebuild: this checkout has no publisher to list a release's files ({exc})") from None
    files, _ = release_listing(root)
    with tempfile.TemporaryDirectory(prefix="mmulab-rebuild-") as tmp:
        work = Path(tmp)
        for seed in seeds:
            cached = work / "downloads" / seed.name / seed.cache_name
            cached.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(files[seed.release_path], cached)
            if sha256_of(cached) != seed.sha256:  # the release changed under us
                raise UserError(f"{seed.release_path}: changed while verifying (its sha256 differs now)")
            why = "pinned by configs/sources.toml" if seed.pinned else "NOT pinned here; accepted with --accept-source"
            print(f"mmulab: verify: source {seed.name}: {seed.release_path} (sha256 {seed.sha256}): {why}", file=out)
        env = rebuild_environment(work, epoch, _overlay(seeds, checkout, work / "downloads", work / "overlay"))
        print(f"mmulab: verify: rebuilding offline in {work} (SOURCE_DATE_EPOCH={epoch})", file=out, flush=True)
        code = run_pipeline(env)
        if code != 0:
            raise UserError(f"--rebuild: the pipeline failed (doit exit {code}); its output is above")
        settings = Settings.from_environment(env)
        project = load_project(replace(settings, build_dir=work / "build"))
        rebuilt = release.release_files(project, Layout(work / "build"))
        volatile = tuple(release.VOLATILE)
        compared = [p for p in rebuilt if not p.startswith(volatile) and p not in DERIVED]
        problems = compare_rebuilt(files, rebuilt, volatile) + compare_facts(manifest, project, Layout(work / "build"))
        return [problem.line() for problem in problems], len(compared)


# ---------------------------------------------------------------------------------------------------------------
# The command


def verify(target: Path, rebuild_it: bool = False, accepted: tuple[str, ...] = (), out: TextIO | None = None) -> int:
    """Verify the release directory or `.tar.xz` at `target`; one line per problem on `out` (stdout); 0 or 1."""
    out = out or sys.stdout
    with contextlib.ExitStack() as stack:
        root = target if target.is_dir() else stack.enter_context(unpacked(target))
        outcome, manifest = check_release(root)
        for problem in outcome.problems:
            print(problem.line(), file=out)
        if outcome.problems:
            print(f"mmulab: verify: {target}: {len(outcome.problems)} problem(s) in {outcome.files} files", file=out)
            if rebuild_it:
                print("mmulab: verify: rebuild not attempted: the release does not agree with itself", file=out)
            return 1
        print(
            f"mmulab: verify: {target}: {outcome.files} files agree with {SUMS}, {MANIFEST}, {SBOM}, {PROVENANCE}",
            file=out,
        )
        if not rebuild_it or manifest is None:
            return 0
        lines, compared = rebuild(root, manifest, accepted, out)
        for line in lines:
            print(line, file=out)
        if lines:
            what = "does not match" if compared else "not attempted"
            print(f"mmulab: verify: {target}: rebuild {what}: {len(lines)} problem(s)", file=out)
            return 1
        print(f"mmulab: verify: {target}: rebuilt bit for bit: {compared} files identical", file=out)
        return 0
    raise AssertionError("unreachable")
