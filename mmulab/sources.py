"""Pinned sources: fetch into a shared download cache with sha256 checks, fall back offline, extract safely.

Modelled on Buildroot's download infrastructure: a flat cache keyed by file name, hashes pinned in data,
mirrors tried first, every origin's failure reported. Nothing half-written is ever left under a final name:
downloads stream to a .part file and are renamed only after their sha256 matched. An origin that answered
with wrong or broken bytes (and any failing mirror) is told on stderr at once, one line each.

A local-file origin (a file installed by a Debian package) is used as pinned when its sha256 is one of the
origin's known ones. Once Debian has moved on, another installed version is trusted the way apt trusts it:
dpkg recorded the md5 of every file of the .deb that apt verified against the archive's signed index, so
the file is used only when dpkg lists the package as installed and the file's md5 matches that record.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import re
import shutil
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from .configdata import KnownVersion, Origin, Project, Source, upstream_version
from .errors import UserError
from .fsutil import CHUNK, JsonRecord, sha256_of, write_atomic
from .tools import RUNNER, Runner

if TYPE_CHECKING:
    import requests
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 60
TRUST_PINNED = "pinned"  # the sha256 is listed in configs/sources.toml
TRUST_APT = "apt-archive"  # an installed package's file whose md5 matches dpkg's record (apt's signed archive)


class _Permanent(Exception):
    """This origin cannot deliver the file (404, wrong hash...): go to the next one.

    `bad`: the origin answered but served wrong or broken bytes, so the user is told even when a later
    origin succeeds; `short`: the reason as that warning line gives it.
    """

    def __init__(self, message: str, bad: bool = False, short: str = "") -> None:
        super().__init__(message)
        self.bad = bad
        self.short = short or message


class _Transient(Exception):
    """This attempt failed (timeout, reset, short read): try the same origin again after a pause."""

    def __init__(self, message: str, bad: bool = False) -> None:
        super().__init__(message)
        self.bad = bad


@dataclass(frozen=True)
class Fetched(JsonRecord):
    """What a fetch produced: the verified file in the download cache, what it is and why it is trusted.

    `trust` is "pinned" (sha256 listed in configs/sources.toml) or "apt-archive" (an installed Debian
    package's file whose md5 matches dpkg's record); `package`/`package_version` name a Debian package's file.
    """

    source: str
    path: str
    sha256: str
    version: str
    origin: str
    origin_kind: str
    package: str = ""
    package_version: str = ""
    trust: str = TRUST_PINNED


@dataclass(frozen=True)
class Extracted(JsonRecord):
    """What an extraction produced: the tree, from which archive, with which patches (name, sha256)."""

    tree: str
    sha256: str
    version: str
    patches: tuple[tuple[str, str], ...]


def _md5_and_sha256(path: Path) -> tuple[str, str]:
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            md5.update(chunk)
            sha256.update(chunk)
    return md5.hexdigest(), sha256.hexdigest()


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


@dataclass(frozen=True)
class _Candidate:
    location: str
    origin: Origin
    mirror: bool = False


def _candidates(project: Project, source: Source) -> list[_Candidate]:
    """Every location to try, in order: for each origin, the mirrors first, then the origin."""
    candidates: list[_Candidate] = []
    for origin in source.origins:
        candidates += [
            _Candidate(f"{mirror.rstrip('/')}/{origin.filename}", origin, True) for mirror in project.mirrors
        ]
        if origin.kind == "url":
            candidates.append(_Candidate(origin.url, origin))
        elif origin.kind == "local-file":
            candidates.append(_Candidate(origin.path, origin))
        else:
            pool = debian_pool_path(origin.package, origin.component, origin.file)
            uris = apt_archive_uris(project.settings.apt_sources)
            if not uris:
                candidates.append(_Candidate(f"<apt archive>/{pool}", origin))
            candidates += [_Candidate(f"{uri}/{pool}", origin) for uri in uris]
    # The same place checked against the same pins once (origins may share a file name, hence mirror URLs).
    seen: set[tuple[str, tuple[KnownVersion, ...]]] = set()
    unique = []
    for candidate in candidates:
        key = (candidate.location, candidate.origin.pins())
        if key not in seen:
            seen.add(key)
            unique.append(candidate)
    return unique


def _pin(origin: Origin, sha256: str) -> KnownVersion | None:
    return next((pin for pin in origin.pins() if pin.sha256 == sha256), None)


def _mismatch(got: str, origin: Origin) -> _Permanent:
    pinned = [pin.sha256 for pin in origin.pins()]
    return _Permanent(
        f"sha256 mismatch: got {got}, pinned {' or '.join(pinned)}",
        bad=True,
        short=f"sha256 mismatch (got {got[:8]}..., pinned {' or '.join(p[:8] + '...' for p in pinned)})",
    )


def _download_once(session: requests.Session, url: str, part: Path, origin: Origin) -> KnownVersion:
    import requests

    try:
        with session.get(url, stream=True, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT)) as response:
            if response.status_code in (408, 429) or response.status_code >= 500:
                raise _Transient(f"HTTP {response.status_code}", bad=True)
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
            raise _Transient("truncated transfer (connection broken)", bad=True) from None
        raise _Transient(f"connection failed: {type(exc).__name__}") from None
    except requests.exceptions.Timeout:
        raise _Transient("timed out") from None
    except requests.exceptions.RequestException:
        raise _Transient("truncated or broken transfer", bad=True) from None
    if expected is not None and size != int(expected):
        raise _Transient(f"truncated transfer: {size} of {expected} bytes", bad=True)
    pin = _pin(origin, digest.hexdigest())
    if pin is None:
        raise _mismatch(digest.hexdigest(), origin)
    return pin


def _fetch_url(
    session: requests.Session, url: str, final: Path, origin: Origin, retries: int, backoff: float
) -> KnownVersion:
    part = final.with_name(f".{final.name}.{os.getpid()}.part")
    try:
        for attempt in range(retries + 1):
            try:
                pin = _download_once(session, url, part, origin)
                os.replace(part, final)
                return pin
            except _Transient as exc:
                if attempt == retries:
                    tries = "1 attempt" if retries == 0 else f"{retries + 1} attempts"
                    raise _Permanent(f"{exc} (after {tries})", bad=exc.bad) from None
                time.sleep(backoff * 2**attempt)
        raise AssertionError("unreachable")
    finally:
        part.unlink(missing_ok=True)


def _dpkg_stanzas(admindir: Path, package: str) -> list[dict[str, str]]:
    """The stanzas of `package` in dpkg's status file (one per architecture), fields by name."""
    try:
        text = (admindir / "status").read_text(errors="replace")
    except OSError as exc:
        raise _Permanent(f"cannot read dpkg's database {admindir / 'status'}: {exc.strerror}") from None
    stanzas = []
    for stanza in re.split(r"\n\s*\n", text):
        if re.search(rf"^Package:[ \t]*{re.escape(package)}[ \t]*$", stanza, re.M):
            stanzas.append(dict(re.findall(r"^([A-Za-z][A-Za-z0-9-]*):[ \t]*(.*)$", stanza, re.M)))
    return stanzas


