"""`mmulab pins`: for each kernel series, the pinned point releases and the newest each origin offers, each checked
the way that origin is trusted, and `--write` to move the pins in configs/kernels.toml.

- kernel.org: the `sha256sums.asc` beside the tarball, clearsigned by kernel.org's checksum autosigner; only the
  text `gpgv` verified against a keyring you give (MMULAB_KERNELORG_KEYRING) is read. Without a keyring the
  versions are shown, marked unverified, and never written.
- Debian: the suite's `InRelease`, verified by `gpgv` against Debian's archive keyring, lists the sha256 of the
  `Sources` index; `Sources` lists the `.dsc`'s sha256; the `.dsc` lists the orig tarball's sha256. A version the
  index lists but whose orig tarball the pool no longer serves is skipped (superseded point releases leave it).

Offline-safe: an origin that cannot be reached is one line, never an error. Every download is bounded in size.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import re
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mmulab.build.debian import apt_archive_uris
from mmulab.core.errors import UserError
from mmulab.kconfig.version import KernelVersion, parse_version
from mmulab.project.model import KernelSeries, Origin, OriginKind, Project

_LIMITS = {"InRelease": 4 << 20, "Sources": 128 << 20, "dsc": 1 << 20, "sums": 8 << 20}
_TIMEOUT = (10, 60)
_SHA_LINE = re.compile(r"^ ([0-9a-f]{64}) +(\d+) +(\S+)$", re.M)


class Unreachable(Exception):
    """The origin could not be asked (no route, refused, timed out): said as one line, not an error."""


@dataclass(frozen=True)
class Offer:
    """A point release an origin offers, and how it was checked."""

    origin: str  # "kernel.org" or "Debian"
    version: str
    filename: str
    url: str
    sha256: str
    checked: str
    verified: bool = True
    component: str = "main"


@dataclass
class SeriesPins:
    """One series: each origin's pinned version, the newest each offers, and what could not be checked."""

    series: str
    pinned: dict[str, str] = field(default_factory=dict)  # origin label -> pinned version
    offers: dict[str, Offer] = field(default_factory=dict)  # origin label -> newest offer
    notes: list[str] = field(default_factory=list)


class Http:
    """The few HTTP(S) requests pins makes, each bounded in size and time (a fake stands in for it in tests)."""

    def __init__(self) -> None:
        import requests

        self.session = requests.Session()

    def get(self, url: str, limit: int) -> bytes | None:
        """The body, or None when the server says it has no such file (404, 410); Unreachable otherwise."""
        import requests

        try:
            with self.session.get(url, timeout=_TIMEOUT, stream=True) as response:
                if response.status_code in (404, 410):
                    return None
                if response.status_code != 200:
                    raise Unreachable(f"{url}: HTTP {response.status_code}")
                body = bytearray()
                for chunk in response.iter_content(1 << 16):
                    body += chunk
                    if len(body) > limit:
                        raise Unreachable(f"{url}: larger than {limit} bytes; not read")
                return bytes(body)
        except requests.RequestException as error:
            raise Unreachable(f"{url}: {type(error).__name__}") from None

    def exists(self, url: str) -> bool:
        import requests

        try:
            with self.session.head(url, timeout=_TIMEOUT, allow_redirects=True) as response:
                return response.status_code == 200
        except requests.RequestException as error:
            raise Unreachable(f"{url}: {type(error).__name__}") from None


def verified_text(signed: bytes, keyring: Path) -> str | None:
    """The text of a clearsigned document that gpgv verified against `keyring`; None when the signature is bad."""
    with tempfile.TemporaryDirectory(prefix="mmulab-pins-") as work:
        document, output = Path(work) / "signed", Path(work) / "text"
        document.write_bytes(signed)
        try:
            result = subprocess.run(
                ["gpgv", "--keyring", str(keyring), "--output", str(output), str(document)],
                capture_output=True,
                check=False,
                timeout=60,
            )
        except FileNotFoundError:
            raise UserError("gpgv: not found on PATH (install Debian package gpgv; ./setup.sh does)") from None
        if result.returncode != 0 or not output.is_file():
            return None
        return output.read_text(errors="replace")


