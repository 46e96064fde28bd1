"""Charts from real boots: one SVG per case from its console's data lines, and the boot matrix's seconds to verdict.

Deterministic bytes: the same console gives the same SVG in any process, folder or user account (matplotlib's
built-in defaults plus fixed values, never the user's matplotlibrc; matplotlib's bundled DejaVu Sans; text kept
as text; a fixed hash salt; no date), so `mmulab verify` can redraw a release's charts and compare. Readable in
black and white: every series also differs by marker, line style or hatch. matplotlib is imported only inside the
drawing functions: a boot or `doit list` never loads it.
"""

from __future__ import annotations

import importlib.metadata
import io
import math
import textwrap
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmulab.boot.judge import Outcome
from mmulab.boot.series import KSPACE_CHART, KSPACE_PROCESS, Series, parse_console
from mmulab.core.errors import ChartError, UserError
from mmulab.project.model import ChartKind, ChartSpec, Project

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.typing import RcKeyType

# Okabe-Ito: told apart by colour-blind readers too; black and white readers go by marker, dash and hatch.
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINE_STYLES = ("-", "--", ":", "-.")
HATCHES = ("//", "\\\\", "xx", "..", "oo", "--", "++", "**")
# Every value that matters for the bytes, over matplotlib's built-in defaults (rcdefaults), never a user's rc.
RC: dict[RcKeyType, Any] = {
    "svg.hashsalt": "mmulab",
    "svg.fonttype": "none",
    "svg.id": None,
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": 9.0,
    "axes.titlesize": 10.0,
    "axes.labelsize": 9.0,
    "legend.fontsize": 8.0,
    "xtick.labelsize": 8.0,
    "ytick.labelsize": 8.0,
    "hatch.linewidth": 0.8,
    "hatch.color": "black",
    "figure.dpi": 100.0,
    "savefig.dpi": 100.0,
    "savefig.bbox": None,
    "savefig.facecolor": "white",
    "savefig.edgecolor": "white",
    "savefig.transparent": False,
    "text.usetex": False,
    "path.simplify": True,
    "axes.unicode_minus": True,
}
WIDTH = 9.0  # inches: every chart the same width
LEFT, RIGHT = 1.3, 2.3  # inches beside the axes: value labels left, legend right
PANEL_TOP, PANEL_BOTTOM = 0.6, 0.75  # inches above (title) and below (axis label) each panel's axes
MATRIX_STYLE: dict[str, tuple[str, str]] = {  # outcome -> (colour, hatch)
    Outcome.PASS: ("#009E73", ""),
    Outcome.HANG: ("#E69F00", "//"),
    Outcome.PANIC: ("#CC79A7", "\\\\"),
    Outcome.FORBIDDEN_LINE: ("#D55E00", "xx"),
    Outcome.INCOMPLETE: ("#56B4E9", ".."),
    Outcome.QEMU_ERROR: ("#000000", "++"),
    Outcome.NOT_RUN: ("#BBBBBB", "oo"),
}
OTHER_STYLE = ("#777777", "--")
# Bars whose spread is under this share of their largest value start their axis just under them (legibility's
# second rule asks for a spread over SPREAD of the axes' height; from zero that needs about 0.27).
NEAR_EQUAL = 0.3


def matplotlib_version() -> str:
    """The matplotlib the charts are drawn with (recorded in a release's manifest; read without importing it)."""
    return importlib.metadata.version("matplotlib")


def generic_spec(series: Sequence[Series], chart: str) -> ChartSpec:
    """How a chart no demo declares is drawn (a user's overlay demo): a line if every x is a number, else bars."""
    numeric = all(not isinstance(p.x, str) for s in series for p in s.points)
    return ChartSpec(chart, chart, ChartKind.LINE if numeric else ChartKind.BARS, "x", "y")


def case_specs(project: Project, case: str) -> Mapping[str, ChartSpec]:
    """The chart declarations of the demo a boot case belongs to (empty for a case the project does not know)."""
    boot = project.boots.get(case)
    demo = project.demos.get(boot.demo) if boot else None
    return demo.charts if demo else {}


