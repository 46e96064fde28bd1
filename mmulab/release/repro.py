"""`doit repro`: prove the build reproducible instead of assuming it.

Everything is built twice from empty build directories at two different paths (the first under the build
directory, the second outside the checkout, in the system's temporary folder, at another depth), without the
compile cache and then through it, under a different umask, locale and time zone, one after the other (so at
another wall-clock time; SOURCE_DATE_EPOCH fixed), and every file a release would contain is compared. Each
difference is named; where diffoscope is installed it shows where inside the file. (libfaketime was tried for a
larger clock jump: Kbuild's probe of a rustup `rustc` hangs or panics under it, so the clock is the real one,
recorded per build in the report.)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from mmulab.core.doitcli import doit_argv
from mmulab.core.errors import UserError
from mmulab.core.fsutil import sha256_of, write_atomic
from mmulab.core.paths import Layout
from mmulab.project.loader import load_project
from mmulab.project.model import Project
from mmulab.release.publish import VOLATILE, release_files

DIFFOSCOPE_LINES = 40


@dataclass(frozen=True)
class Environment:
    """How one of the two builds runs: where, and under which umask, locale, time zone and clock."""

    name: str
    build_dir: Path
    umask: int
    locale: str
    timezone: str
    ccache: bool

    def describe(self) -> str:
        cache = "on" if self.ccache else "off"
        return f"{self.build_dir} (umask {self.umask:03o}, LC_ALL={self.locale}, TZ={self.timezone}, ccache {cache})"


@dataclass(frozen=True)
class Difference:
    path: str
    first: str
    second: str
    detail: str = ""


def outside_folder(root: Path) -> Path:
    """Where the second build goes: the system's temporary folder, outside the checkout (named after `root`, so
    two build directories' runs never share it)."""
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"mmulab-repro-{os.getuid()}-{digest}"


def environments(root: Path, outside: Path) -> tuple[Environment, Environment]:
    """Two build directories at different depths, one inside `root` and one `outside` (the checkout), the first
    compiled for real, the second through the compile cache, and all else that may leak into a build changed."""
    return (
        Environment("first", root / "first", 0o022, "C.UTF-8", "UTC", ccache=False),
        Environment(
            "second", outside / "second" / "at" / "another" / "depth", 0o077, "C", "Pacific/Auckland", ccache=True
        ),
    )


def _build(project: Project, env: Environment, log_dir: Path) -> str:
    """A cold `doit all` in `env`, as a separate process (doit's own run, its own lock and database)."""
    if env.build_dir.exists():
        shutil.rmtree(env.build_dir)
    env.build_dir.mkdir(parents=True)
    command = doit_argv(["run", "all"])
    variables = {
        **os.environ,
        "MMULAB_BUILD_DIR": str(env.build_dir),
        "LC_ALL": env.locale,
        "LANG": env.locale,
        "TZ": env.timezone,
        "SOURCE_DATE_EPOCH": str(project.settings.source_date_epoch),
        "MMULAB_PROGRESS": "plain",
        # The first compiles for real and stores nothing in the cache; the second's objects come through ccache
        # (hits from earlier builds, or misses): what it serves must be the same bytes.
        "MMULAB_CCACHE": "1" if env.ccache else "0",
    }
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"repro: building {env.name} in {env.describe()} at {started}", flush=True)
    log = log_dir / f"{env.name}.log"
    with log.open("wb") as sink:
        code = subprocess.call(command, env=variables, stdout=sink, stderr=subprocess.STDOUT, umask=env.umask)
    if code != 0:
        raise UserError(f"repro: the {env.name} build failed (exit {code}); its output: {log}")
    return started


def _diffoscope(first: Path, second: Path) -> str:
    if not shutil.which("diffoscope"):
        return ""
    result = subprocess.run(
        ["diffoscope", "--no-progress", "--text", "-", str(first), str(second)],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = result.stdout.splitlines()
    more = [f"... ({len(lines) - DIFFOSCOPE_LINES} more lines)"] if len(lines) > DIFFOSCOPE_LINES else []
    return "\n".join(lines[:DIFFOSCOPE_LINES] + more)


def compare(first: dict[str, Path], second: dict[str, Path]) -> list[Difference]:
    """Every release file that differs (or exists on one side only), volatile ones excepted."""
    differences = []
    for path in sorted(set(first) | set(second)):
        if path.startswith(VOLATILE):
            continue
        if path not in first or path not in second:
            presence = ["present" if path in side else "missing" for side in (first, second)]
            differences.append(Difference(path, *presence))
            continue
        a, b = sha256_of(first[path]), sha256_of(second[path])
        if a != b:
            differences.append(Difference(path, a, b, _diffoscope(first[path], second[path])))
    return differences


def run(project: Project, root: Path, build: Callable[[Project, Environment, Path], str] = _build) -> list[Difference]:
    """Build twice and compare; write <root>/report.json; return the differences (none is the goal).

    The second build's folder outside the checkout is removed when the builds agree, kept (and named in the
    report) when they differ."""
    started = time.monotonic()
    outside = outside_folder(root)
    builds = environments(root, outside)
    root.mkdir(parents=True, exist_ok=True)
    files, started_at = [], []
    try:
        for env in builds:
            started_at.append(build(project, env, root))
            rebuilt = load_project(replace(project.settings, build_dir=env.build_dir))
            files.append(release_files(rebuilt, Layout(rebuilt.build_root())))
        differences = compare(*files)
    except BaseException:
        shutil.rmtree(outside, ignore_errors=True)
        raise
    if not differences:
        shutil.rmtree(outside, ignore_errors=True)
    report = {
        "builds": [f"{env.describe()} at {at}" for env, at in zip(builds, started_at, strict=True)],
        "files_compared": len([p for p in files[0] if not p.startswith(VOLATILE)]),
        "differences": [asdict(d) for d in differences],
        "kept": str(builds[1].build_dir) if differences else "",
        "seconds": round(time.monotonic() - started, 1),
        "diffoscope": bool(shutil.which("diffoscope")),
    }
    write_atomic(root / "report.json", json.dumps(report, indent=2) + "\n")
    return differences