def deb822(text: str) -> Iterator[dict[str, str]]:
    """The stanzas of a Debian control file (Sources, .dsc), fields by name, continuation lines kept."""
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        name = ""
        for line in block.splitlines():
            if line.startswith((" ", "\t")) and name:
                fields[name] += "\n" + line
            elif ":" in line and not line.startswith("#"):
                name, _, value = line.partition(":")
                fields[name] = value.strip()
        if fields:
            yield fields


def _unarmored(signed: bytes) -> str:
    """A .dsc's control text without its OpenPGP clearsign armour (its integrity comes from the index's sha256)."""
    text = signed.decode(errors="replace")
    if text.startswith("-----BEGIN PGP SIGNED MESSAGE-----"):
        text = text.split("\n\n", 1)[-1].split("\n-----BEGIN PGP SIGNATURE-----", 1)[0]
    return text


def _sha256s(value: str) -> dict[str, tuple[str, int]]:
    return {name: (digest, int(size)) for digest, size, name in _SHA_LINE.findall("\n" + value)}


def _series_version(text: str, series: str) -> KernelVersion | None:
    version = parse_version(text)
    return version if version is not None and version.series == series else None


def kernel_org_offer(http: Http, origin: Origin, series: str, keyring: Path | None) -> tuple[Offer | None, str]:
    """The newest tarball of `series` that kernel.org's sha256sums.asc (beside `origin`'s URL) lists."""
    base = origin.url.rsplit("/", 1)[0]
    signed = http.get(f"{base}/sha256sums.asc", _LIMITS["sums"])
    if signed is None:
        return None, f"{base}/sha256sums.asc: not found"
    text = verified_text(signed, keyring) if keyring else signed.decode(errors="replace")
    if text is None:
        return None, f"{base}/sha256sums.asc: the signature does not verify against {keyring}; nothing read"
    found = []
    for digest, name in re.findall(r"^([0-9a-f]{64})\s+(linux-[0-9.]+\.tar\.xz)$", text, re.M):
        version = _series_version(name.removeprefix("linux-").removesuffix(".tar.xz"), series)
        if version:
            found.append((version, name, digest))
    if not found:
        return None, f"{base}/sha256sums.asc lists no linux-{series}.N.tar.xz"
    version, name, digest = max(found)
    how = "sha256sums.asc, signature verified" if keyring else "sha256sums.asc, signature NOT verified (no keyring)"
    note = "" if keyring else "kernel.org: no MMULAB_KERNELORG_KEYRING, so its sums are shown, not trusted"
    return Offer("kernel.org", str(version), name, f"{base}/{name}", digest, how, bool(keyring)), note


def _debian_index(http: Http, uri: str, suite: str, keyring: Path) -> str | None:
    """The Sources index of `suite` at archive `uri`, reached only through the verified InRelease."""
    signed = http.get(f"{uri}/dists/{suite}/InRelease", _LIMITS["InRelease"])
    if signed is None:
        return None
    release = verified_text(signed, keyring)
    if release is None:
        raise Unreachable(f"{uri}/dists/{suite}/InRelease: the signature does not verify against {keyring}")
    listed = _sha256s(dict(next(deb822(release), {})).get("SHA256", ""))
    for name, decompress in (("main/source/Sources.xz", lzma.decompress), ("main/source/Sources.gz", gzip.decompress)):
        if name not in listed:
            continue
        body = http.get(f"{uri}/dists/{suite}/{name}", _LIMITS["Sources"])
        if body is None or hashlib.sha256(body).hexdigest() != listed[name][0]:
            raise Unreachable(f"{uri}/dists/{suite}/{name}: missing, or not the sha256 InRelease lists")
        return decompress(body).decode(errors="replace")
    raise Unreachable(f"{uri}/dists/{suite}/InRelease lists no main/source/Sources index")


