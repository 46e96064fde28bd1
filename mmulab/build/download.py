"""Download one pinned file from one origin into the cache: streamed to .part, renamed only once its sha256 matched."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from mmulab.core.fsutil import CHUNK, JsonRecord, write_atomic
from mmulab.project.model import KnownVersion, Origin

if TYPE_CHECKING:
    import requests


CONNECT_TIMEOUT = 10
READ_TIMEOUT = 60
TRUST_PINNED = "pinned"  # the sha256 is listed in configs/sources.toml
TRUST_APT = "apt-archive"  # an installed package's file whose md5 matches dpkg's record (apt's signed archive)


class OriginFailed(Exception):
    """This origin cannot deliver the file (404, wrong hash...): go to the next one.

    `bad`: the origin answered but served wrong or broken bytes, so the user is told even when a later
    origin succeeds; `short`: the reason as that warning line gives it.
    """

    def __init__(self, message: str, bad: bool = False, short: str = "") -> None:
        super().__init__(message)
        self.bad = bad
        self.short = short or message


class AttemptFailed(Exception):
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
    origin_kind: str  # the origin's OriginKind, or "cache" (a download cache hit with no sidecar)
    package: str = ""
    package_version: str = ""
    trust: str = TRUST_PINNED


def md5_and_sha256(path: Path) -> tuple[str, str]:
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            md5.update(chunk)
            sha256.update(chunk)
    return md5.hexdigest(), sha256.hexdigest()


def pinned_version(origin: Origin, sha256: str) -> KnownVersion | None:
    return next((pin for pin in origin.pins() if pin.sha256 == sha256), None)


def sha256_mismatch(got: str, origin: Origin) -> OriginFailed:
    pinned = [pin.sha256 for pin in origin.pins()]
    return OriginFailed(
        f"sha256 mismatch: got {got}, pinned {' or '.join(pinned)}",
        bad=True,
        short=f"sha256 mismatch (got {got[:8]}..., pinned {' or '.join(p[:8] + '...' for p in pinned)})",
    )


def _download_once(session: requests.Session, url: str, part: Path, origin: Origin) -> KnownVersion:
    import requests

    try:
        with session.get(url, stream=True, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT)) as response:
            if response.status_code in (408, 429) or response.status_code >= 500:
                raise AttemptFailed(f"HTTP {response.status_code}", bad=True)
            if response.status_code != 200:
                raise OriginFailed(f"HTTP {response.status_code} {response.reason}")
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
            raise OriginFailed("cannot resolve host (offline?)") from None
        if "IncompleteRead" in text or "Connection broken" in text:
            raise AttemptFailed("truncated transfer (connection broken)", bad=True) from None
        raise AttemptFailed(f"connection failed: {type(exc).__name__}") from None
    except requests.exceptions.Timeout:
        raise AttemptFailed("timed out") from None
    except requests.exceptions.RequestException:
        raise AttemptFailed("truncated or broken transfer", bad=True) from None
    if expected is not None and size != int(expected):
        raise AttemptFailed(f"truncated transfer: {size} of {expected} bytes", bad=True)
    pin = pinned_version(origin, digest.hexdigest())
    if pin is None:
        raise sha256_mismatch(digest.hexdigest(), origin)
    return pin


def fetch_url(
    session: requests.Session, url: str, final: Path, origin: Origin, retries: int, backoff: float
) -> KnownVersion:
    part = final.with_name(f".{final.name}.{os.getpid()}.part")
    try:
        for attempt in range(retries + 1):
            try:
                pin = _download_once(session, url, part, origin)
                os.replace(part, final)
                return pin
            except AttemptFailed as exc:
                if attempt == retries:
                    tries = "1 attempt" if retries == 0 else f"{retries + 1} attempts"
                    raise OriginFailed(f"{exc} (after {tries})", bad=exc.bad) from None
                time.sleep(backoff * 2**attempt)
        raise AssertionError("unreachable")
    finally:
        part.unlink(missing_ok=True)


def origin_sidecar_path(final: Path) -> Path:
    return final.with_name(f"{final.name}.origin.json")


def origin_sidecar(fetched: Fetched, remember: bool = False) -> Fetched:
    """Where a cached file really came from survives cache hits: `remember` writes <file>.origin.json beside
    it (origin, kind, package, trust); a cache hit takes them back when the sidecar names the same sha256."""
    sidecar = origin_sidecar_path(Path(fetched.path))
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
