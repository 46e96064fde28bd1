"""A release's own documents against its files: SHA256SUMS, manifest.json, sbom.spdx.json, provenance.intoto.json,
run.json and index.html. Every document is read bounded (MAX_DOCUMENT_BYTES): a stranger's 2 GB manifest is
refused by its size, never read whole."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any

from mmulab.core.errors import printable
from mmulab.core.fsutil import CHUNK
from mmulab.release import documents, signing
from mmulab.release.archive import MAX_DEPTH, MAX_MEMBERS, MAX_TOTAL_BYTES, inside_path
from mmulab.release.format import (
    BOOTS,
    FORMAT,
    INDEX,
    MANIFEST,
    METADATA,
    PROVENANCE,
    RUN,
    SBOM,
    SPDX_VERSION,
    STATEMENT_TYPE,
    SUMS,
    source_file,
)

# The most verify reads of one document (SHA256SUMS, a JSON document, index.html, a console the page shows):
# a release's are kilobytes to a few MB; anything bigger is refused by its size, unread. Tests lower it.
MAX_DOCUMENT_BYTES = 64 << 20
# A JSON document is parsed whole, and 1 MiB of `[{},` is 20 MB of Python objects: a release's are under 200 KB.
MAX_JSON_BYTES = 1 << 20
MAX_CONSOLE_BYTES = 16 << 20  # a console read for the page and the charts: decoded and split, it costs 4x
MAX_PROBLEMS = 20  # problems told of one document (or of the files): the check stops at the next one
_SUMS_LINE = re.compile(r"([0-9a-f]{64}) [ *](.+)")
_SHA256 = re.compile(r"[0-9a-f]{64}")
# The characters of a name publish writes (configs' names, pinned file names, a safe --release): nothing a terminal
# acts on, so `sha256sum -c SHA256SUMS` prints a release's names as they are.
NAME_CHARACTERS = "A-Z a-z 0-9 . _ + ~ : @ = , -"
_NAME = re.compile(r"[A-Za-z0-9._+~:@=,-]+")


class ProblemKind(StrEnum):
    """What is wrong with a path of a release: the first word of verify's line about it."""

    MISMATCH = "mismatch"  # there, but not as stated (other bytes, a damaged document)
    MISSING = "missing"  # stated or needed, but absent
    UNEXPECTED = "unexpected"  # there, but stated by nothing (or not a regular file)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a release, told as one line: `<kind>: <path>[: <detail>]`."""

    kind: ProblemKind
    path: str
    detail: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ProblemKind(self.kind))  # a member, also when given its value

    def line(self) -> str:
        """The line, one printable line whatever the names in it (a stranger's paths and keys): nothing a
        strict UTF-8 stdout cannot encode, no control character."""
        return printable(f"{self.kind}: {self.path}{f': {self.detail}' if self.detail else ''}")


@dataclass(frozen=True)
class Outcome:
    """What verifying a release found: its problems, in the order found, and how many files it holds."""

    problems: tuple[Problem, ...]
    files: int
    provenance: dict[str, Any] | None = None  # provenance.intoto.json as read (bounded), for its signature


# ---------------------------------------------------------------------------------------------------------------
# Checking a release directory


