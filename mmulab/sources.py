"""Pinned sources: fetch into a shared download cache with sha256 checks, fall back offline, extract safely.

Modelled on Buildroot's download infrastructure: a flat cache keyed by file name, hashes pinned in data,
mirrors tried first, every origin's failure reported. Nothing half-written is ever left under a final name:
downloads stream to a .part file and are renamed only after their sha256 matched.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from .configdata import Origin, Project, Source
from .errors import UserError
from .fsutil import CHUNK, JsonRecord, sha256_of
from .tools import RUNNER, Runner

if TYPE_CHECKING:
    import requests
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 60


class _Permanent(Exception):
    """This origin cannot deliver the file (404, wrong hash...): go to the next one."""


class _Transient(Exception):
    """This attempt failed (timeout, reset, short read): try the same origin again after a pause."""


@dataclass(frozen=True)
class Fetched(JsonRecord):
    """What a fetch produced: the verified file in the download cache and where it came from."""

    source: str
    path: str
    sha256: str
    version: str
    origin: str
    origin_kind: str


@dataclass(frozen=True)
class Extracted(JsonRecord):
    """What an extraction produced: the tree, from which archive, with which patches (name, sha256)."""

    tree: str
    sha256: str
    version: str
    patches: tuple[tuple[str, str], ...]


def apt_archive_uris(paths: tuple[Path, ...]) -> list[str]:
    """The archive base URIs of this machine's apt configuration (one-line and deb822 formats), in order.

    Debian's pool layout is the same on every archive, so a source package's files can be fetched from
    whatever archive this machine already trusts, without naming any host in the repository.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in (".list", ".sources"))
        elif path.is_file():
            files.append(path)
    uris: list[str] = []
    for file in files:
        text = file.read_text(errors="replace")
        if file.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(
                    (m.group(1).lower(), m.group(2).strip())
                    for m in re.finditer(r"^([A-Za-z-]+):[ \t]*(.*)$", stanza, re.M)
                )
                if fields.get("enabled", "yes").lower() == "no" or "deb" not in fields.get("types", "").split():
                    continue
                uris += fields.get("uris", "").split()
        else:
            for line in text.splitlines():
                words = re.sub(r"\[[^\]]*\]", "", line.split("#", 1)[0]).split()
                if len(words) >= 2 and words[0] in ("deb", "deb-src"):
                    uris.append(words[1])
    return list(dict.fromkeys(uri.rstrip("/") for uri in uris if uri.startswith(("http://", "https://"))))


def debian_pool_path(package: str, component: str, file: str) -> str:
    prefix = package[:4] if package.startswith("lib") else package[0]
    return f"pool/{component}/{prefix}/{package}/{file}"


def _candidates(project: Project, source: Source) -> list[tuple[str, Origin]]:
    """Every (location, origin) to try, in order: for each origin, the mirrors first, then the origin."""
    candidates: list[tuple[str, Origin]] = []
    for origin in source.origins:
        candidates += [(f"{mirror.rstrip('/')}/{origin.filename}", origin) for mirror in project.mirrors]
        if origin.kind == "url":
            candidates.append((origin.url, origin))
        elif origin.kind == "local-file":
            candidates.append((origin.path, origin))
        else:
            pool = debian_pool_path(origin.package, origin.component, origin.file)
            uris = apt_archive_uris(project.settings.apt_sources)
            if not uris:
                candidates.append((f"<apt archive>/{pool}", origin))
            candidates += [(f"{uri}/{pool}", origin) for uri in uris]
    return list(dict.fromkeys(candidates))


def _download_once(session: requests.Session, url: str, part: Path, sha256: str) -> None:
    import requests

    try:
        with session.get(url, stream=True, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT)) as response:
            if response.status_code in (408, 429) or response.status_code >= 500:
                raise _Transient(f"HTTP {response.status_code}")
            if response.status_code != 200:
                raise _Permanent(f"HTTP {response.status_code} {response.reason}")
            expected = response.headers.get("Content-Length")
            digest, size = hashlib.sha256(), 0
            with part.open("wb") as handle:
                for chunk in response.iter_content(CHUNK):
                    handle.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
    except requests.exceptions.ConnectionError as exc:
        text = str(exc)
        if "NameResolution" in text or "resolve" in text:
            raise _Permanent("cannot resolve host (offline?)") from None
        if "IncompleteRead" in text or "Connection broken" in text:
            raise _Transient("truncated transfer (connection broken)") from None
        raise _Transient(f"connection failed: {type(exc).__name__}") from None
    except requests.exceptions.Timeout:
        raise _Transient("timed out") from None
    except requests.exceptions.RequestException as exc:
        raise _Transient(f"{type(exc).__name__}: truncated or broken transfer") from None
    if expected is not None and size != int(expected):
        raise _Transient(f"truncated transfer: {size} of {expected} bytes")
    if digest.hexdigest() != sha256:
        raise _Permanent(f"sha256 mismatch: got {digest.hexdigest()}, pinned {sha256}")


