"""Pinned sources: fetch into a shared download cache with sha256 checks, trying each origin in turn.

Modelled on Buildroot's download infrastructure: a flat cache keyed by file name, hashes pinned in data,
mirrors tried first, every origin's failure reported. An origin that answered with wrong or broken bytes (and
any failing mirror) is told on stderr at once, one line each. A local-file origin (a file installed by a
Debian package) is used as pinned when its sha256 is one of the origin's known ones, else as debian.py trusts it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from mmulab.build.debian import apt_archive_uris, copy_local, debian_pool_path
from mmulab.build.download import Fetched, OriginFailed, fetch_url, origin_sidecar, origin_sidecar_path, pinned_version
from mmulab.core.errors import UserError
from mmulab.core.fsutil import sha256_of
from mmulab.project.model import KnownVersion, Origin, OriginKind, Project, Source


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
        if origin.kind is OriginKind.URL:
            candidates.append(_Candidate(origin.url, origin))
        elif origin.kind is OriginKind.LOCAL_FILE:
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


def _advice(candidate: _Candidate) -> str:
    if candidate.mirror:
        return "fix or remove this mirror"
    if candidate.origin.kind is OriginKind.LOCAL_FILE and candidate.origin.package:
        return f"reinstall it (apt-get install --reinstall {candidate.origin.package}) or remove it"
    return "trying the next origin"


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
            pin = pinned_version(origin, sha256_of(final))
            if pin is not None:
                package = origin.package if origin.kind is not OriginKind.URL else ""
                cached = Fetched(
                    name, str(final), pin.sha256, pin.version, "download cache", "cache", package, pin.package_version
                )
                return origin_sidecar(cached)
            final.unlink()
            origin_sidecar_path(final).unlink(missing_ok=True)
    import requests  # only when something is downloaded: imports cost a no-op run 0.17 s

    failures: list[str] = []
    shorts: list[str] = []
    served_bad = False  # an origin answered with wrong bytes: not a vanished pin
    settings = project.settings
    with requests.Session() as session:
        for candidate in _candidates(project, source):
            location, origin = candidate.location, candidate.origin
            final = cache / origin.filename
            try:
                if origin.kind is OriginKind.LOCAL_FILE and not candidate.mirror:
                    return origin_sidecar(copy_local(name, Path(location), final, origin, dpkg_admindir), True)
                if location.startswith("<"):
                    raise OriginFailed("this machine's apt configuration names no http(s) archive")
                pin = fetch_url(session, location, final, origin, settings.fetch_retries, settings.fetch_backoff)
                package = origin.package if origin.kind is not OriginKind.URL else ""
                fetched = Fetched(
                    name, str(final), pin.sha256, pin.version, location, origin.kind, package, pin.package_version
                )
                return origin_sidecar(fetched, True)
            except OriginFailed as exc:
                failures.append(f"  - {location}: {exc}")
                shorts.append(f"{location}: {exc.short}")
                served_bad = served_bad or exc.bad
                if exc.bad or candidate.mirror:
                    print(f"mmulab: warning: {location}: {exc.short}: skipped; {_advice(candidate)}", file=sys.stderr)
    if name == project.toolchain.kernel.source and project.kernel_series and not served_bad:
        raise PinGone(
            series=project.series,
            versions="/".join(dict.fromkeys(o.version for o in source.origins)),
            tried="; ".join(shorts),
        )
    raise UserError(f"source {name!r}: every origin failed:\n" + "\n".join(failures))


class PinGone(UserError):
    """A kernel series' pinned point release that no origin serves any more (Debian's pool drops superseded point
    releases): one line naming the series and the command that moves the pin."""

    template = (
        "kernel series {series}: no origin serves the pinned linux {versions} any more ({tried}); "
        "`mmulab pins` shows the newest point releases each origin offers, `mmulab pins --write` moves the pins"
    )