def dpkg_vouches(path: str, package: str, md5: str, admindir: Path) -> str:
    """The installed version of `package` when dpkg recorded `md5` for the file `path`; else _Permanent.

    apt checked the .deb against the archive's signed index before dpkg unpacked it and recorded each
    file's md5 in <admindir>/info/<package>[:<arch>].md5sums: a matching md5 ties the file to that .deb.
    """
    installed = [s for s in _dpkg_stanzas(admindir, package) if s.get("Status", "").split()[1:] == ["ok", "installed"]]
    if not installed:
        raise _Permanent(f"dpkg does not list {package} as installed ({admindir / 'status'})")
    key = os.path.normpath(path).lstrip("/")
    for stanza in installed:
        version, arch = stanza.get("Version", ""), stanza.get("Architecture", "")
        for name in dict.fromkeys([f"{package}:{arch}.md5sums", f"{package}.md5sums"]):
            md5sums = admindir / "info" / name
            if not md5sums.is_file():
                continue
            for line in md5sums.read_text(errors="replace").splitlines():
                recorded, _, file = line.partition(" ")
                if file.strip() != key:
                    continue
                if recorded.lower() != md5:
                    raise _Permanent(
                        f"its md5 {md5} differs from {recorded} that dpkg recorded for {package} {version} ({md5sums})"
                    )
                return version
    raise _Permanent(f"dpkg's md5sums of {package} do not list {path} ({admindir / 'info'})")