@dataclass(frozen=True)
class _Panel:
    spec: ChartSpec
    series: tuple[Series, ...]
    height: float  # inches of the axes alone
    below: float  # inches under the axes: tick labels and the x axis label


def _fmt(value: float) -> str:
    return str(int(value)) if value == int(value) and abs(value) < 1e16 else f"{value:g}"


def _label(x: float | str) -> str:
    return x if isinstance(x, str) else _fmt(x)


def _address(value: float) -> str:
    return f"0x{int(value):x}"


def _all_none(series: Sequence[Series]) -> bool:
    return all(p.y is None for s in series for p in s.points)


def _drawable(spec: ChartSpec, series: Sequence[Series]) -> ChartSpec:
    """The declared kind, or bars where the points cannot be drawn as declared (ranges need numeric x and y)."""
    points = [p for s in series for p in s.points]
    if spec.kind is ChartKind.RANGES and any(isinstance(p.x, str) or p.y is None for p in points):
        return ChartSpec(spec.name, spec.title, ChartKind.BARS, spec.x, spec.y, spec.log)
    return spec


def _processes(series: Sequence[Series]) -> list[str]:
    return list(dict.fromkeys(s.name.split(".", 1)[0] for s in series))


def _height(spec: ChartSpec, series: Sequence[Series]) -> float:
    if _all_none(series):
        return 1.2
    if spec.kind is ChartKind.RANGES:
        return 0.9 + 0.45 * (len(series) if spec.log else len(_processes(series)))
    if spec.kind is ChartKind.FIELDS:
        return 0.6 + 0.6 * len(series)
    return 2.8


def _panels(console_text: str, case: str, specs: Mapping[str, ChartSpec]) -> list[_Panel]:
    series, problems = parse_console(console_text)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more malformed data line(s))" if len(problems) > 1 else ""
        raise ChartError(case=case, line_number=first.line_number, reason=first.reason, line=first.line, more=more)
    by_chart: dict[str, list[Series]] = {}
    for one in series:
        if one.chart == KSPACE_CHART and KSPACE_CHART not in specs and one.name.startswith(f"{KSPACE_PROCESS}."):
            continue  # every MMU boot prints its layout: a chart only where a demo declares kspace
        by_chart.setdefault(one.chart, []).append(one)
    panels = []
    for chart, members in by_chart.items():
        spec = specs.get(chart) or generic_spec(members, chart)
        spec = _drawable(spec, members)
        rotated = spec.kind is ChartKind.RANGES and not spec.log and not _all_none(members)  # address labels
        panels.append(_Panel(spec, tuple(members), _height(spec, members), 1.75 if rotated else PANEL_BOTTOM))
    return panels


@contextmanager
def _fixed_style() -> Iterator[None]:
    """matplotlib's own defaults plus RC, whatever the user's matplotlibrc says; restored afterwards. Its warnings
    (numpy's overflow on a console's extreme numbers) are not the user's business: a chart it cannot draw is a
    ChartError, one line."""
    import matplotlib
    from matplotlib import font_manager

    with matplotlib.rc_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        matplotlib.rcdefaults()
        matplotlib.rcParams.update(RC)
        font = Path(font_manager.findfont(font_manager.FontProperties(family=["sans-serif"])))
        if not font.is_relative_to(matplotlib.get_data_path()):  # another DejaVu Sans: other widths, other bytes
            raise UserError(
                f"charts: matplotlib chose the font {font}, not its own DejaVu Sans (delete its font cache)"
            )
        yield