def release_listing(root: Path) -> tuple[dict[str, Path], list[Problem]]:
    """Every regular file of the release by POSIX path; anything else (links, fifos, devices, a name that is not
    UTF-8, a folder deeper than MAX_DEPTH) is a problem. Folder by folder, never recursing, never deeper."""
    files: dict[str, Path] = {}
    problems: list[Problem] = []
    folders = [(root, "")]
    while folders:
        folder, prefix = folders.pop()
        try:
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except OSError as exc:
            problems.append(Problem(ProblemKind.UNEXPECTED, prefix.rstrip("/"), f"cannot be listed ({exc.strerror})"))
            continue
        for entry in entries:
            relative = prefix + entry.name
            if not _is_utf8(entry.name):
                problems.append(Problem(ProblemKind.UNEXPECTED, relative, "not a UTF-8 file name"))
            elif not _NAME.fullmatch(entry.name):
                problems.append(
                    Problem(ProblemKind.UNEXPECTED, relative, f"a name of other characters than {NAME_CHARACTERS}")
                )
            elif entry.is_symlink():
                problems.append(
                    Problem(ProblemKind.UNEXPECTED, relative, "a symlink (a release holds regular files only)")
                )
            elif relative.count("/") >= MAX_DEPTH:
                problems.append(
                    Problem(ProblemKind.UNEXPECTED, relative, f"deeper than {MAX_DEPTH} levels (a release is shallow)")
                )
            elif entry.is_dir(follow_symlinks=False):
                folders.append((Path(entry.path), f"{relative}/"))
            elif not entry.is_file(follow_symlinks=False):
                problems.append(Problem(ProblemKind.UNEXPECTED, relative, "not a regular file"))
            else:
                files[relative] = Path(entry.path)
    return dict(sorted(files.items())), sorted(problems, key=lambda problem: problem.path)


def _is_utf8(name: str) -> bool:
    """Whether a name read from the file system was UTF-8 (Python carries other bytes as lone surrogates)."""
    try:
        name.encode()
    except UnicodeEncodeError:
        return False
    return True


class _Digests:
    """sha256 of the release's files, each computed once; or why it was not (not hex: a reason)."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files
        self._cache: dict[str, str] = {}
        self.hashed = 0  # bytes hashed in all: at most MAX_TOTAL_BYTES, as an archive's members

    def __call__(self, path: str) -> str:
        if path not in self._cache:
            self._cache[path] = self._digest(self.files[path])
        return self._cache[path]

    def _digest(self, path: Path) -> str:
        """Opened without following a link or blocking on a fifo (a listed file may have been swapped since
        the listing), and hashed only while it is still a regular file within the release's budget."""
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            return f"not readable ({exc.strerror})"
        with os.fdopen(descriptor, "rb") as handle:
            size = os.fstat(descriptor)
            if not stat.S_ISREG(size.st_mode):
                return "no longer a regular file"
            if self.hashed + size.st_size > MAX_TOTAL_BYTES:
                return f"not hashed: the release's files hold more than {MAX_TOTAL_BYTES} bytes"
            digest = hashlib.sha256()
            while chunk := handle.read(min(CHUNK, MAX_TOTAL_BYTES + 1 - self.hashed)):
                self.hashed += len(chunk)
                digest.update(chunk)
            if self.hashed > MAX_TOTAL_BYTES:  # it grew while read
                return f"not hashed: the release's files hold more than {MAX_TOTAL_BYTES} bytes"
            return digest.hexdigest()


class _NotRegular(documents.TooLarge):
    """A document swapped for a fifo, device or folder since the listing: not read (nor blocked on)."""

    def __init__(self, path: str) -> None:
        Exception.__init__(self, "no longer a regular file; not read")
        self.path = path


def read_document(path: Path, name: str, cap: int | None = None) -> bytes:
    """The bytes of release file `name` at `path`, at most `cap` (MAX_DOCUMENT_BYTES): opened without blocking or
    following a link, its size is checked first, then at most one byte more is read (in case it grew);
    documents.TooLarge beyond."""
    cap = MAX_DOCUMENT_BYTES if cap is None else min(cap, MAX_DOCUMENT_BYTES)
    size = path.stat().st_size
    if size > cap:
        raise documents.TooLarge(name, cap)
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise _NotRegular(name)
        data = handle.read(size + 1)  # read(n) allocates n at once: ask for what stat said (plus one)
        if len(data) > size:  # it grew since
            data += handle.read(cap + 1 - len(data))
    if len(data) > cap:
        raise documents.TooLarge(name, cap)
    return data


def _read(files: dict[str, Path], name: str, problems: list[Problem], cap: int | None = None) -> bytes | None:
    """The document `name` (bounded), or None with its problem (missing, too large)."""
    if name not in files:
        problems.append(Problem(ProblemKind.MISSING, name))
        return None
    try:
        return read_document(files[name], name, cap)
    except documents.TooLarge as exc:
        problems.append(Problem(ProblemKind.MISMATCH, exc.path, str(exc)))
        return None


