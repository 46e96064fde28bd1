"""`doit repro`: prove the build reproducible instead of assuming it.

Everything is built twice from empty build directories at two different paths, under a different umask,
locale and time zone, one after the other (so at another wall-clock time; SOURCE_DATE_EPOCH fixed), and
every file a release would contain is compared. Each difference is named; where diffoscope is installed it
shows where inside the file. (libfaketime was tried for a larger clock jump: Kbuild's probe of a rustup
`rustc` hangs or panics under it, so the clock is the real one, recorded per build in the report.)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from .configdata import Project, load_project
from .errors import UserError
from .fsutil import sha256_of, write_atomic
from .paths import Layout
from .release import VOLATILE, release_files
from .settings import PROJECT_ROOT

DIFFOSCOPE_LINES = 40


@dataclass(frozen=True)
class Environment:
    """How one of the two builds runs: where, and under which umask, locale, time zone and clock."""

    name: str
    build_dir: Path
    umask: int
    locale: str
    timezone: str

    def describe(self) -> str:
        return f"{self.build_dir} (umask {self.umask:03o}, LC_ALL={self.locale}, TZ={self.timezone})"


@dataclass(frozen=True)
class Difference:
    path: str
    first: str
    second: str
    detail: str = ""


def environments(root: Path) -> tuple[Environment, Environment]:
    """Two build directories at different depths, and everything else that may leak into a build changed."""
    return (
        Environment("first", root / "first", 0o022, "C.UTF-8", "UTC"),
        Environment("second", root / "second" / "at" / "another" / "depth", 0o077, "C", "Pacific/Auckland"),
    )


def _build(project: Project, env: Environment) -> str:
    """A cold `doit all` in `env`, as a separate process (doit's own run, its own lock and database)."""
    if env.build_dir.exists():
        shutil.rmtree(env.build_dir)
    env.build_dir.mkdir(parents=True)
    command = [sys.executable, "-m", "doit", "run", "-f", str(PROJECT_ROOT / "dodo.py"), "-d", str(PROJECT_ROOT)]
    command.append("all")
    variables = {
        **os.environ,
        "MMULAB_BUILD_DIR": str(env.build_dir),
        "LC_ALL": env.locale,
        "LANG": env.locale,
        "TZ": env.timezone,
        "SOURCE_DATE_EPOCH": str(project.settings.source_date_epoch),
        "MMULAB_PROGRESS": "plain",
        # Each build compiles for real: the second taking the first's objects from ccache would prove nothing.
        "MMULAB_CCACHE": "0",
    }
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"repro: building {env.name} in {env.describe()} at {started}", flush=True)
    log = env.build_dir.parent / f"{env.name}.log"
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


def run(project: Project, root: Path) -> list[Difference]:
    """Build twice and compare; write <root>/report.json; return the differences (none is the goal)."""
    started = time.monotonic()
    builds = environments(root)
    files, started_at = [], []
    for env in builds:
        started_at.append(_build(project, env))
        rebuilt = load_project(replace(project.settings, build_dir=env.build_dir))
        files.append(release_files(rebuilt, Layout(env.build_dir)))
    differences = compare(*files)
    report = {
        "builds": [f"{env.describe()} at {at}" for env, at in zip(builds, started_at, strict=True)],
        "files_compared": len([p for p in files[0] if not p.startswith(VOLATILE)]),
        "differences": [asdict(d) for d in differences],
        "seconds": round(time.monotonic() - started, 1),
        "diffoscope": bool(shutil.which("diffoscope")),
    }
    write_atomic(root / "report.json", json.dumps(report, indent=2) + "\n")
    return differences