def _svg(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def draw_case(case: str, kernel: str, console_text: str, specs: Mapping[str, ChartSpec]) -> bytes | None:
    """One SVG with a panel per chart the console printed, titled with the case and the kernel's name; None when
    the console has no data lines. A malformed data line raises ChartError naming the case and the line."""
    panels = _panels(console_text, case, specs)
    if not panels:
        return None
    with _fixed_style():
        return _svg(_case_figure(case, kernel, panels))


def case_problems(case: str, kernel: str, console_text: str, specs: Mapping[str, ChartSpec]) -> tuple[str, ...]:
    """Where the case's chart (as draw_case draws it) breaks a rule of mmulab.boot.legibility, one line each."""
    from mmulab.boot.legibility import problems

    panels = _panels(console_text, case, specs)
    if not panels:
        return ()
    with _fixed_style():
        return problems(_case_figure(case, kernel, panels))


def _case_figure(case: str, kernel: str, panels: Sequence[_Panel]) -> Figure:
    from matplotlib.figure import Figure

    header = 0.55
    total = header + sum(PANEL_TOP + p.height + p.below for p in panels)
    figure = Figure(figsize=(WIDTH, total))
    figure.suptitle(f"{case}: {kernel} kernel", x=0.5, y=1 - 0.2 / total, va="top", fontsize=12)
    top = total - header
    for panel in panels:
        bottom = top - PANEL_TOP - panel.height
        rect = (LEFT / WIDTH, bottom / total, (WIDTH - LEFT - RIGHT) / WIDTH, panel.height / total)
        axes = figure.add_axes(rect)
        _draw_panel(axes, panel, kernel)
        top = bottom - panel.below
    return figure


def _draw_panel(axes: Axes, panel: _Panel, kernel: str) -> None:
    spec = panel.spec
    axes.set_title(textwrap.fill(f"{spec.title} ({kernel} kernel)", 90), loc="left")
    axes.set_xlabel(spec.x)
    axes.set_ylabel(spec.y)
    if _all_none(panel.series):
        _draw_none(axes, panel.series)
    elif spec.kind is ChartKind.LINE:
        _draw_line(axes, panel.series, spec.log)
    elif spec.kind is ChartKind.BARS:
        _draw_bars(axes, panel.series, spec.log)
    elif spec.kind is ChartKind.RANGES and spec.log:
        _draw_sizes(axes, panel.series)
    elif spec.kind is ChartKind.RANGES:
        _draw_ranges(axes, panel.series)
    else:
        _draw_fields(axes, panel.series)


def _draw_none(axes: Axes, series: Sequence[Series]) -> None:
    """`none` everywhere: this kernel has no such thing, said in words rather than drawn as zero."""
    names = ", ".join(s.name for s in series)
    axes.text(0.5, 0.5, f"none\n(this kernel has no {names})", ha="center", va="center", transform=axes.transAxes)
    axes.set_xticks([])
    axes.set_yticks([])


def _categories(series: Sequence[Series]) -> list[float | str]:
    return list(dict.fromkeys(p.x for s in series for p in s.points))


def _none_note(axes: Axes, x: float, colour: str) -> None:
    axes.annotate("none", (x, 0.02), xycoords=("data", "axes fraction"), ha="center", color=colour, fontsize=7)


def _draw_line(axes: Axes, series: Sequence[Series], log: bool) -> None:
    categories = _categories(series)
    numeric = all(not isinstance(x, str) for x in categories)
    position = {x: (float(x) if numeric and not isinstance(x, str) else float(i)) for i, x in enumerate(categories)}
    for index, one in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        drawn = [(position[p.x], p.y) for p in one.points if p.y is not None]
        axes.plot(
            [x for x, _ in drawn],
            [y for _, y in drawn],
            color=colour,
            marker=MARKERS[index % len(MARKERS)],
            linestyle=LINE_STYLES[index % len(LINE_STYLES)],
            label=one.name,
        )
        for point in one.points:
            if point.y is None:
                _none_note(axes, position[point.x], colour)
    if not numeric:
        axes.set_xticks(list(position.values()), [_label(x) for x in categories])
    if log:
        axes.set_yscale("log")
    axes.grid(True, color="#dddddd", linewidth=0.6)
    axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


def _offset(series: Sequence[Series], log: bool) -> float:
    """Where the value axis of a bar chart starts: zero, or just under the values when they are near-equal large
    numbers (four frame numbers of about 525,000), so that their differences show rather than their size."""
    values = [p.y for s in series for p in s.points if p.y is not None]
    if log or not values or min(values) <= 0 or max(values) == min(values):
        return 0.0
    low, high = min(values), max(values)
    return float(math.floor(low - 0.6 * (high - low))) if high - low < NEAR_EQUAL * high else 0.0


def _draw_bars(axes: Axes, series: Sequence[Series], log: bool) -> None:
    categories = _categories(series)
    width = 0.8 / len(series)
    base = _offset(series, log)
    for index, one in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        offset = -0.4 + width * (index + 0.5)
        values = {p.x: p.y for p in one.points}  # a category printed twice: its last value
        xs = [i + offset for i, x in enumerate(categories) if x in values and values[x] is not None]
        ys = [y for x in categories if (y := values.get(x)) is not None]
        axes.bar(
            xs,
            [y - base for y in ys],
            bottom=base,
            width=width,
            color=colour,
            edgecolor="black",
            linewidth=0.6,
            hatch=HATCHES[index % len(HATCHES)],
            label=one.name,
        )
        for at, y in zip(xs, ys, strict=True) if base else ():
            axes.annotate(f"{_fmt(y)}\n{_address(y)}", (at, y), ha="center", va="bottom", fontsize=7)
        for i, x in enumerate(categories):
            if x in values and values[x] is None:
                _none_note(axes, i + offset, "black")
    axes.set_xticks(range(len(categories)), [_label(x) for x in categories])
    if log:
        axes.set_yscale("log")
        axes.set_ylabel(f"{axes.get_ylabel()}, log scale")
    if base:
        top = max(y for s in series for p in s.points if (y := p.y) is not None)
        axes.set_ylim(base, top + 0.3 * (top - base))
        axes.ticklabel_format(axis="y", style="plain", useOffset=False)
        axes.set_ylabel(f"{axes.get_ylabel()}\n(axis from {_fmt(base)}, not from zero)")
    axes.grid(True, axis="y", color="#dddddd", linewidth=0.6)
    axes.set_axisbelow(True)
    axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


# The regions /proc/self/maps names, each in the same colour and hatch on every chart (text is text everywhere,
# whichever region a console printed first); a region of a user's own comes after them.
KNOWN_REGIONS = ("text", "data", "heap", "mmap", "stack")


def _region_styles(series: Sequence[Series]) -> dict[str, tuple[str, str]]:
    """One colour and hatch per region name (heap is the same in the parent and the child, and in every case)."""
    printed = dict.fromkeys(s.name.split(".", 1)[-1] for s in series)
    regions = [*KNOWN_REGIONS, *(r for r in printed if r not in KNOWN_REGIONS)]
    return {r: (COLOURS[i % len(COLOURS)], HATCHES[i % len(HATCHES)]) for i, r in enumerate(regions) if r in printed}


def _draw_ranges(axes: Axes, series: Sequence[Series]) -> None:
    """One row per process, its regions as bars from low to high addresses. Address spaces are mostly holes, so
    the axis is in steps: every boundary printed is one step further right, labelled with its address (so a heap
    of 132 kB and a stack gigabytes above it both show); a single address (x == y) is a marker."""
    processes = _processes(series)
    row = {name: len(processes) - 1 - i for i, name in enumerate(processes)}  # first printed on top
    boundaries = sorted({value for s in series for p in s.points for value in (float(p.x), float(p.y or 0))})
    step = {address: float(i) for i, address in enumerate(boundaries)}
    styles = _region_styles(series)
    for one in series:
        process, _, region = one.name.partition(".")
        colour, hatch = styles[one.name.split(".", 1)[-1]]
        y = row[process]
        for point in one.points:
            start, end = step[float(point.x)], step[float(point.y or 0)]
            if start == end:  # one address: a marker, and a dotted line through every row (inside whose region?)
                axes.axvline(start, color="black", linestyle=":", linewidth=0.8)
                axes.plot([start], [y + 0.3], marker="v", color="black", markersize=8)
                axes.annotate(region or one.name, (start, y + 0.45), ha="center", va="bottom", fontsize=7)
                continue
            axes.barh(y, end - start, left=start, height=0.5, color=colour, hatch=hatch, edgecolor="black")
            axes.text(
                (start + end) / 2,
                y,
                region or one.name,
                ha="center",
                va="center",
                fontsize=7,
                bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none"},
            )
    axes.set_yticks(list(row.values()), list(row))
    axes.set_ylim(-0.6, len(processes) - 0.2)
    axes.set_xticks(list(step.values()), [_address(a) for a in boundaries], rotation=90, fontsize=6)
    axes.set_xlim(-0.5, len(boundaries) - 0.5)
    axes.set_xlabel(f"{axes.get_xlabel()}, low to high (not to scale: one step per boundary)")


def _draw_sizes(axes: Axes, series: Sequence[Series]) -> None:
    """Ranges on a log scale (the kernel's layout: 6 MB of fixmap beside 16 PB of vmalloc): one row per region,
    the lowest address at the bottom, each bar as long as the region, its addresses written beside it."""
    ordered = sorted(series, key=lambda s: min(float(p.x) for p in s.points))
    styles = _region_styles(ordered)
    for y, one in enumerate(ordered):
        colour, hatch = styles[one.name.split(".", 1)[-1]]
        for point in one.points:
            start, end = float(point.x), float(point.y or 0)
            size = max(end - start, 1.0)
            axes.barh(y, size, left=1.0, height=0.6, color=colour, hatch=hatch, edgecolor="black")
            axes.text(size * 1.5, y, f"{_address(start)} - {_address(end)}", va="center", fontsize=7)
    axes.set_xscale("log")
    axes.set_xlim(1.0, max(float(p.y or 0) - float(p.x) for s in series for p in s.points) * 1e6)
    axes.set_yticks(range(len(ordered)), [s.name for s in ordered])
    axes.set_ylim(-0.6, len(ordered) - 0.4)


def _draw_fields(axes: Axes, series: Sequence[Series]) -> None:
    """One bar per mode, split into its fields in print order, each labelled with its name and value."""
    for row, one in enumerate(reversed(series)):
        for index, point in enumerate(one.points):
            axes.barh(
                row,
                1.0,
                left=float(index),
                height=0.6,
                color=COLOURS[index % len(COLOURS)],
                alpha=0.35,
                hatch=HATCHES[index % len(HATCHES)],
                edgecolor="black",
            )
            value = "none" if point.y is None else f"{_fmt(point.y)}\n{_address(point.y)}"
            axes.text(
                index + 0.5,
                row,
                f"{_label(point.x)}\n{value}",
                ha="center",
                va="center",
                fontsize=7,
                bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none"},
            )
    width = max(len(s.points) for s in series)
    axes.set_xlim(0.0, float(width))
    axes.set_xticks([])
    axes.set_yticks(range(len(series)), [s.name for s in reversed(series)])
    axes.set_ylim(-0.5, len(series) - 0.5)


def draw_matrix(seconds: Mapping[str, float], outcomes: Mapping[str, str]) -> bytes:
    """The boot matrix: seconds to verdict per case (in the order given), each bar coloured and hatched by its
    outcome, so it reads in black and white."""
    cases = list(seconds)
    with _fixed_style():
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch

        height = 0.6 + 0.22 * max(len(cases), 1)
        total = height + 1.2
        figure = Figure(figsize=(WIDTH, total))
        axes = figure.add_axes((3.0 / WIDTH, 0.7 / total, (WIDTH - 3.0 - RIGHT) / WIDTH, height / total))
        axes.set_title("boot matrix: seconds to verdict per case", loc="left")
        axes.set_xlabel("seconds to verdict (s)")
        seen: dict[str, tuple[str, str]] = {}
        for row, case in enumerate(reversed(cases)):
            outcome = outcomes.get(case, "")
            colour, hatch = MATRIX_STYLE.get(outcome, OTHER_STYLE)
            seen[outcome or "unknown"] = (colour, hatch)
            axes.barh(row, seconds[case], height=0.7, color=colour, hatch=hatch, edgecolor="black", linewidth=0.5)
        axes.set_yticks(range(len(cases)), list(reversed(cases)), fontsize=7)
        axes.set_ylim(-0.6, len(cases) - 0.4)
        axes.grid(True, axis="x", color="#dddddd", linewidth=0.6)
        axes.set_axisbelow(True)
        order = [str(o) for o in MATRIX_STYLE] + sorted(set(seen) - {str(o) for o in MATRIX_STYLE})
        handles = [
            Patch(facecolor=seen[o][0], hatch=seen[o][1], edgecolor="black", label=o) for o in order if o in seen
        ]
        axes.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
        return _svg(figure)