def _claim(digests: _Digests, path: str, sha256: Any, who: str) -> Iterator[Problem]:
    """`who` says release file `path` has `sha256`: check it."""
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        yield Problem(ProblemKind.MISMATCH, who, f"{path}: {shown(sha256)} is not a sha256")
    elif path not in digests.files:
        yield Problem(ProblemKind.MISSING, path, f"{who} lists it")
    elif not _SHA256.fullmatch(digests(path)):
        yield Problem(ProblemKind.MISMATCH, path, digests(path))
    elif digests(path) != sha256:
        yield Problem(ProblemKind.MISMATCH, path, f"sha256 {digests(path)}, {who} says {sha256}")


def shown(value: Any) -> str:
    """A stranger's value as a problem quotes it: repr, cut to 100 characters."""
    text = repr(value)
    return text if len(text) <= 100 else f"{text[:100]}..."


def bounded(problems: Iterable[Problem], document: str) -> list[Problem]:
    """The first MAX_PROBLEMS of a document's problems, and a last line saying there are more: the check that
    makes them lazily stops there, so a document of a million bad lines costs what twenty do."""
    told = list(itertools.islice(problems, MAX_PROBLEMS + 1))
    if len(told) > MAX_PROBLEMS:
        told[-1] = Problem(ProblemKind.MISMATCH, document, f"more than {MAX_PROBLEMS} problems; the rest not told")
    return told


def _lines(text: str) -> Iterator[str]:
    """The lines of `text` one at a time (str.splitlines would hold millions at once)."""
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        yield text[start:end]
        start = end + 1


def _check_sums(files: dict[str, Path], digests: _Digests) -> Iterator[Problem]:
    problems: list[Problem] = []
    data = _read(files, SUMS, problems)
    if data is None:
        yield from problems
        return
    listed: dict[str, None] = {}
    text = data.decode("utf-8", errors="replace")
    for number, line in enumerate(_lines(text), 1):
        if number > MAX_MEMBERS:
            yield Problem(ProblemKind.MISMATCH, SUMS, f"more than {MAX_MEMBERS} lines (a release has about a hundred)")
            return
        match = _SUMS_LINE.fullmatch(line)
        path = inside_path(match.group(2)) if match else None
        if not match or path is None:
            yield Problem(ProblemKind.MISMATCH, SUMS, f"line {number}: not '<sha256>  <relative path>': {shown(line)}")
            continue
        if path in listed:
            yield Problem(ProblemKind.MISMATCH, SUMS, f"line {number}: {path} is listed twice")
            continue
        listed[path] = None
        yield from _claim(digests, path, match.group(1), SUMS)
    if list(listed) != sorted(listed):
        yield Problem(ProblemKind.MISMATCH, SUMS, "not sorted by path")
    yield from (Problem(ProblemKind.UNEXPECTED, p, f"not in {SUMS}") for p in files if p != SUMS and p not in listed)


def _load_json(files: dict[str, Path], name: str, problems: list[Problem]) -> dict[str, Any] | None:
    raw = _read(files, name, problems, MAX_JSON_BYTES)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        problems.append(Problem(ProblemKind.MISMATCH, name, f"not valid JSON ({exc})"))
        return None
    except RecursionError:  # e.g. 100,000 nested arrays: Python's parser gives up, so does verify
        problems.append(Problem(ProblemKind.MISMATCH, name, "not valid JSON (nested too deeply)"))
        return None
    if not isinstance(data, dict):
        problems.append(Problem(ProblemKind.MISMATCH, name, "not a JSON object"))
        return None
    return data


