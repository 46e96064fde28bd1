"""`doit publish`: a release made from one build directory after `doit all` passed.

A release is `artifacts/<release>/` (MMULAB_ARTIFACTS_DIR moves artifacts/) plus `artifacts/<release>.tar.xz`:
the kernels, busybox, initramfs images and programs, the boot results, the exact sources and patches, a
deterministic manifest.json, run.json (what differs run to run by nature) and SHA256SUMS. It is written into a
temporary sibling directory and renamed into place, so a release is whole or absent, and it is immutable:
publishing the same name again is a no-op when every file but run.json has the same bytes, otherwise refused.
With a signing key the provenance is a DSSE envelope whose statement covers every file (release/signing.py).
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import re
import shutil
import socket
import tarfile
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mmulab.boot import summary
from mmulab.boot.judge import Verdict
from mmulab.build import busybox
from mmulab.build.download import Fetched
from mmulab.core.errors import UserError
from mmulab.core.fsutil import sha256_of, write_atomic
from mmulab.core.paths import Layout
from mmulab.core.settings import PROJECT_ROOT, RELEASE_NAME, RELEASE_NAME_ACCEPTS
from mmulab.core.tools import RUNNER, Runner, package_of
from mmulab.project.model import Project
from mmulab.release import documents, figures, signing
from mmulab.release import format as release_format
from mmulab.release.format import BOOTS, CHARTS, FORMAT, MANIFEST, METADATA, PROVENANCE, RUN, SOURCES, SUMS

# Published but not compared by `doit repro` / `mmulab verify --rebuild`: they differ from boot to boot by nature
# (the charts are drawn from the consoles and the boot seconds).
VOLATILE = (RUN, BOOTS, CHARTS)
# The bulk of a release is already-compressed source tarballs: a fast preset costs little size and ~1/3 the time.
XZ_PRESET = 0
# A source tarball at least this big gets an xz stream of its own, kept in a cache by content.
CACHED_SEGMENT_BYTES = 4 << 20
EXCLUDED_FROM_DIRTY = ("build", "artifacts")  # git-ignored anyway; a pathspec makes sure


@dataclass(frozen=True)
class Vcs:
    """The checkout a release is made from: HEAD, `git describe --always --dirty --tags`, uncommitted changes."""

    commit: str = ""
    describe: str = ""
    dirty: bool = False


def vcs_state(root: Path = PROJECT_ROOT, runner: Runner = RUNNER, exclude: tuple[str, ...] = ()) -> Vcs:
    """The git state of `root`; Vcs() outside git (or without git). `exclude`: more paths the dirty check skips."""
    try:
        commit = runner.query(["git", "-C", str(root), "rev-parse", "HEAD"])
    except UserError:
        return Vcs()
    describe = runner.query(["git", "-C", str(root), "describe", "--always", "--dirty", "--tags"])
    skipped = [f":(exclude){path}" for path in (*EXCLUDED_FROM_DIRTY, *exclude)]
    status = runner.query(["git", "-C", str(root), "status", "--porcelain", "--", ".", *skipped])
    return Vcs(commit, describe, bool(status))


def project_version(root: Path = PROJECT_ROOT) -> str:
    try:
        with (root / "pyproject.toml").open("rb") as handle:
            return str(tomllib.load(handle)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("mmulab")
        except PackageNotFoundError:
            return "0"


def default_name(vcs: Vcs, version: str) -> str:
    """mmulab-<version>-<git describe> (or -nogit outside git), made a safe name."""
    return re.sub(r"[^A-Za-z0-9._+-]", "_", f"mmulab-{version}-{vcs.describe or 'nogit'}")


def check_name(name: str) -> str:
    if not RELEASE_NAME.fullmatch(name):
        raise UserError(f"--release {name!r}: not a safe release name; it accepts {RELEASE_NAME_ACCEPTS}")
    return name


# --- what a release contains ---


def _initramfs_builds(project: Project) -> list[tuple[str, str]]:
    return sorted({(case.variant, case.build) for case in project.boots.values()})


def release_files(project: Project, layout: Layout) -> dict[str, Path]:
    """Release path -> the build directory's (or download cache's) file, sorted by path. Reads only records."""
    files: dict[str, Path] = {}
    image = project.toolchain.kernel.image
    for variant in project.variants:
        for name in (image, "System.map", "config"):
            files[f"{variant}/{name}"] = layout.kernel_output(variant, name)
        files[f"{variant}/fragment.config"] = layout.kernel_dir(variant) / "fragment.config"
        if project.toolchain.busybox is not None:
            files[f"{variant}/busybox"] = busybox.output(layout, project.variants[variant], "busybox")
            files[f"{variant}/busybox.config"] = busybox.output(layout, project.variants[variant], "config")
    for variant, build in _initramfs_builds(project):
        files[f"{variant}/initramfs/{build}.cpio"] = layout.image(variant, build)
    for program in project.programs:
        files[release_format.program_file(program)] = layout.program(program)
    for case in project.boots:
        files[release_format.console_log(case)] = layout.console_log(case)
    for name in (summary.JSON_FILE, summary.XML_FILE):
        files[f"{BOOTS}{name}"] = layout.reports() / name
    for name, source in project.sources.items():
        fetched = Path(Fetched.read(layout.fetched(name)).path)
        files[release_format.source_file(fetched.name)] = fetched
        for patch in source.patches:
            files[release_format.patch_file(name, patch.name)] = patch
    return dict(sorted(files.items()))


def _verdicts(project: Project, layout: Layout) -> list[Verdict]:
    verdicts = []
    for case in sorted(project.boots):
        try:
            verdict = Verdict.read(layout.verdict(case))
        except UserError:
            raise UserError(
                f"cannot publish: boot case {case} has no verdict ({layout.verdict(case)}); run doit all"
            ) from None
        if not verdict.passed:
            raise UserError(f"cannot publish: boot case {case} did not pass ({verdict.observed.value}); fix it first")
        verdicts.append(verdict)
    return verdicts


def refresh_summary(project: Project, layout: Layout) -> list[Verdict]:
    """Write reports/summary.json and .xml from every case's verdict (what `doit all` reports at its end): the
    last run's summary may cover only the cases that run selected. Refuses a case without a passing verdict."""
    verdicts = _verdicts(project, layout)
    summary.write(verdicts, layout.reports())
    return verdicts


