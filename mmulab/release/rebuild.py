"""`mmulab verify --rebuild`: rebuild a checked release offline, from its own sources, and compare the bytes.

The release's own sources/ seed a temporary download cache (only what this checkout pins, or what the user
accepted by name), the real pipeline runs offline in a temporary build directory with the manifest's
SOURCE_DATE_EPOCH, and every non-volatile release file must come out byte for byte the same.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, TextIO

from mmulab.core.doitcli import doit_argv
from mmulab.core.errors import ExitCode, UserError, say
from mmulab.core.fsutil import CHUNK, sha256_of
from mmulab.core.settings import PROJECT_ROOT

if TYPE_CHECKING:
    from mmulab.core.paths import Layout
    from mmulab.project.model import Project

from mmulab.release.archive import inside_path
from mmulab.release.check import Problem, ProblemKind, release_listing
from mmulab.release.format import MANIFEST, METADATA, patch_file


@dataclass(frozen=True)
class Seed:
    """A source tarball of the release put into the temporary download cache, and why it may be used."""

    name: str
    release_path: str  # sources/<file>
    cache_name: str  # the file name the checkout's origin caches it under
    sha256: str
    version: str
    pinned: bool  # False: not pinned by this checkout, used because the user accepted it by name


class UsageError(UserError):
    """The command line asks for something that cannot be (exit 2, like argparse's own errors)."""

    exit_code = ExitCode.BAD_INPUT


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
        raw, sha256 = str(entry.get("file", "")), str(entry.get("sha256", ""))
        path = inside_path(raw)  # as the release's own checks read it ("./sources/x" is sources/x)
        if path is None:
            refusals.append(f"refused: source {name} ({raw}): not a path inside the release")
            continue
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
                f"{pins_file(project, name)}; check it yourself, then --accept-source {name} uses it"
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
        stated = entry.get("name") if isinstance(entry, dict) else None
        source = project.sources.get(stated) if isinstance(stated, str) else None
        if source is None:
            continue
        released = {str(p.get("name")): p for p in entry.get("patches", []) if isinstance(p, dict)}
        ours = {patch.name: patch for patch in source.patches}
        for name in sorted(set(released) | set(ours)):
            where = str(released[name].get("file")) if name in released else patch_file(source.name, name)
            if name not in released:
                problems.append(
                    Problem(ProblemKind.MISSING, where, f"this checkout applies {_shown(ours[name])} to {source.name}")
                )
            elif name not in ours:
                problems.append(
                    Problem(ProblemKind.UNEXPECTED, where, f"this checkout does not patch {source.name} with it")
                )
            elif sha256_of(ours[name]) != released[name].get("sha256"):
                problems.append(
                    Problem(
                        ProblemKind.MISMATCH, where, f"this checkout's {_shown(ours[name])} is {sha256_of(ours[name])}"
                    )
                )
        if list(released) != [p.name for p in source.patches if p.name in released]:
            problems.append(Problem(ProblemKind.MISMATCH, MANIFEST, f"source {source.name}: patches in another order"))
    return problems


def _shown(path: Path) -> str:
    try:
        return path.relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return str(path)


def _accepted_version(seed: Seed, project: Project) -> str:
    """The version an accepted source is pinned as: the release's own; a kernel's must be a point release of the
    series it replaces the pin of (configs/kernels.toml checks), so one that is not is labelled as accepted."""
    from mmulab.kconfig.version import parse_version

    if seed.name != project.toolchain.kernel.source:
        return seed.version or "accepted"
    version = parse_version(seed.version)
    return seed.version if version is not None and version.series == project.series else f"{project.series}.0+accepted"


def _overlay(seeds: list[Seed], project: Project, cache: Path, directory: Path) -> Path | None:
    """A config overlay pinning the accepted, unpinned sources to the release's bytes (the cache hit then
    passes fetch's check); None when every seed is pinned already."""
    accepted = [seed for seed in seeds if not seed.pinned]
    if not accepted:
        return None
    header = "# Written by mmulab verify --rebuild --accept-source: the release's own bytes, accepted by name."
    lines, kernel = [header], [header]
    for seed in accepted:
        patches = ", ".join(json.dumps(str(p)) for p in project.sources[seed.name].patches)
        # The kernel is pinned per series (configs/kernels.toml): the accepted tarball replaces the series' pin.
        table = f'series."{project.series}"' if seed.name == project.toolchain.kernel.source else f"sources.{seed.name}"
        (kernel if table.startswith("series.") else lines).extend(
            [
                f"[{table}]",
                f"version = {json.dumps(_accepted_version(seed, project))}",
                f"sha256 = {json.dumps(seed.sha256)}",
                f"filename = {json.dumps(seed.cache_name)}",
                'hash_source = "accepted with mmulab verify --accept-source"',
                f"patches = [{patches}]",
                f"[[{table}.origins]]",
                'kind = "local-file"',
                f"path = {json.dumps(str(cache / seed.name / seed.cache_name))}",
                "",
            ]
        )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sources.toml").write_text("\n".join(lines) + "\n")
    (directory / "kernels.toml").write_text("\n".join(kernel) + "\n")
    return directory


def pins_file(project: Project, name: str) -> str:
    """Where this checkout pins source `name`: the kernel per series, everything else in sources.toml."""
    if name == project.toolchain.kernel.source:
        return f"configs/kernels.toml (series {project.series})"
    return "configs/sources.toml"


def rebuild_environment(work: Path, epoch: int, overlay: Path | None, series: str = "") -> dict[str, str]:
    """The pipeline's environment for an offline rebuild: the temporary build and download directories, no
    mirrors, no apt archive, no user kernel tree or fragments, this checkout's configs, the release's epoch and
    its kernel series (`series`; this checkout's default when "")."""
    dropped = ("LINUX_SRC", "SOURCE_DATE_EPOCH", "MMULAB_ALLOW_DIRTY", "MMULAB_KERNEL")
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
    if series:
        env["MMULAB_KERNEL"] = series
    return env


def release_series(manifest: dict[str, Any], known: Iterable[str]) -> str:
    """The kernel series of this checkout whose point releases the release's kernel source is ("" if none)."""
    from mmulab.kconfig.version import parse_version

    sources = manifest.get("sources")
    for source in sources if isinstance(sources, list) else []:
        if isinstance(source, dict) and source.get("name") == "linux" and isinstance(source.get("version"), str):
            version = parse_version(source["version"])
            if version is not None and version.series in known:
                return version.series
    return ""


def run_pipeline(env: dict[str, str]) -> int:
    """`doit all` of this checkout in a separate process (its own lock and database), its output on our
    stderr so that stdout keeps only verify's own lines; its exit code."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        sink: int | None = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # a captured stderr (tests): inherit the process's own
        sink = None
    return subprocess.call(doit_argv(["run", "all"]), env=env, stdout=sink, stderr=sink)


def compare_rebuilt(files: dict[str, Path], rebuilt: dict[str, Path], volatile: tuple[str, ...]) -> list[Problem]:
    """Every non-volatile release file against the rebuilt one, byte for byte (derived files excepted)."""
    problems: list[Problem] = []
    wanted = {p for p in files if p not in METADATA} | set(rebuilt)
    for path in sorted(wanted):
        if path.startswith(volatile):
            continue
        if path not in rebuilt:
            problems.append(Problem(ProblemKind.UNEXPECTED, path, "the rebuild does not make it"))
        elif path not in files:
            problems.append(Problem(ProblemKind.MISSING, path, "the rebuild makes it, the release lacks it"))
        elif not _same_bytes(files[path], rebuilt[path]):
            got = sha256_of(rebuilt[path]) if rebuilt[path].is_file() else "nothing"
            problems.append(
                Problem(ProblemKind.MISMATCH, path, f"the rebuild made {got}, the release has {sha256_of(files[path])}")
            )
    return problems


def compare_facts(manifest: dict[str, Any], project: Project, layout: Layout) -> list[Problem]:
    """What the manifest states about the build but does not publish: the busybox fragments' sha256 (hashed,
    not shipped) and each boot case's observed outcome must be the rebuild's too."""
    from mmulab.boot.judge import Verdict
    from mmulab.build import busybox

    problems: list[Problem] = []
    configs = manifest.get("configs")
    if not isinstance(configs, dict):
        configs = {}
    for variant in sorted(project.variants):
        fragment = busybox.build_dir(layout, project.variants[variant]) / "fragment.config"
        stated = configs.get(f"busybox-{variant}", {})
        if project.toolchain.busybox is None or not isinstance(stated, dict) or not fragment.is_file():
            continue
        if stated.get("fragment_sha256") != sha256_of(fragment):
            problems.append(
                Problem(
                    ProblemKind.MISMATCH,
                    MANIFEST,
                    f"configs.busybox-{variant}.fragment_sha256 {stated.get('fragment_sha256')}, the rebuild's is "
                    f"{sha256_of(fragment)}",
                )
            )
    boots = {str(b.get("case")): b for b in manifest.get("boots", []) if isinstance(b, dict)}
    for case in sorted(set(boots) | set(project.boots)):
        if case not in project.boots:
            problems.append(
                Problem(ProblemKind.MISMATCH, MANIFEST, f"boots: {case}: this checkout has no such boot case")
            )
            continue
        try:
            observed = Verdict.read(layout.verdict(case)).observed.value
        except UserError:
            problems.append(Problem(ProblemKind.MISMATCH, MANIFEST, f"boots: {case}: the rebuild left no verdict"))
            continue
        if case not in boots:
            problems.append(Problem(ProblemKind.MISMATCH, MANIFEST, f"boots: {case}: missing (the rebuild booted it)"))
        elif boots[case].get("observed") != observed:
            stated = boots[case].get("observed")
            problems.append(
                Problem(ProblemKind.MISMATCH, MANIFEST, f"boots: {case}: observed {stated!r}, the rebuild {observed!r}")
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
    from mmulab.core.paths import Layout
    from mmulab.core.settings import Settings
    from mmulab.project.loader import load_project

    checkout = load_project(Settings.from_environment(rebuild_environment(Path("/nonexistent"), 0, None)))
    series = release_series(manifest, checkout.kernel_series)
    if series and series != checkout.series:  # a release of another kernel series is rebuilt as that series
        checkout = load_project(Settings.from_environment(rebuild_environment(Path("/nonexistent"), 0, None, series)))
    seeds, refusals = plan_seeds(manifest, checkout, accepted)
    problems = [problem.line() for problem in check_patches(manifest, checkout)]
    epoch = manifest.get("source_date_epoch")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        problems.append(
            Problem(ProblemKind.MISMATCH, MANIFEST, f"source_date_epoch {epoch!r} is not seconds >= 0").line()
        )
    if refusals or problems:
        return [*refusals, *problems], 0
    assert isinstance(epoch, int)
    try:
        from mmulab.release import publish as release
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
            pinned = f"pinned by {pins_file(checkout, seed.name)}"
            why = pinned if seed.pinned else "NOT pinned here; accepted with --accept-source"
            say(f"mmulab: verify: source {seed.name}: {seed.release_path} (sha256 {seed.sha256}): {why}", out)
        overlay = _overlay(seeds, checkout, work / "downloads", work / "overlay")
        env = rebuild_environment(work, epoch, overlay, checkout.series)
        say(f"mmulab: verify: rebuilding offline in {work} (SOURCE_DATE_EPOCH={epoch})", out, flush=True)
        code = run_pipeline(env)
        if code != 0:
            raise UserError(f"--rebuild: the pipeline failed (doit exit {code}); its output is above")
        settings = Settings.from_environment(env)
        project = load_project(replace(settings, build_dir=work / "build"))
        layout = Layout(project.build_root())
        rebuilt = release.release_files(project, layout)
        volatile = tuple(release.VOLATILE)
        compared = [p for p in rebuilt if not p.startswith(volatile) and p not in METADATA]
        found = compare_rebuilt(files, rebuilt, volatile) + compare_facts(manifest, project, layout)
        return [problem.line() for problem in found], len(compared)