def debian_offer(http: Http, uris: list[str], spec: KernelSeries, keyring: Path) -> tuple[Offer | None, list[str]]:
    """The newest orig tarball of the series that a suite's verified index lists and the pool still serves."""
    notes: list[str] = []
    candidates = []
    for suite in spec.debian_suites:
        for uri in uris:
            index = _debian_index(http, uri, suite, keyring)
            if index is None:
                continue
            for stanza in deb822(index):
                if stanza.get("Package") != spec.debian_package:
                    continue
                upstream = stanza.get("Version", "").split(":")[-1].rsplit("-", 1)[0]
                version = _series_version(upstream, spec.name)
                if version:
                    candidates.append((version, stanza.get("Version", ""), uri, suite, stanza))
            break
    for version, full, uri, suite, stanza in sorted(candidates, key=lambda c: (c[0], c[1]), reverse=True):
        files = _sha256s(stanza.get("Checksums-Sha256", ""))
        directory = stanza.get("Directory", "")
        dsc = next((name for name in files if name.endswith(".dsc")), "")
        orig = next((name for name in files if ".orig.tar." in name), "")
        if not dsc or not orig:
            continue
        url = f"{uri}/{directory}/{orig}"
        if not http.exists(url):
            notes.append(f"Debian {suite}: linux {full} is listed, but the pool no longer serves {orig}")
            continue
        # The .dsc (its sha256 from the verified index) must list the same orig tarball; Sources already lists the
        # tarball's sha256 under the same signature, so a pool that lost the .dsc costs only this cross-check.
        body = http.get(f"{uri}/{directory}/{dsc}", _LIMITS["dsc"])
        how = f"{suite} InRelease (signed) -> Sources -> {dsc}"
        if body is None:
            how = f"{suite} InRelease (signed) -> Sources ({dsc} gone from the pool)"
        elif hashlib.sha256(body).hexdigest() != files[dsc][0]:
            notes.append(f"Debian {suite}: {dsc} is not the file the index lists (its sha256 differs); skipped")
            continue
        elif (
            _sha256s(next(deb822(_unarmored(body)), {}).get("Checksums-Sha256", "")).get(orig, ("",))[0]
            != files[orig][0]
        ):
            notes.append(f"Debian {suite}: {dsc} and the index disagree on {orig}'s sha256; skipped")
            continue
        component = directory.removeprefix("pool/").rsplit("/", 2)[0]
        return Offer("Debian", str(version), orig, url, files[orig][0], how, True, component), notes
    return None, notes


def _label(origin: Origin) -> str:
    """An origin's row in the table; a local-file origin (an installed package) is shown, never written."""
    return {OriginKind.URL: "kernel.org", OriginKind.DEBIAN_SOURCE: "Debian"}.get(origin.kind, "installed package")


def check(
    project: Project, http: Http, debian_keyring: Path, kernel_org_keyring: Path | None = None
) -> list[SeriesPins]:
    """Every series' pins against what its origins offer now."""
    uris = apt_archive_uris(project.settings.apt_sources)
    results = []
    for spec in project.kernel_series.values():
        pins = SeriesPins(spec.name)
        for origin in spec.source.origins:
            pins.pinned.setdefault(_label(origin), origin.version)
        try:
            for origin in spec.source.origins:
                if origin.kind is OriginKind.URL:
                    offer, note = kernel_org_offer(http, origin, spec.name, kernel_org_keyring)
                    pins.notes += [note] if note else []
                    if offer:
                        pins.offers["kernel.org"] = offer
                    break
        except Unreachable as error:
            pins.notes.append(f"kernel.org: unreachable ({error})")
        if spec.debian_package:
            try:
                offer, notes = debian_offer(http, uris, spec, debian_keyring)
                pins.notes += notes
                if offer:
                    pins.offers["Debian"] = offer
                elif not notes:
                    pins.notes.append(f"Debian: no suite of {', '.join(spec.debian_suites)} lists linux {spec.name}.N")
            except Unreachable as error:
                pins.notes.append(f"Debian: unreachable ({error})")
        results.append(pins)
    return results