def _check_present(files: Mapping[str, Path]) -> None:
    missing = [str(path) for path in files.values() if not path.is_file()]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise UserError(f"cannot publish: {len(missing)} file(s) missing: {', '.join(missing[:3])}{more}; run doit all")


# --- manifest ---


def _first_line(text: str) -> str:
    return text.splitlines()[0].strip() if text.strip() else ""


def _package_version(package: str, runner: Runner) -> str:
    """The installed Debian version of `package` ("" where dpkg does not know it, or there is no dpkg)."""
    if not package:
        return ""
    try:
        return runner.query(["dpkg-query", "-W", "-f=${Version}", package])
    except UserError:
        return ""


def tool_facts(project: Project, runner: Runner = RUNNER) -> dict[str, dict[str, str]]:
    """The tools the build ran: version (first line of --version), Debian package and its installed version."""
    prefix = project.toolchain.cross_prefix
    commands = {"gcc": f"{prefix}gcc", "binutils": f"{prefix}ld", "make": "make", "qemu": project.toolchain.qemu}
    tools = {}
    for tool, command in commands.items():
        package = package_of(command)
        tools[tool] = {
            "version": _first_line(runner.query([command, "--version"])),
            "package": package,
            "package_version": _package_version(package, runner),
        }
    # OpenSBI is QEMU's firmware, a file rather than a command: its package's version is its version.
    version = _package_version("opensbi", runner)
    tools["opensbi"] = {"version": version, "package": "opensbi", "package_version": version}
    return tools


