"""The release page (index.html): the boot matrix, each demo's consoles side by side, and the manifest's facts.

`render()` turns a release's manifest (and its boots/<case>.log consoles) into one static HTML page: no
JavaScript, inline CSS, relative links only. The layout and wording live in configs/release/index.html.j2;
autoescaping is on there, because console logs are untrusted text.

The page is a pure function of what the release holds: the manifest (whose "demos" carries each demo's
description and its cases' must lines, from `manifest_demos(project)`), the consoles and this template. The
publisher writes `render(release_root, manifest)` as index.html; `mmulab verify` draws it again and compares bytes.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mmulab.core import templates
from mmulab.core.settings import PROJECT_ROOT
from mmulab.project.model import ChartSpec, Project
from mmulab.release import figures
from mmulab.release.figures import Picture
from mmulab.release.format import INDEX, MATRIX_CHART, METADATA, chart_file, console_log

TEMPLATE = PROJECT_ROOT / "configs" / "release" / "index.html.j2"
# The build shown side by side for each demo: the first language of this list the demo has (else the first).
PREFERRED_LANGUAGES = ("c", "asm")
# Variant columns in this order when the caller gives no case order (then the project's order is used).
PREFERRED_VARIANTS = ("nommu", "mmu")
MARKER_PREFIX = "mmulab:"
MAX_CONSOLE_LINES = 5000  # the page shows at most this many lines of a console; the log file has them all
MAX_CONSOLE_BYTES = 1 << 20  # the page reads the first MiB of a console (a boot prints tens of KB)
MAX_CONSOLES_BYTES = 16 << 20  # and 16 MiB of consoles in all: a later console is shown by its link only
MAX_MUST = 100  # must strings marked per console (a demo has a dozen): each is a search of the console
FAILED_TAIL_LINES = 12  # a failed case also shows its last lines: where it stopped
SHORT_HASH = 12
METADATA_FILES = tuple(name for name in METADATA if name != INDEX)  # linked from the page (itself aside)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class DemoNotes:
    """What the project says about a demo: its description and, per boot case, the lines its console must show."""

    description: str
    must: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # case -> must lines, in the project's order


def demo_notes(project: Project) -> dict[str, DemoNotes]:
    """The page's notes from the project's demos.toml: demo -> description and the must lines of its cases."""
    return {
        name: DemoNotes(demo.description, {case: project.boots[case].must for case in demo.cases})
        for name, demo in project.demos.items()
    }


def manifest_demos(project: Project) -> list[dict[str, Any]]:
    """The manifest's "demos": the page's notes as JSON, a list (the project's order survives sorted keys)."""
    return [
        {
            "name": name,
            "description": note.description,
            "cases": [{"case": case, "must": list(must)} for case, must in note.must.items()],
            "charts": {chart: figures.spec_to_json(spec) for chart, spec in project.demos[name].charts.items()},
        }
        for name, note in demo_notes(project).items()
    ]


def notes_of(manifest: Mapping[str, Any]) -> dict[str, DemoNotes]:
    """The page's notes from a manifest's "demos" (none when it has none); ValueError naming what is malformed."""
    demos = manifest.get("demos", [])
    if not isinstance(demos, list):
        raise ValueError("demos: not a list")
    notes: dict[str, DemoNotes] = {}
    for number, demo in enumerate(demos):
        cases = demo.get("cases") if isinstance(demo, dict) else None
        if (
            not isinstance(demo, dict)
            or not isinstance(demo.get("name"), str)
            or not isinstance(demo.get("description"), str)
            or not isinstance(cases, list)
            or not all(
                isinstance(c, dict)
                and isinstance(c.get("case"), str)
                and isinstance(c.get("must"), list)
                and all(isinstance(line, str) for line in c["must"])
                for c in cases
            )
        ):
            raise ValueError(f"demos[{number}]: not {{name, description, cases: [{{case, must: [text]}}]}}")
        notes[demo["name"]] = DemoNotes(demo["description"], {c["case"]: tuple(c["must"]) for c in cases})
    return notes


@dataclass(frozen=True)
class Line:
    """One console line on the page: its text, whether it is a line the case needed, the lines folded before it."""

    text: str
    marked: bool = False
    gap: int = 0  # lines left out just before this one (shown as a fold)


@dataclass(frozen=True)
class Console:
    """One boot case as the page shows it: the verdict, the lines that matter and the full console."""

    case: str
    demo: str
    language: str
    variant: str
    qemu: str
    expected: str
    observed: str
    passed: bool
    log: str  # relative link to boots/<case>.log, or "" when the release has no such log
    key_lines: tuple[Line, ...] = ()
    full_lines: tuple[Line, ...] = ()
    total_lines: int = 0
    trailing_gap: int = 0
    missing: tuple[str, ...] = ()
    chart: Picture | None = None  # charts/<case>.svg, when its console printed data lines


@dataclass(frozen=True)
class DemoSection:
    """A demo on the page: its description, the chosen build's runs side by side, the other builds' verdicts."""

    name: str
    anchor: str
    description: str
    language: str  # the build shown side by side
    rows: tuple[tuple[Console, ...], ...]  # one row per QEMU option set, one column per variant run
    others: tuple[Console, ...]  # the other builds' verdicts


def render(
    release_root: Path,
    manifest: Mapping[str, Any],
    demos: Mapping[str, DemoNotes] | None = None,
    template: Path = TEMPLATE,
    read: Callable[[Path], bytes] = Path.read_bytes,
) -> str:
    """The release page as HTML. Reads only the release's boots/<case>.log files and the charts the manifest
    lists (for their size), each through `read` (verify's reads are bounded); `demos` gives the descriptions and
    must lines, by default the manifest's (without any, only `mmulab:` lines are picked out of the consoles)."""

    notes = dict(demos) if demos is not None else notes_of(manifest)
    boots = [dict(entry) for entry in manifest.get("boots", ())]
    must = {case: tuple(lines) for note in notes.values() for case, lines in note.must.items()}
    files = manifest.get("files", {})
    specs = figures.specs_by_case(manifest)
    consoles = {}
    left = MAX_CONSOLES_BYTES
    for entry in boots:
        console, used = _console(release_root, entry, must.get(entry["case"]), read, min(left, MAX_CONSOLE_BYTES))
        left -= used
        consoles[entry["case"]] = _with_chart(release_root, console, files, specs.get(console.case, {}), read)
    matrix_chart = None
    if MATRIX_CHART in files:
        size = figures.size_of(read(release_root / MATRIX_CHART))
        matrix_chart = Picture(_href(MATRIX_CHART), figures.describe_matrix(len(consoles)), *size)
    env = templates.environment(template.parent, autoescape=True)
    env.filters["short"] = lambda text: str(text)[:SHORT_HASH]
    env.filters["anchor"] = _anchor
    epoch = int(manifest.get("source_date_epoch", 0))
    return env.get_template(template.name).render(
        release=manifest.get("release", ""),
        format=manifest.get("format", ""),
        project=manifest.get("project", {}),
        epoch=epoch,
        epoch_utc=datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        matrix=list(consoles.values()),
        kernels=kernels_of(manifest),
        series=series_of(manifest),
        matrix_chart=matrix_chart,
        drawn_by=figures.recorded_version(manifest) or "",
        passed=sum(1 for c in consoles.values() if c.passed),
        demos=_sections(consoles, notes),
        sources=manifest.get("sources", []),
        tools=sorted(manifest.get("tools", {}).items()),
        configs=[
            (name, facts, _config_links(name, files)) for name, facts in sorted(manifest.get("configs", {}).items())
        ],
        files=sorted(files.items()),
        metadata=METADATA_FILES,
        href=_href,
    )


def kernels_of(manifest: Mapping[str, Any]) -> list[str]:
    """The kernels a release holds: each variant it boots (in boot order), then any other it has a kernel
    configuration of."""
    booted = [str(entry.get("variant", "")) for entry in manifest.get("boots", ()) if isinstance(entry, Mapping)]
    configured = [name.removeprefix("kernel-") for name in manifest.get("configs", {}) if name.startswith("kernel-")]
    return [kernel for kernel in dict.fromkeys([*booted, *configured]) if kernel]


def series_of(manifest: Mapping[str, Any]) -> list[str]:
    """The Linux series the kernels are built from (major.minor of every linux source), oldest first."""
    versions = {
        ".".join(str(source.get("version", "")).split(".")[:2])
        for source in manifest.get("sources", ())
        if isinstance(source, Mapping) and str(source.get("name", "")).split("-")[0] == "linux"
    }
    numbered = [v for v in versions if re.fullmatch(r"\d+\.\d+", v)]
    return sorted(numbered, key=lambda v: tuple(int(n) for n in v.split(".")))


def _href(path: str) -> str:
    """A relative link to a file of the release (each path segment percent-encoded)."""
    return quote(path, safe="/")


def _anchor(demo: str) -> str:
    """The id of a demo's section."""
    return f"demo-{quote(demo, safe='')}"


def _config_links(name: str, files: Mapping[str, str]) -> list[str]:
    """The published files behind a configs entry (kernel-<v>, busybox-<v>), those the release has."""
    kind, _, variant = name.partition("-")
    wanted = {
        "kernel": [f"{variant}/config", f"{variant}/fragment.config"],
        "busybox": [f"{variant}/busybox.config"],
    }.get(kind, [])
    return [path for path in wanted if path in files]


def _language(entry: Mapping[str, Any]) -> str:
    """The build language of a case: from its build (<demo>-<language>) or its name (<demo>-<language>-<run>)."""
    demo, build = entry.get("demo", ""), entry.get("build", "")
    if isinstance(build, str) and build.startswith(f"{demo}-"):
        return build[len(demo) + 1 :]
    return str(entry["case"]).removeprefix(f"{demo}-").split("-", 1)[0]


def _log_path(release_root: Path, case: str) -> Path | None:
    """boots/<case>.log when it is a plain file name inside the release and exists."""
    if not case or case.startswith(".") or "/" in case or "\\" in case:
        return None
    path = release_root / console_log(case)
    return path if path.is_file() else None


def _read_lines(path: Path, read: Callable[[Path], bytes], limit: int) -> tuple[list[str], int]:
    """The console's lines, from its first `limit` bytes: undecodable bytes and control characters (but tabs)
    become U+FFFD; and the bytes used."""
    data = read(path)[:limit]
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
    lines = [_CONTROL.sub("\N{REPLACEMENT CHARACTER}", line) for line in text.split("\n")]
    return (lines[:-1] if lines[-1] == "" else lines), len(data)


def marked_lines(lines: Sequence[str], must: Iterable[str]) -> tuple[set[int], tuple[str, ...]]:
    """The indexes of the lines that satisfied the must strings, matched in order as boot.judge does,
    and the must strings never seen (beyond MAX_MUST, not searched). One search of the text per string (a
    string never seen used to rescan the console line by line)."""
    text = "\n".join(lines)
    starts = list(itertools.accumulate((len(line) + 1 for line in lines[:-1]), initial=0))
    marked: set[int] = set()
    missing: list[str] = []
    position = 0
    for number, wanted in enumerate(must):
        at = text.find(wanted, starts[position]) if number < MAX_MUST and position < len(lines) else -1
        found = bisect.bisect_right(starts, at) - 1 if at >= 0 and "\n" not in wanted else None
        if found is None:
            missing.append(wanted)
        else:
            marked.add(found)
            position = found + 1
    return marked, tuple(missing)


def _console(
    release_root: Path,
    entry: Mapping[str, Any],
    must: tuple[str, ...] | None,
    read: Callable[[Path], bytes],
    limit: int,
) -> tuple[Console, int]:
    """A case's verdict and console; its must lines are marked (without them, its `mmulab:` lines are)."""
    case = str(entry["case"])
    passed = bool(entry.get("passed", False))
    facts = Console(
        case=case,
        demo=str(entry.get("demo", "")),
        language=_language(entry),
        variant=str(entry.get("variant", "")),
        qemu=str(entry.get("qemu", "default")),
        expected=str(entry.get("expected", "")),
        observed=str(entry.get("observed", "")),
        passed=passed,
        log="",
    )
    path = _log_path(release_root, case)
    if path is None:
        return facts, 0
    if limit <= 0:  # the page's console budget is spent: the log is linked, not shown
        return replace(facts, log=_href(console_log(case))), 0
    lines, used = _read_lines(path, read, limit)
    own = {i for i, line in enumerate(lines) if line.lstrip().startswith(MARKER_PREFIX)}
    marked, missing = marked_lines(lines, must) if must is not None else (own, ())
    tail = set(range(max(0, len(lines) - FAILED_TAIL_LINES), len(lines))) if not passed else set()
    shown = sorted(marked | own | tail)
    key, previous = [], -1
    for index in shown:
        key.append(Line(lines[index], index in marked, gap=index - previous - 1))
        previous = index
    full = tuple(Line(line, i in marked) for i, line in enumerate(lines[:MAX_CONSOLE_LINES]))
    shows = replace(
        facts,
        log=_href(console_log(case)),
        key_lines=tuple(key),
        full_lines=full,
        total_lines=len(lines),
        trailing_gap=len(lines) - previous - 1,
        missing=missing,
    )
    return shows, used


def _with_chart(
    release_root: Path,
    console: Console,
    files: Mapping[str, Any],
    specs: Mapping[str, ChartSpec],
    read: Callable[[Path], bytes],
) -> Console:
    """The console with its chart, when the manifest lists charts/<case>.svg: its size read from the SVG, its
    alt text from the chart declarations and the series the console printed."""
    path = chart_file(console.case)
    if path not in files or not figures.plain_case(console.case):
        return console
    text = "\n".join(line.text for line in console.full_lines)
    alt = figures.describe_case(console.case, console.variant, text, specs)
    return replace(console, chart=Picture(_href(path), alt, *figures.size_of(read(release_root / path))))


def _language_rank(language: str) -> tuple[int, str]:
    """Sort key of a build language: the preferred ones first."""
    rank = PREFERRED_LANGUAGES.index(language) if language in PREFERRED_LANGUAGES else len(PREFERRED_LANGUAGES)
    return rank, language


def _column_key(order: Mapping[str, int]) -> Callable[[Console], tuple[int, bool, int, str]]:
    """Columns in the project's case order; else default QEMU options first, then nommu before mmu."""

    def key(c: Console) -> tuple[int, bool, int, str]:
        variant = PREFERRED_VARIANTS.index(c.variant) if c.variant in PREFERRED_VARIANTS else len(PREFERRED_VARIANTS)
        return order.get(c.case, len(order)), c.qemu != "default", variant, c.case

    return key


def _sections(consoles: Mapping[str, Console], notes: Mapping[str, DemoNotes]) -> list[DemoSection]:
    """One section per demo (the project's order, then any other demo of the manifest in order of appearance)."""
    names = [name for name in notes if any(c.demo == name for c in consoles.values())]
    names += [c.demo for c in consoles.values() if c.demo not in names]
    names = list(dict.fromkeys(names))
    order = {case: i for i, case in enumerate(case for note in notes.values() for case in note.must)}
    sections = []
    for name in names:
        cases = [c for c in consoles.values() if c.demo == name]
        language = min((c.language for c in cases), key=_language_rank)
        column_key = _column_key(order)
        chosen = sorted((c for c in cases if c.language == language), key=column_key)
        rows: dict[str, list[Console]] = {}
        for console in chosen:
            rows.setdefault(console.qemu, []).append(console)
        others = sorted(
            (c for c in cases if c.language != language), key=lambda c: (_language_rank(c.language), column_key(c))
        )
        note = notes.get(name)
        sections.append(
            DemoSection(
                name=name,
                anchor=_anchor(name),
                description=note.description if note else "",
                language=language,
                rows=tuple(tuple(row) for row in rows.values()),
                others=tuple(others),
            )
        )
    return sections