def _check_manifest(manifest: dict[str, Any], files: dict[str, Path], digests: _Digests) -> Iterator[Problem]:
    if manifest.get("format") != FORMAT:
        yield Problem(ProblemKind.MISMATCH, MANIFEST, f"format {shown(manifest.get('format'))}, expected {FORMAT!r}")
    listed = manifest.get("files")
    if not isinstance(listed, dict):
        yield Problem(ProblemKind.MISMATCH, MANIFEST, "no files object")
        return
    for path, sha256 in sorted(listed.items()):
        inside = inside_path(path)
        if inside is None or inside in METADATA:
            yield Problem(ProblemKind.MISMATCH, MANIFEST, f"files lists {shown(path)}, which it must not")
            continue
        yield from _claim(digests, inside, sha256, MANIFEST)
    yield from (
        Problem(ProblemKind.MISMATCH, MANIFEST, f"files does not list {path}")
        for path in files
        if path not in METADATA and path not in listed
    )
    problems: list[Problem] = []  # what _entries finds, told where the list it read was
    sources = _entries(manifest, "sources", problems)
    yield from problems
    for source in sources:
        problems.clear()
        entries = [source, *_entries(source, "patches", problems)]
        yield from problems
        for entry in entries:
            path = inside_path(str(entry.get("file", "")))
            if path is None:
                yield Problem(ProblemKind.MISMATCH, MANIFEST, f"source {shown(source.get('name'))}: no file")
            else:
                yield from _claim(digests, path, entry.get("sha256"), MANIFEST)