def build_manifest(
    project: Project,
    layout: Layout,
    files: Mapping[str, Path],
    name: str,
    vcs: Vcs,
    runner: Runner = RUNNER,
    digests: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The deterministic facts of a release: no wall-clock, no host, no absolute build paths.

    `digests` (release path -> sha256) saves hashing the files again when the caller has them."""
    digests = dict(digests) if digests is not None else {path: sha256_of(source) for path, source in files.items()}
    sources = []
    for source_name, source in sorted(project.sources.items()):
        fetched = Fetched.read(layout.fetched(source_name))
        file = release_format.source_file(Path(fetched.path).name)
        if digests.get(file) != fetched.sha256:
            raise UserError(
                f"cannot publish: {fetched.path} is not the file fetched for {source_name} (sha256 "
                f"{fetched.sha256[:16]}...); rerun doit fetch:{source_name}"
            )
        patches = [
            {"name": patch.name, "file": release_format.patch_file(source_name, patch.name), "sha256": sha256_of(patch)}
            for patch in source.patches
        ]
        sources.append(
            {
                "name": source_name,
                "version": fetched.version,
                "file": file,
                "sha256": fetched.sha256,
                "origin": fetched.origin,
                "origin_kind": fetched.origin_kind,
                "package": fetched.package,
                "package_version": fetched.package_version,
                "trust": fetched.trust,
                "license": source.license,
                "download_location": source.download_location,
                "patches": patches,
            }
        )
    configs = {}
    for variant in sorted(project.variants):
        configs[f"kernel-{variant}"] = {
            "fragment_sha256": digests[f"{variant}/fragment.config"],
            "config_sha256": digests[f"{variant}/config"],
        }
        if project.toolchain.busybox is not None:
            configs[f"busybox-{variant}"] = {
                "fragment_sha256": sha256_of(busybox.build_dir(layout, project.variants[variant]) / "fragment.config"),
                "config_sha256": digests[f"{variant}/busybox.config"],
            }
    boots = [verdict.facts() for verdict in _verdicts(project, layout)]
    from mmulab.release import page  # the page's notes ride in the manifest: the page is a function of the release

    return {
        "format": FORMAT,
        "release": name,
        "project": {
            "name": "mmulab",
            "version": project_version(),
            "commit": vcs.commit,
            "describe": vcs.describe,
            "dirty": vcs.dirty,
        },
        "source_date_epoch": project.settings.source_date_epoch,
        "sources": sources,
        "tools": tool_facts(project, runner),
        "configs": configs,
        "boots": boots,
        "demos": page.manifest_demos(project),
        "files": dict(sorted(digests.items())),
    }


def drawn_charts(manifest: Mapping[str, Any], files: Mapping[str, Path], verdicts: list[Verdict]) -> dict[str, bytes]:
    """The release's charts by path, drawn as verify draws them again: from the consoles the release takes,
    the manifest's demos and boots, and the boot seconds run.json will hold. One that cannot be drawn (a
    malformed data line) is refused, naming the console's file in the build directory."""
    seconds = {verdict.case: verdict.seconds for verdict in verdicts if verdict.seconds is not None}
    drawn, troubles = figures.draw(manifest, lambda path: files[path].read_bytes() if path in files else None, seconds)
    if troubles:
        trouble = troubles[0]
        where = files.get(trouble.path, trouble.path)
        raise UserError(f"cannot publish: {where}: {trouble}")
    return drawn


def with_charts(manifest: Mapping[str, Any], charts: Mapping[str, bytes]) -> dict[str, Any]:
    """The manifest listing the charts with every other file (hashed: a signed statement covers them) and
    recording the matplotlib that drew them."""
    listed = {**manifest["files"], **{path: hashlib.sha256(svg).hexdigest() for path, svg in charts.items()}}
    return {**manifest, figures.CHARTS_KEY: figures.record(), "files": dict(sorted(listed.items()))}


def dumps(document: Any) -> str:
    """JSON as every release file writes it: keys sorted, indent 2, trailing newline."""
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


# --- SHA256SUMS and the tarball ---


def _walk(root: Path) -> list[str]:
    """Every file under `root` as a POSIX relative path, sorted."""
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())


def sha256sums(root: Path) -> str:
    """`<sha256>  <path>` for every file but SHA256SUMS, sorted by path: what `sha256sum -c` reads in `root`."""
    return "".join(f"{sha256_of(root / path)}  {path}\n" for path in _walk(root) if path != SUMS)


def _mode(path: Path) -> int:
    return 0o755 if path.is_dir() or path.stat().st_mode & 0o111 else 0o644


def _tar_entry(root: Path, relative: str, prefix: str, epoch: int) -> tuple[bytes, Path | None]:
    """One member's GNU tar header (owner 0/0 without names, mtime `epoch`, mode 0644/0755) and its file."""
    path = root / relative if relative else root
    info = tarfile.TarInfo(f"{prefix}/{relative}".rstrip("/"))
    info.mtime, info.mode = epoch, _mode(path)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if path.is_dir():
        info.type = tarfile.DIRTYPE
        return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape"), None
    info.size = path.stat().st_size
    return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape"), path


def _xz(data: bytes) -> bytes:
    return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=XZ_PRESET)


def _cached_xz(segment: bytes, cache: Path | None) -> bytes:
    """One xz stream of `segment`, from `cache` (keyed by the segment's sha256) when it was made before."""
    if cache is None:
        return _xz(segment)
    entry = cache / f"{hashlib.sha256(segment).hexdigest()}-p{XZ_PRESET}.xz"
    if entry.is_file():
        return entry.read_bytes()
    stream = _xz(segment)
    write_atomic(entry, stream)
    return stream