def _fetch_url(session: requests.Session, url: str, final: Path, sha256: str, retries: int, backoff: float) -> None:
    part = final.with_name(f".{final.name}.{os.getpid()}.part")
    try:
        for attempt in range(retries + 1):
            try:
                _download_once(session, url, part, sha256)
                os.replace(part, final)
                return
            except _Transient as exc:
                if attempt == retries:
                    raise _Permanent(f"{exc} (after {retries + 1} attempts)") from None
                time.sleep(backoff * 2**attempt)
    finally:
        part.unlink(missing_ok=True)


def _copy_local(path: Path, final: Path, sha256: str, origin: Origin) -> None:
    if not path.is_file():
        hint = f"; install {origin.package}={origin.package_version} (./setup.sh does)" if origin.package else ""
        raise _Permanent(f"no such file{hint}")
    got = sha256_of(path)
    if got != sha256:
        raise _Permanent(f"sha256 mismatch: got {got}, pinned {sha256}")
    part = final.with_name(f".{final.name}.{os.getpid()}.part")
    try:
        try:
            os.link(path, part)
        except OSError:
            shutil.copyfile(path, part)
        os.replace(part, final)
    finally:
        part.unlink(missing_ok=True)


def fetch(project: Project, name: str) -> Fetched:
    """Make the pinned file of source `name` present and verified in the download cache."""
    source = project.sources[name]
    cache = project.settings.download_dir / name
    cache.mkdir(parents=True, exist_ok=True)
    for origin in source.origins:
        final = cache / origin.filename
        if final.is_file():
            if sha256_of(final) == origin.sha256:
                return Fetched(name, str(final), origin.sha256, origin.version, "download cache", "cache")
            final.unlink()
    import requests  # only when something is downloaded: imports cost a no-op run 0.17 s

    failures = []
    settings = project.settings
    with requests.Session() as session:
        for location, origin in _candidates(project, source):
            final = cache / origin.filename
            try:
                if origin.kind == "local-file" and location == origin.path:
                    _copy_local(Path(location), final, origin.sha256, origin)
                elif location.startswith("<"):
                    raise _Permanent("this machine's apt configuration names no http(s) archive")
                else:
                    _fetch_url(session, location, final, origin.sha256, settings.fetch_retries, settings.fetch_backoff)
                return Fetched(name, str(final), origin.sha256, origin.version, location, origin.kind)
            except _Permanent as exc:
                failures.append(f"  - {location}: {exc}")
    raise UserError(f"source {name!r}: every origin failed:\n" + "\n".join(failures))


def _safe_members(archive: tarfile.TarFile, strip: int, label: str):
    """Members with `strip` leading components removed; anything that could land outside is refused.

    Checked lexically (no realpath per member, which made extraction twice as slow): no absolute or
    `..` names, links only to places inside the tree, no device nodes, no setuid/setgid bits.
    """
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
        if member.issym() or member.islnk():
            base = posixpath.dirname(name) if member.issym() else ""
            target = posixpath.normpath(posixpath.join(base, member.linkname))
            if member.linkname.startswith("/") or target == ".." or target.startswith("../"):
                raise UserError(
                    f"{label}: refusing archive member {member.name!r}: its link {member.linkname!r} "
                    "escapes the target directory"
                )
            if member.islnk():
                changes["linkname"] = "/".join(PurePosixPath(member.linkname).parts[strip:])
        yield member.replace(**changes, deep=False)


def apply_patches(tree: Path, patches: tuple[Path, ...], label: str) -> None:
    """Apply `patches` in order with patch -p1; a patch that does not apply fails naming it."""
    for patch in patches:
        with patch.open("rb") as handle:
            result = subprocess.run(
                ["patch", "-p1", "--batch", "--forward", "--quiet", "-d", str(tree)],
                stdin=handle,
                capture_output=True,
                text=True,
                check=False,
            )
        if result.returncode != 0:
            detail = (result.stdout + result.stderr).strip().splitlines()
            raise UserError(f"{label}: patch {patch.name} does not apply: {detail[-1] if detail else 'failed'}")


def extract(archive_path: Path, target: Path, strip: int = 1, patches: tuple[Path, ...] = ()) -> None:
    """Extract (and patch) into `target` via a temporary sibling and one rename: the tree is whole or absent."""
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    label = archive_path.name
    try:
        with tarfile.open(archive_path) as archive:
            archive.extractall(tmp, members=_safe_members(archive, strip, label), filter="fully_trusted")
        apply_patches(tmp, patches, label)
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
