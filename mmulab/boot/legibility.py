"""The rules every chart keeps so that it shows its lesson, checked on matplotlib's own geometry (where the bars
and points of a drawn figure landed, in pixels), not on the numbers it was given.

1. Every nonzero value is visible: no bar of a nonzero value is drawn shorter than MIN_PIXELS, and no point of a
   nonzero value lies closer than MIN_PIXELS to the zero of its axis (values spanning orders of magnitude need a
   log axis, or another quantity).
2. Near-equal large numbers show their differences, not their size: where a panel's values differ at all, the
   drawn values spread over at least SPREAD of the axes' height (an offset axis does that; an axis from zero
   under four frame numbers of about 525,000 does not).

Pure: a figure in, problem lines out; matplotlib is imported only by the caller (mmulab.boot.charts).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MIN_PIXELS = 3.0  # the smallest drawn size of a nonzero bar or of a point's distance from zero
SPREAD = 0.25  # the least share of the axes' height that differing values spread over


@dataclass(frozen=True)
class Drawn:
    """One value as drawn: its number, where its end lies and how far from zero it was drawn (pixels)."""

    value: float
    end: float  # pixel position of the value's end along the value axis
    size: float  # pixels between the value's end and the bar's base (a point: zero of its axis), inside the axes


def _title(axes: Axes) -> str:
    return axes.get_title(loc="left") or axes.get_title() or "a panel"


def _vertical_values(axes: Axes) -> Iterator[Drawn]:
    """The bars of value-on-y bar charts and the marked points of line charts of one axes."""
    from matplotlib.container import BarContainer

    box = axes.bbox
    to_pixels = axes.transData
    log = axes.get_yscale() == "log"
    for container in axes.containers:
        if not isinstance(container, BarContainer) or container.orientation != "vertical":
            continue
        for patch in container.patches:
            value = float(patch.get_y() + patch.get_height())
            extent = patch.get_window_extent()
            low, high = max(extent.y0, box.y0), min(extent.y1, box.y1)
            yield Drawn(value, float(extent.y1), max(high - low, 0.0))
    for line in axes.lines:
        if line.get_marker() in (None, "None", "", " "):
            continue
        xs, ys = line.get_xydata().T  # type: ignore[union-attr]
        for x, y in zip(xs.tolist(), ys.tolist(), strict=True):
            end = float(to_pixels.transform((x, y))[1])
            zero = box.y0 if log else float(to_pixels.transform((x, 0.0))[1])
            low, high = sorted((max(min(end, box.y1), box.y0), max(min(zero, box.y1), box.y0)))
            yield Drawn(y, end, float("inf") if log else high - low)


def axes_problems(axes: Axes) -> list[str]:
    """The rules broken on one axes, one line each."""
    drawn = list(_vertical_values(axes))
    title = _title(axes)
    hidden = sorted((one for one in drawn if one.value != 0 and one.size < MIN_PIXELS), key=lambda one: one.size)
    problems = []
    if hidden:
        problems.append(
            f"{title}: {len(hidden)} nonzero value(s) drawn under {MIN_PIXELS:g} px from zero (the value "
            f"{hidden[0].value:g} at {hidden[0].size:.1f} px): a log axis, or another quantity"
        )
    values = {one.value for one in drawn}
    if len(values) > 1:
        spread = max(one.end for one in drawn) - min(one.end for one in drawn)
        if spread < SPREAD * axes.bbox.height:
            problems.append(
                f"{title}: values from {min(values):g} to {max(values):g} spread over {spread:.1f} px, under "
                f"{SPREAD:.0%} of the axes' {axes.bbox.height:.0f} px (their differences are not shown): an offset axis"
            )
    return problems


def problems(figure: Figure) -> tuple[str, ...]:
    """The rules broken anywhere in a drawn figure, one line each (empty: the figure shows its values)."""
    figure.draw_without_rendering()  # the axes' limits settle only when drawn
    return tuple(line for axes in figure.axes for line in axes_problems(axes))