def table(results: list[SeriesPins]) -> str:
    rows = [("series", "origin", "pinned", "newest offered", "checked")]
    for pins in results:
        for label in dict.fromkeys([*pins.pinned, *pins.offers]):
            offer = pins.offers.get(label)
            newest = offer.version if offer else "?"
            if offer and offer.version == pins.pinned.get(label):
                newest += " (pinned)"
            rows.append((pins.series, label, pins.pinned.get(label, "-"), newest, offer.checked if offer else "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    for pins in results:
        lines += [f"{pins.series}: {note}" for note in pins.notes]
    return "\n".join(lines)


def movable(results: list[SeriesPins]) -> list[tuple[str, Offer]]:
    """The verified offers newer than their pin (what --write moves)."""
    moves = []
    for pins in results:
        for label, offer in pins.offers.items():
            pinned = parse_version(pins.pinned.get(label, ""))
            newer = parse_version(offer.version)
            if offer.verified and pinned and newer and newer > pinned:
                moves.append((pins.series, offer))
    return moves


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _blocks(lines: list[str], series: str) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """The line ranges of the series' own table and of each of its origin tables, in file order."""
    name = re.escape(series)
    own = re.compile(rf'^\[series\."{name}"\]\s*$')
    origin = re.compile(rf'^\[\[series\."{name}"\.origins\]\]\s*$')
    header = re.compile(r"^\[\[?[^\]]+\]\]?\s*$")
    starts = [
        (i, "own" if own.match(line) else "origin")
        for i, line in enumerate(lines)
        if own.match(line) or origin.match(line)
    ]
    ranges = []
    for index, kind in starts:
        end = next((j for j in range(index + 1, len(lines)) if header.match(lines[j])), len(lines))
        ranges.append((kind, index, end))
    table = next(((start, end) for kind, start, end in ranges if kind == "own"), None)
    if table is None:
        raise UserError(f'configs/kernels.toml: no [series."{series}"] table to write to')
    return table, [(start, end) for kind, start, end in ranges if kind == "origin"]


def _set(lines: list[str], block: tuple[int, int], key: str, value: str) -> None:
    start, end = block
    pattern = re.compile(rf"^{re.escape(key)}\s*=")
    for index in range(start + 1, end):
        if pattern.match(lines[index]):
            lines[index] = f"{key} = {_quoted(value)}"
            return
    lines.insert(start + 1, f"{key} = {_quoted(value)}")


def rewrite(text: str, project: Project, series: str, offer: Offer) -> str:
    """configs/kernels.toml's text with `series`' pin of `offer.origin` moved to `offer` (comments kept)."""
    spec = project.kernel_series[series]
    index = next(i for i, o in enumerate(spec.source.origins) if _label(o) == offer.origin)
    origin = spec.source.origins[index]
    lines = text.splitlines()
    for key, value in _origin_fields(origin, offer).items():
        _, origins = _blocks(lines, series)  # re-read: an insert moves the later blocks
        _set(lines, origins[index], key, value)
    if index == 0:  # the series' own fields are its first origin's
        own = {
            "version": offer.version,
            "sha256": offer.sha256,
            "filename": offer.filename,
            "hash_source": _hash_source(offer),
            "download_location": offer.url if offer.origin == "kernel.org" else spec.source.download_location,
        }
        for key, value in own.items():
            table, _ = _blocks(lines, series)
            _set(lines, table, key, value)
    return "\n".join(lines) + "\n"


def _hash_source(offer: Offer) -> str:
    return f"{offer.checked} (mmulab pins --write)"


def _origin_fields(origin: Origin, offer: Offer) -> dict[str, str]:
    fields = {"version": offer.version, "sha256": offer.sha256}
    if origin.kind is OriginKind.URL:
        return {"url": offer.url, **fields}
    return {"file": offer.filename, **fields, "component": offer.component, "hash_source": _hash_source(offer)}