def _copy_local(name: str, path: Path, final: Path, origin: Origin, admindir: Path) -> Fetched:
    """Link (or copy) an installed file into the cache, then trust it as pinned or through dpkg's md5sums.

    The hashes are taken of the cache's copy, so what was checked is exactly what stays.
    """
    if not path.is_file():
        hint = f"; install {origin.package} (./setup.sh does)" if origin.package else ""
        raise _Permanent(f"no such file{hint}")
    part = final.with_name(f".{final.name}.{os.getpid()}.part")
    try:
        try:
            os.link(path, part)
        except OSError:
            shutil.copyfile(path, part)
        md5, sha256 = _md5_and_sha256(part)
        pin = _pin(origin, sha256)
        if pin is not None:
            os.replace(part, final)
            return Fetched(
                name, str(final), sha256, pin.version, str(path), origin.kind, origin.package, pin.package_version
            )
        mismatch = _mismatch(sha256, origin)
        if not origin.package:
            raise mismatch
        try:
            package_version = dpkg_vouches(str(path), origin.package, md5, admindir)
        except _Permanent as exc:
            raise _Permanent(
                f"{mismatch}; not trusted through apt either: {exc}", True, f"{mismatch.short}; {exc}"
            ) from None
        os.replace(part, final)
    finally:
        part.unlink(missing_ok=True)
    version = upstream_version(package_version)
    print(
        f"mmulab: {name}: {path} is {origin.package} {package_version}, not a pinned version; trusted through "
        f"apt's signed archive (dpkg md5sums match), sha256 {sha256} recorded",
        file=sys.stderr,
        flush=True,
    )
    return Fetched(
        name, str(final), sha256, version, str(path), origin.kind, origin.package, package_version, TRUST_APT
    )


def _advice(candidate: _Candidate) -> str:
    if candidate.mirror:
        return "fix or remove this mirror"
    if candidate.origin.kind == "local-file" and candidate.origin.package:
        return f"reinstall it (apt-get install --reinstall {candidate.origin.package}) or remove it"
    return "trying the next origin"


def _origin_sidecar_path(final: Path) -> Path:
    return final.with_name(f"{final.name}.origin.json")


def _origin_sidecar(fetched: Fetched, remember: bool = False) -> Fetched:
    """Where a cached file really came from survives cache hits: `remember` writes <file>.origin.json beside
    it (origin, kind, package, trust); a cache hit takes them back when the sidecar names the same sha256."""
    sidecar = _origin_sidecar_path(Path(fetched.path))
    keys = ("origin", "origin_kind", "package", "package_version", "trust")
    if remember:
        facts = {"sha256": fetched.sha256, **{key: getattr(fetched, key) for key in keys}}
        with contextlib.suppress(OSError):
            write_atomic(sidecar, json.dumps(facts, indent=2, sort_keys=True) + "\n")
        return fetched
    try:
        facts = json.loads(sidecar.read_text())
        if facts.get("sha256") == fetched.sha256 and all(isinstance(facts.get(key), str) for key in keys):
            return replace(fetched, **{key: facts[key] for key in keys})
    except (OSError, ValueError, AttributeError):
        pass
    return fetched


def fetch(project: Project, name: str, dpkg_admindir: Path | None = None) -> Fetched:
    """Make a verified file of source `name` present in the download cache and say what it is.

    Origins (each after the mirrors) are tried in order; one that answered with wrong or broken bytes, and
    any failing mirror, is told on stderr at once; an unreachable or 404 upstream only in the final error.
    """
    source = project.source(name)
    dpkg_admindir = dpkg_admindir or project.settings.dpkg_admindir  # where dpkg keeps status and md5sums
    cache = project.settings.download_dir / name
    cache.mkdir(parents=True, exist_ok=True)
    for origin in source.origins:
        final = cache / origin.filename
        if final.is_file():
            pin = _pin(origin, sha256_of(final))
            if pin is not None:
                package = origin.package if origin.kind != "url" else ""
                cached = Fetched(
                    name, str(final), pin.sha256, pin.version, "download cache", "cache", package, pin.package_version
                )
                return _origin_sidecar(cached)
            final.unlink()
            _origin_sidecar_path(final).unlink(missing_ok=True)
    import requests  # only when something is downloaded: imports cost a no-op run 0.17 s

    failures = []
    settings = project.settings
    with requests.Session() as session:
        for candidate in _candidates(project, source):
            location, origin = candidate.location, candidate.origin
            final = cache / origin.filename
            try:
                if origin.kind == "local-file" and not candidate.mirror:
                    return _origin_sidecar(_copy_local(name, Path(location), final, origin, dpkg_admindir), True)
                if location.startswith("<"):
                    raise _Permanent("this machine's apt configuration names no http(s) archive")
                pin = _fetch_url(session, location, final, origin, settings.fetch_retries, settings.fetch_backoff)
                package = origin.package if origin.kind != "url" else ""
                fetched = Fetched(
                    name, str(final), pin.sha256, pin.version, location, origin.kind, package, pin.package_version
                )
                return _origin_sidecar(fetched, True)
            except _Permanent as exc:
                failures.append(f"  - {location}: {exc}")
                if exc.bad or candidate.mirror:
                    print(f"mmulab: warning: {location}: {exc.short}: skipped; {_advice(candidate)}", file=sys.stderr)
    raise UserError(f"source {name!r}: every origin failed:\n" + "\n".join(failures))


def _safe_members(archive: tarfile.TarFile, strip: int, label: str, absolute_links: bool = False):
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