def write_tarball(root: Path, out: Path, epoch: int, prefix: str | None = None, cache: Path | None = None) -> None:
    """`root` as a reproducible .tar.xz under `prefix/` (default root's name): members sorted, owner 0/0 without
    names, mtime `epoch`, modes 0644/0755, GNU format (no pax timestamps), xz at a fixed preset. Same input, same
    bytes. Written through a temporary sibling.

    The xz file is a concatenation of xz streams (every xz reader takes that): one for each large source tarball
    and one for everything else. A source tarball's stream is kept in `cache` by content, so publishing after a
    rebuild does not compress the 150 MB kernel source again (xz does ~10 MB/s here).
    """
    prefix = root.name if prefix is None else prefix
    entries = sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_dir() or path.is_file())
    streams: list[bytes] = []
    pending, length = bytearray(), 0
    for relative in ["", *entries]:
        header, path = _tar_entry(root, relative, prefix, epoch)
        data = path.read_bytes() if path else b""
        body = data + tarfile.NUL * (-len(data) % tarfile.BLOCKSIZE)
        length += len(header) + len(body)
        pending += header  # the header names the release: it stays out of the cached stream
        if relative.startswith(SOURCES) and len(data) >= CACHED_SEGMENT_BYTES:
            streams.append(_xz(bytes(pending)))
            streams.append(_cached_xz(body, cache))
            pending = bytearray()
        else:
            pending += body
    end = 2 * tarfile.BLOCKSIZE  # the end-of-archive blocks, then padding to a whole record, as tar writes
    end += -(length + end) % tarfile.RECORDSIZE
    streams.append(_xz(bytes(pending) + tarfile.NUL * end))
    write_atomic(out, b"".join(streams), 0o644)


# --- publishing ---


def _provenance(root: Path, manifest: Mapping[str, Any], key: signing.SigningKey | None) -> str:
    """The in-toto statement, its subjects the manifest's files; signed (`key`), a DSSE envelope of a statement
    whose subjects are every file in `root` but itself and SHA256SUMS: written after all of them. verify makes
    the same statement again and compares."""
    if key is None:
        return dumps(documents.made_statement(manifest))
    # The manifest already holds every other file's sha256: only the documents about them are hashed here.
    written = {path: sha256_of(root / path) for path in METADATA if path not in signing.NOT_SUBJECTS}
    subjects = {**manifest["files"], **written}
    return dumps(signing.sign_payload(dumps(documents.made_statement(manifest, subjects)).encode(), key))


def _run_facts(verdicts: list[Verdict]) -> dict[str, Any]:
    """What differs from run to run by nature: when, where, and how long each boot took."""
    return {
        "published_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": socket.gethostname(),
        "boot_seconds": {verdict.case: verdict.seconds for verdict in verdicts},
    }


def _identity(root: Path, path: str) -> str:
    """What must be the same in two publishes of one release: a file's sha256; for a signed provenance, whose
    statement names run.json's sha256 (new each time), the statement without that subject and who signed it."""
    digest = sha256_of(root / path)
    if path != PROVENANCE:
        return digest
    try:
        document = json.loads((root / path).read_bytes())
        if not isinstance(document, dict) or not signing.is_envelope(document):
            return digest
        opened = signing.open_envelope(document)
    except (ValueError, RecursionError):  # BadEnvelope is a ValueError
        return digest
    statement = dict(opened.statement)
    subjects = statement.get("subject")
    if isinstance(subjects, list):
        statement["subject"] = [s for s in subjects if not isinstance(s, dict) or s.get("name") != RUN]
    return dumps({"signed_by": sorted(opened.keyids), "statement": statement})


def differing(new: Path, old: Path) -> list[str]:
    """The release paths whose bytes differ between two release trees (or exist in one only); run.json and
    SHA256SUMS (which hashes run.json) aside, and a signed statement's subject run.json."""
    skipped = {RUN, SUMS}
    first, second = set(_walk(new)) - skipped, set(_walk(old)) - skipped
    return [
        path
        for path in sorted(first | second)
        if path not in first or path not in second or _identity(new, path) != _identity(old, path)
    ]


