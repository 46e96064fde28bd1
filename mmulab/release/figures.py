"""The release's charts: `charts/<case>.svg` for each console that printed data lines, and `charts/matrix.svg`
(seconds to verdict per case). Which charts a release has, what they are drawn from, and how the page names them.

They are drawn from what the release itself holds, so `mmulab verify` can draw them again and compare bytes: a
case's chart from its console `boots/<case>.log` and the chart declarations its demo had (the manifest's
`demos[].charts`), the matrix from the manifest's boots (outcomes) and run.json's `boot_seconds`. The drawing
itself is mmulab.boot.charts' (matplotlib, imported only when something is drawn); the manifest's `charts`
records which matplotlib drew them, because another version draws other bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mmulab.boot import charts, series
from mmulab.core.errors import UserError
from mmulab.project.model import ChartKind, ChartSpec
from mmulab.release.format import CHARTS, MATRIX_CHART, RUN, chart_file, console_log

CHARTS_KEY = "charts"  # the manifest's record of the charts: {"matplotlib": version}
# The most data lines one console may print: a chart of more would be unreadable, and drawing a stranger's
# 64 MiB console would take minutes. A real demo prints tens.
MAX_DATA_LINES = 4000
# What matplotlib may raise on numbers it cannot draw (huge, or none at all on a log scale).
DRAWING_ERRORS = (ValueError, OverflowError, ZeroDivisionError, TypeError, RecursionError)
PX_PER_PT = 4 / 3  # CSS: 96 px per inch, 72 pt per inch
_SVG_SIZE = re.compile(rb'<svg\b[^>]*?\bwidth="([0-9.]+)(pt|px)?"[^>]*?\bheight="([0-9.]+)(pt|px)?"', re.DOTALL)


class ChartTrouble(Exception):
    """A chart that cannot be drawn from what the release holds: `path` is the release file to blame, `chart`
    the chart it would have drawn."""

    def __init__(self, path: str, detail: str, chart: str) -> None:
        super().__init__(detail)
        self.path = path
        self.chart = chart


def drawing_version() -> str:
    """The matplotlib that draws the charts here (compared with the one a release's manifest names)."""
    return charts.matplotlib_version()


def record() -> dict[str, str]:
    """The manifest's `charts`: which matplotlib drew the release's charts."""
    return {"matplotlib": drawing_version()}


def recorded_version(manifest: Mapping[str, Any]) -> str | None:
    """The matplotlib the manifest says drew the charts (None when it says nothing readable)."""
    stated = manifest.get(CHARTS_KEY)
    version = stated.get("matplotlib") if isinstance(stated, dict) else None
    return version if isinstance(version, str) and version else None


def spec_to_json(spec: ChartSpec) -> dict[str, Any]:
    """A chart declaration as the manifest keeps it."""
    return {"title": spec.title, "kind": str(spec.kind), "x": spec.x, "y": spec.y, "log": spec.log}


def spec_of(name: str, value: Any) -> ChartSpec:
    """A chart declaration (`name`'s) from the manifest; ValueError naming what is malformed."""
    if not isinstance(value, dict) or sorted(value) != ["kind", "log", "title", "x", "y"]:
        raise ValueError("not {title, kind, x, y, log}")
    if not all(isinstance(value[key], str) for key in ("title", "kind", "x", "y")) or not isinstance(
        value["log"], bool
    ):
        raise ValueError("title, kind, x and y must be text, log true or false")
    if value["kind"] not in {str(kind) for kind in ChartKind}:
        raise ValueError(f"kind {value['kind']!r} is not one of {', '.join(str(kind) for kind in ChartKind)}")
    return ChartSpec(name, value["title"], ChartKind(value["kind"]), value["x"], value["y"], value["log"])


def specs_by_case(manifest: Mapping[str, Any]) -> dict[str, dict[str, ChartSpec]]:
    """Each case's chart declarations (its demo's), from the manifest's `demos`; ValueError when malformed."""
    demos = manifest.get("demos", [])
    by_case: dict[str, dict[str, ChartSpec]] = {}
    if not isinstance(demos, list):
        raise ValueError("demos: not a list")
    for number, demo in enumerate(demos):
        if not isinstance(demo, dict):
            raise ValueError(f"demos[{number}]: not an object")
        declared = demo.get("charts", {})
        if not isinstance(declared, dict):
            raise ValueError(f"demos[{number}].charts: not an object")
        try:
            specs = {str(name): spec_of(str(name), value) for name, value in declared.items()}
        except ValueError as exc:
            raise ValueError(f"demos[{number}].charts: {exc}") from None
        cases = demo.get("cases", [])
        for case in cases if isinstance(cases, list) else []:
            if isinstance(case, dict) and isinstance(case.get("case"), str):
                by_case[case["case"]] = specs
    return by_case


def _boots(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    boots = manifest.get("boots", [])
    if not isinstance(boots, list):
        return []
    return [b for b in boots if isinstance(b, dict) and isinstance(b.get("case"), str)]


def plain_case(case: str) -> bool:
    """A case name that is one plain file name (what boots/<case>.log and charts/<case>.svg need)."""
    return bool(case) and not case.startswith(".") and "/" not in case and "\\" not in case


def data_lines(text: str) -> int:
    """How many data lines a console printed (counted before anything is parsed or drawn)."""
    return sum(1 for line in text.splitlines() if line.lstrip().startswith(series.DATA_PREFIX))


def draw(
    manifest: Mapping[str, Any], read: Callable[[str], bytes | None], seconds: Mapping[str, float]
) -> tuple[dict[str, bytes], list[ChartTrouble]]:
    """Every chart of the release by path (sorted) and the troubles of those that cannot be drawn.

    `read(name)` gives a release file's bytes, None when the release has no such file (verify's reads are
    bounded: what they raise is the caller's); `seconds` are the boot seconds per case."""
    specs = specs_by_case(manifest)
    drawn: dict[str, bytes] = {}
    troubles: list[ChartTrouble] = []
    boots = _boots(manifest)
    for entry in boots:
        case = entry["case"]
        log = console_log(case)
        console = read(log) if plain_case(case) else None
        if console is None:
            continue
        text = console.decode("utf-8", errors="replace")
        count = data_lines(text)
        if count > MAX_DATA_LINES:
            troubles.append(
                ChartTrouble(log, f"{count} data lines, more than a chart draws ({MAX_DATA_LINES})", chart_file(case))
            )
            continue
        try:
            svg = charts.draw_case(case, str(entry.get("variant", "")), text, specs.get(case, {}))
        except UserError as exc:  # a malformed data line, told by the charts' own line
            troubles.append(ChartTrouble(log, str(exc), chart_file(case)))
            continue
        except DRAWING_ERRORS as exc:  # numbers matplotlib cannot draw (a stranger's console)
            detail = f"its data lines cannot be drawn ({type(exc).__name__}: {exc})"
            troubles.append(ChartTrouble(log, detail, chart_file(case)))
            continue
        if svg is not None:
            drawn[chart_file(case)] = svg
    outcomes = {entry["case"]: str(entry.get("observed", "")) for entry in boots}
    missing = sorted(case for case in outcomes if case not in seconds)
    if missing:
        troubles.append(ChartTrouble(RUN, f"no boot_seconds for {', '.join(missing[:3])}", MATRIX_CHART))
    else:
        drawn[MATRIX_CHART] = charts.draw_matrix({case: float(seconds[case]) for case in outcomes}, outcomes)
    return dict(sorted(drawn.items())), troubles


def is_chart(path: str) -> bool:
    """Whether a release path is one of the release's charts."""
    return path.startswith(CHARTS)


def source_of(chart: str) -> str:
    """What a chart is drawn from, in words for a problem line."""
    if chart == MATRIX_CHART:
        return "the manifest's boots and run.json's boot_seconds"
    return console_log(chart.removeprefix(CHARTS).removesuffix(".svg"))


# ---------------------------------------------------------------------------------------------------------------
# On the page


@dataclass(frozen=True)
class Picture:
    """A chart as the page shows it: its link, size in CSS pixels and what it shows in words."""

    src: str
    alt: str
    width: int
    height: int


def size_of(svg: bytes) -> tuple[int, int]:
    """An SVG's width and height in CSS pixels, from its root element (matplotlib writes them in pt)."""
    match = _SVG_SIZE.search(svg[:4096])
    if match is None:
        raise ValueError("an SVG without width and height")
    width, height = float(match.group(1)), float(match.group(3))
    scale = (PX_PER_PT if match.group(2) != b"px" else 1.0, PX_PER_PT if match.group(4) != b"px" else 1.0)
    return round(width * scale[0]), round(height * scale[1])


def describe_case(case: str, variant: str, text: str, specs: Mapping[str, ChartSpec]) -> str:
    """The alt text of a case's chart: which kernel, and each chart's title, axes and series."""
    found, _ = series.parse_console(text)
    charts: dict[str, list[str]] = {}
    for one in found:
        charts.setdefault(one.chart, []).append(one.name)
    told = []
    for chart, names in charts.items():
        spec = specs.get(chart)
        title, axes = (spec.title, f"{spec.y} against {spec.x}") if spec else (chart, "y against x")
        shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
        told.append(f"{title} ({axes}; {shown})")
    return f"Charts of {case} on the {variant} kernel: {'; '.join(told)}"


def describe_matrix(cases: int) -> str:
    """The alt text of the matrix chart."""
    return f"Seconds from boot to verdict for each of the {cases} boot cases, bars marked by outcome"