def _entries(data: dict[str, Any], key: str, problems: list[Problem]) -> list[dict[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        problems.append(Problem(ProblemKind.MISMATCH, MANIFEST, f"{key}: not a list of objects"))
        return []
    return value


def _check_sbom(sbom: dict[str, Any], digests: _Digests) -> Iterator[Problem]:
    """Every SPDX file's SHA256 (fileName "./<path>") and every package's whose packageFileName is a release
    file (as given, or under sources/) must be the file's."""
    if sbom.get("spdxVersion") != SPDX_VERSION:
        version = shown(sbom.get("spdxVersion"))
        yield Problem(ProblemKind.MISMATCH, SBOM, f"spdxVersion {version}, expected {SPDX_VERSION!r}")
    entries: list[tuple[str, dict[str, Any], str | None]] = []
    for entry in _list_of(sbom, "files"):
        name = entry.get("fileName")
        entries.append(
            (f"file {shown(name)}", entry, inside_path(name.removeprefix("./")) if isinstance(name, str) else None)
        )
    for entry in _list_of(sbom, "packages"):
        name = entry.get("packageFileName")
        if isinstance(name, str):
            candidates = [
                inside_path(name.removeprefix("./")),
                inside_path(source_file(PurePosixPath(name).name)),
            ]
            path = next((c for c in candidates if c in digests.files), None)
            if path is not None:  # packages without a file of the release (the release itself, tools) aside
                entries.append((f"package {shown(entry.get('name'))}", entry, path))
    for what, entry, path in entries:
        sums = [c.get("checksumValue") for c in _list_of(entry, "checksums") if c.get("algorithm") == "SHA256"]
        if path is None or not sums:
            yield Problem(ProblemKind.MISMATCH, SBOM, f"{what}: no release path with a SHA256 checksum")
            continue
        for sha256 in sums:
            yield from _claim(digests, path, sha256, SBOM)
    if not entries:
        yield Problem(ProblemKind.MISMATCH, SBOM, "lists no file of the release")


def _statement_of(document: dict[str, Any], problems: list[Problem]) -> dict[str, Any] | None:
    """The in-toto statement of provenance.intoto.json: the document itself, or a DSSE envelope's payload.
    Whether the signature verifies is verify's question: it needs the keys a user trusts."""
    if not signing.is_envelope(document):
        return document
    try:
        return dict(signing.open_envelope(document).statement)
    except signing.BadEnvelope as error:
        problems.append(Problem(ProblemKind.MISMATCH, PROVENANCE, str(error)))
        return None


def _check_provenance(statement: dict[str, Any], signed: bool, digests: _Digests) -> Iterator[Problem]:
    """The statement's subjects against the files; a signed one must cover them all."""
    covered: set[str] = set()
    if statement.get("_type") != STATEMENT_TYPE:
        kind = shown(statement.get("_type"))
        yield Problem(ProblemKind.MISMATCH, PROVENANCE, f"_type {kind}, expected {STATEMENT_TYPE!r}")
    subjects = _list_of(statement, "subject")
    if not subjects:
        yield Problem(ProblemKind.MISMATCH, PROVENANCE, "no subject")
    for subject in subjects:
        name = subject.get("name")
        digest = subject.get("digest")
        path = inside_path(name.removeprefix("./")) if isinstance(name, str) else None
        if path is None or not isinstance(digest, dict) or "sha256" not in digest:
            yield Problem(ProblemKind.MISMATCH, PROVENANCE, f"subject {shown(name)}: no release path with a sha256")
            continue
        covered.add(path)
        yield from _claim(digests, path, digest["sha256"], PROVENANCE)
    if signed:
        yield from (
            Problem(ProblemKind.UNEXPECTED, path, f"not covered by the signed {PROVENANCE}")
            for path in digests.files
            if path not in covered and path not in signing.NOT_SUBJECTS
        )


def _list_of(data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = data.get(key, [])
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _this_mmulab() -> str:
    """This mmulab's version and commit, as documents.made_by tells them (git asked only when a document differs)."""
    from mmulab.core.settings import PROJECT_ROOT
    from mmulab.release.publish import project_version, vcs_state

    return documents.mmulab_named(project_version(), vcs_state(PROJECT_ROOT).commit)


def _boot_cases(manifest: dict[str, Any] | None) -> list[str] | None:
    """The manifest's boot case names (None without a manifest to say)."""
    if manifest is None:
        return None
    boots = manifest.get("boots", [])
    return [str(b.get("case")) for b in boots if isinstance(b, dict)] if isinstance(boots, list) else []


def check_release(root: Path) -> tuple[Outcome, dict[str, Any] | None]:
    """Every check a release directory must pass from its own bytes; the outcome and its manifest (if read)."""
    files, listing = release_listing(root)
    problems = bounded(listing, ".")
    digests = _Digests(files)
    problems += bounded(_check_sums(files, digests), SUMS)
    manifest = _load_json(files, MANIFEST, problems)
    if manifest is not None:
        problems += bounded(_check_manifest(manifest, files, digests), MANIFEST)
    sbom = _load_json(files, SBOM, problems)
    if sbom is not None:
        problems += bounded(_check_sbom(sbom, digests), SBOM)
        told = itertools.islice(documents.spdx_problems(sbom), documents.SHOWN)
        problems += [Problem(ProblemKind.MISMATCH, SBOM, d) for d in told]
        del sbom  # not needed again: the JSON documents are not all held at once
    document = _load_json(files, PROVENANCE, problems)
    signed = document is not None and signing.is_envelope(document)
    statement = _statement_of(document, problems) if document is not None else None
    if statement is not None:
        problems += bounded(_check_provenance(statement, signed, digests), PROVENANCE)
        problems += [
            Problem(ProblemKind.MISMATCH, PROVENANCE, d) for d in documents.statement_problems(statement, manifest)
        ]
    run = _load_json(files, RUN, problems)
    if run is not None:
        problems += [Problem(ProblemKind.MISMATCH, RUN, d) for d in documents.run_problems(run, _boot_cases(manifest))]
    _read(files, INDEX, problems)  # compared below with the page made again; here only there and not too large
    if not problems and manifest is not None:  # else a document made again would differ only as a consequence
        subjects = {path: digests(path) for path in files if path not in signing.NOT_SUBJECTS} if signed else None

        def read(name: str) -> bytes:
            return read_document(files[name], name, MAX_CONSOLE_BYTES if name.startswith(BOOTS) else None)

        seconds = run.get("boot_seconds") if run is not None else None  # run.json was checked above
        charts, drawn = documents.charts_again(manifest, read, seconds if isinstance(seconds, dict) else {})
        problems += [Problem(ProblemKind(kind), path, detail) for kind, path, detail in charts]
        made = documents.made_again(root, manifest, statement, read, _this_mmulab, subjects, drawn)
        problems += [Problem(ProblemKind.MISMATCH, path, detail) for path, detail in made]
    return Outcome(tuple(dict.fromkeys(problems)), len(files), document), manifest
