"""Debian as an origin: deb-src entries from this machine's apt configuration, and dpkg's records as a trust anchor.

Once Debian has moved on from a pinned version, an installed file is trusted the way apt trusts it: dpkg
recorded the md5 of every file of the .deb that apt verified against the archive's signed index.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

from mmulab.build.download import TRUST_APT, Fetched, OriginFailed, md5_and_sha256, pinned_version, sha256_mismatch
from mmulab.project.model import Origin, upstream_version


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


def _dpkg_stanzas(admindir: Path, package: str) -> list[dict[str, str]]:
    """The stanzas of `package` in dpkg's status file (one per architecture), fields by name."""
    try:
        text = (admindir / "status").read_text(errors="replace")
    except OSError as exc:
        raise OriginFailed(f"cannot read dpkg's database {admindir / 'status'}: {exc.strerror}") from None
    stanzas = []
    for stanza in re.split(r"\n\s*\n", text):
        if re.search(rf"^Package:[ \t]*{re.escape(package)}[ \t]*$", stanza, re.M):
            stanzas.append(dict(re.findall(r"^([A-Za-z][A-Za-z0-9-]*):[ \t]*(.*)$", stanza, re.M)))
    return stanzas


def dpkg_vouches(path: str, package: str, md5: str, admindir: Path) -> str:
    """The installed version of `package` when dpkg recorded `md5` for the file `path`; else OriginFailed.

    apt checked the .deb against the archive's signed index before dpkg unpacked it and recorded each
    file's md5 in <admindir>/info/<package>[:<arch>].md5sums: a matching md5 ties the file to that .deb.
    """
    installed = [s for s in _dpkg_stanzas(admindir, package) if s.get("Status", "").split()[1:] == ["ok", "installed"]]
    if not installed:
        raise OriginFailed(f"dpkg does not list {package} as installed ({admindir / 'status'})")
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
                    raise OriginFailed(
                        f"its md5 {md5} differs from {recorded} that dpkg recorded for {package} {version} ({md5sums})"
                    )
                return version
    raise OriginFailed(f"dpkg's md5sums of {package} do not list {path} ({admindir / 'info'})")


def copy_local(name: str, path: Path, final: Path, origin: Origin, admindir: Path) -> Fetched:
    """Link (or copy) an installed file into the cache, then trust it as pinned or through dpkg's md5sums.

    The hashes are taken of the cache's copy, so what was checked is exactly what stays.
    """
    if not path.is_file():
        hint = f"; install {origin.package} (./setup.sh does)" if origin.package else ""
        raise OriginFailed(f"no such file{hint}")
    part = final.with_name(f".{final.name}.{os.getpid()}.part")
    try:
        try:
            os.link(path, part)
        except OSError:
            shutil.copyfile(path, part)
        md5, sha256 = md5_and_sha256(part)
        pin = pinned_version(origin, sha256)
        if pin is not None:
            os.replace(part, final)
            return Fetched(
                name, str(final), sha256, pin.version, str(path), origin.kind, origin.package, pin.package_version
            )
        mismatch = sha256_mismatch(sha256, origin)
        if not origin.package:
            raise mismatch
        try:
            package_version = dpkg_vouches(str(path), origin.package, md5, admindir)
        except OriginFailed as exc:
            raise OriginFailed(
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