def _fill(tmp: Path, files: Mapping[str, Path], documents: Mapping[str, str | bytes]) -> None:
    for path, source in files.items():
        target = tmp / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        os.chmod(target, 0o755 if source.stat().st_mode & 0o111 else 0o644)
    for path, text in documents.items():
        (tmp / path).parent.mkdir(parents=True, exist_ok=True)  # charts/
        write_atomic(tmp / path, text, 0o644)
    for directory in [tmp, *(p for p in tmp.rglob("*") if p.is_dir())]:
        os.chmod(directory, 0o755)


def _exclusions(project: Project, root: Path) -> tuple[str, ...]:
    """The build and artifacts directories, where they lie inside the checkout: never make it dirty."""
    inside = []
    for path in (project.settings.build_dir, project.settings.artifacts_dir):
        if path.is_relative_to(root):
            inside.append(path.relative_to(root).as_posix())
    return tuple(inside)


def _place(tmp: Path, final: Path, name: str) -> bool:
    """Rename the finished release into place (True), or find the same release there already (False); a
    different one there is refused, naming the files that differ."""
    if not final.exists():
        try:
            os.rename(tmp, final)
            return True
        except OSError:
            if not final.exists():
                raise
    changed = differing(tmp, final)  # published before, or by a concurrent run a moment ago
    if changed:
        more = f" and {len(changed) - 10} more" if len(changed) > 10 else ""
        raise UserError(
            f"release {name} already published at {final} with different bytes in: {', '.join(changed[:10])}"
            f"{more}; a release never changes: publish under another --release name"
        )
    return False


def publish(
    project: Project,
    name: str = "",
    allow_dirty: bool = False,
    root: Path = PROJECT_ROOT,
    runner: Runner = RUNNER,
    sign: Path | None = None,
) -> Path:
    """Publish the build directory's release as artifacts/<name>/ and <name>.tar.xz; return the directory.

    `name` "" means mmulab-<version>-<git describe>. A dirty checkout (`root`) is refused unless `allow_dirty`.
    `sign`: an Ed25519 private key (PEM) that signs the provenance, read before anything is written.
    """
    settings = project.settings
    key = signing.load_signing_key(sign) if sign is not None else None
    if settings.linux_src:
        raise UserError("cannot publish a build of LINUX_SRC (the kernel source is not a pinned source); unset it")
    vcs = vcs_state(root, runner, _exclusions(project, root))
    if vcs.dirty and not allow_dirty:
        raise UserError(
            f"{root}: the git tree has uncommitted changes (git status --porcelain); commit them, or publish with "
            "doit publish --allow-dirty (MMULAB_ALLOW_DIRTY=1)"
        )
    name = check_name(name or default_name(vcs, project_version(root)))
    layout = Layout(project.build_root(), settings.linux_src)
    verdicts = refresh_summary(project, layout)
    files = release_files(project, layout)
    _check_present(files)
    digests = {path: sha256_of(source) for path, source in files.items()}
    manifest = build_manifest(project, layout, files, name, vcs, runner, digests)
    charts = drawn_charts(manifest, files, verdicts)
    manifest = with_charts(manifest, charts)
    artifacts = settings.artifacts_dir
    artifacts.mkdir(parents=True, exist_ok=True)
    final, tarball = artifacts / name, artifacts / f"{name}.tar.xz"
    xz_cache = settings.download_dir / ".xz-streams"  # beside the sources whose streams it keeps
    tmp = Path(tempfile.mkdtemp(dir=artifacts, prefix=f".{name}.", suffix=".tmp"))
    try:
        _fill(tmp, files, {**charts, MANIFEST: dumps(manifest)})
        _fill(tmp, {}, {**documents.made_from_manifest(tmp, manifest), RUN: dumps(_run_facts(verdicts))})
        write_atomic(tmp / PROVENANCE, _provenance(tmp, manifest, key), 0o644)  # signed, it covers all the above
        write_atomic(tmp / SUMS, sha256sums(tmp), 0o644)  # last: it covers every other file
        placed = _place(tmp, final, name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not placed:
        shutil.rmtree(tmp)
        if not tarball.exists():
            write_tarball(final, tarball, settings.source_date_epoch, cache=xz_cache)
        print(f"release {name} already published with identical bytes ({final})")
        return final
    write_tarball(final, tarball, settings.source_date_epoch, cache=xz_cache)
    count = len(_walk(final))
    size = tarball.stat().st_size / 1e6
    signed = f"; signed by key {key.keyid}" if key else ""
    print(f"release {name}: {count} files in {final}; {tarball} ({size:.1f} MB){signed}")
    return final
