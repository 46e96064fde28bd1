"""A console's measurements as typed series: the `mmulab: data:` lines the demos print, and the MMU kernel's own
memory-layout lines as the built-in chart `kspace`. Pure (no matplotlib): the page, verify and the catalogue
all read a console the same way, and a malformed line is a typed problem, never dropped.

    mmulab: data: <chart> <series> <x> <y>
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from mmulab.project.model import CHART_NAME

DATA_PREFIX = "mmulab: data:"
KSPACE_CHART = "kspace"  # the chart the kernel's "Virtual kernel memory layout:" lines become
MAX_CHARTS = 8  # charts of one console: a demo draws one to three; each is a matplotlib panel (~0.1 s, ~1 MB)
MAX_SERIES = 32  # series of one chart (the kernel's layout has about a dozen regions)
KSPACE_PROCESS = "virtual"  # its series are virtual.<region> (virtual.vmalloc, virtual.pci_io, ...)

_NUMBER = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F]{1,16}|(?:\d{1,40}(?:\.\d{0,40})?|\.\d{1,40})(?:[eE][+-]?\d{1,3})?)")
_LABEL = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,31}")
NONE_WORD = "none"  # y: "this kernel has no such thing", drawn as such, never as zero
# "[    0.000000]      vmalloc : 0xff20000000000000 - 0xff60000000000000   (16384 TB)"
_TIMESTAMP = r"(?:\[\s*\d+\.\d+\]\s*)?"
_LAYOUT_HEADER = re.compile(rf"{_TIMESTAMP}Virtual kernel memory layout:\s*")
_LAYOUT_LINE = re.compile(
    rf"{_TIMESTAMP}\s*(?P<region>[a-z][a-z0-9 _-]{{0,30}}?)\s*:\s*0x(?P<start>[0-9a-f]{{1,16}})\s*-\s*"
    r"0x(?P<end>[0-9a-f]{1,16})\s*(?:\(.*\))?\s*"
)


class Reason(StrEnum):
    """What is wrong with a data line (a DataProblem's reason; a StrEnum, so it reads as the words)."""

    FIELDS = "expected 4 fields after 'mmulab: data:' (<chart> <series> <x> <y>)"
    CHART = "the chart name is not lower case letters, digits, _ . - (at most 32)"
    SERIES = "the series name is not lower case letters, digits, _ . - (at most 32)"
    X = "x is neither a number (12, 1.5, 0x1f) nor a label (a letter, then letters, digits, _ . : -; at most 32)"
    Y = "y is neither a number (12, 1.5, 0x1f) nor the word none"
    NOT_AT_START = "the data line does not start the console line (output interleaved with it?)"
    CHARTS = f"a chart beyond the {MAX_CHARTS} one console may draw"
    MANY_SERIES = f"a series beyond the {MAX_SERIES} one chart may draw"


@dataclass(frozen=True)
class Point:
    x: float | str  # a number, or a category label (categories keep their first-printed order)
    y: float | None  # None: the word `none`, "this kernel has no such thing"


@dataclass(frozen=True)
class Series:
    """All the points of one (chart, series) pair, in console order."""

    chart: str
    name: str
    points: tuple[Point, ...]


@dataclass(frozen=True)
class DataProblem:
    line_number: int  # 1-based, in the console as saved
    line: str
    reason: str


def _number(token: str) -> float | None:
    """The token as a number (decimal integer, decimal float or 0x hex), or None when it is not one."""
    if not _NUMBER.fullmatch(token):
        return None
    sign = -1 if token.startswith("-") else 1
    body = token.lstrip("+-")
    return sign * float(int(body, 16)) if body[:2].lower() == "0x" else float(token)


def parse_data_line(text: str) -> tuple[str, str, Point] | Reason:
    """One data line's (chart, series, point), from the text after the prefix; the reason when malformed."""
    fields = text.split()
    if len(fields) != 4:
        return Reason.FIELDS
    chart, name, x_text, y_text = fields
    if not CHART_NAME.fullmatch(chart):
        return Reason.CHART
    if not CHART_NAME.fullmatch(name):
        return Reason.SERIES
    x: float | str | None = _number(x_text)
    if x is None:
        if not _LABEL.fullmatch(x_text):
            return Reason.X
        x = x_text
    y = None if y_text == NONE_WORD else _number(y_text)
    if y is None and y_text != NONE_WORD:
        return Reason.Y
    return chart, name, Point(x, y)


def parse_console(text: str) -> tuple[tuple[Series, ...], tuple[DataProblem, ...]]:
    """Every series a console printed (in the order each first appeared) and every malformed data line."""
    points: dict[tuple[str, str], list[Point]] = {}
    problems = []
    in_layout = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip("\r\n\x00")
        if in_layout and (match := _LAYOUT_LINE.fullmatch(line)):
            region = re.sub(r"[^a-z0-9]+", "_", match["region"].strip())
            start, end = float(int(match["start"], 16)), float(int(match["end"], 16))
            key = (KSPACE_CHART, f"{KSPACE_PROCESS}.{region}")
            if key in points or not _too_many(points, KSPACE_CHART):  # else the region is left out of the chart
                points.setdefault(key, []).append(Point(start, end))
            continue
        in_layout = bool(_LAYOUT_HEADER.fullmatch(line))
        where = line.find(DATA_PREFIX)
        if where < 0:
            continue
        if line[:where].strip():
            problems.append(DataProblem(number, line, Reason.NOT_AT_START))
            continue
        parsed = parse_data_line(line[where + len(DATA_PREFIX) :])
        if isinstance(parsed, Reason):
            problems.append(DataProblem(number, line, parsed))
            continue
        chart, name, point = parsed
        if (chart, name) not in points:
            why = _too_many(points, chart)
            if why:
                problems.append(DataProblem(number, line, why))
                continue
        points.setdefault((chart, name), []).append(point)
    series = tuple(Series(chart, name, tuple(values)) for (chart, name), values in points.items())
    return series, tuple(problems)


def _too_many(points: dict[tuple[str, str], list[Point]], chart: str) -> Reason | None:
    """Whether a new series of `chart` goes past the charts' budget (checked before any panel is drawn)."""
    charts = {known for known, _ in points}
    if chart not in charts and len(charts) >= MAX_CHARTS:
        return Reason.CHARTS
    if sum(known == chart for known, _ in points) >= MAX_SERIES:
        return Reason.MANY_SERIES
    return None
