"""The data lines of a console as typed series (mmulab/boot/series.py): pure and fast, every malformed line a case."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmulab.boot.series import KSPACE_CHART, DataProblem, Point, Reason, Series, parse_console

BOOTS = Path(__file__).parent / "data" / "boots"


def test_data_lines_become_series_in_console_order():
    console = (
        "[    1.000000] Run /init as init process\n"
        "mmulab: oom: a human-readable line stays\n"
        "mmulab: data: oom score 0 0\n"
        "mmulab: data: swap memfree 1 2.5\n"
        "mmulab: data: oom score 4 30\n"
        "mmulab: data: oom score 0x10 -7\n"
    )
    series, problems = parse_console(console)
    assert problems == ()
    assert series == (
        Series("oom", "score", (Point(0.0, 0.0), Point(4.0, 30.0), Point(16.0, -7.0))),
        Series("swap", "memfree", (Point(1.0, 2.5),)),
    )


def test_labels_keep_their_text_and_none_is_not_zero():
    series, problems = parse_console(
        "mmulab: data: slab dentry before 12\r\n"
        "mmulab: data: slab dentry created 1e3\n"
        "mmulab: data: pagetables kb 0 none\n"
        "mmulab: data: numa bound node1 1\n"
    )
    assert problems == ()
    assert series[0].points == (Point("before", 12.0), Point("created", 1000.0))
    assert series[1].points == (Point(0.0, None),)
    assert series[2].points == (Point("node1", 1.0),)


def test_a_64_bit_hex_address_is_read_as_an_address():
    series, _ = parse_console("mmulab: data: maps parent.stack 0x3fffffd000 0xffffffffffffe000\n")
    assert series[0].points == (Point(float(0x3FFFFFD000), float(0xFFFFFFFFFFFFE000)),)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("mmulab: data: oom score 4", Reason.FIELDS),
        ("mmulab: data: oom score 4 30 extra", Reason.FIELDS),
        ("mmulab: data:", Reason.FIELDS),
        ("mmulab: data: OOM score 4 30", Reason.CHART),
        ("mmulab: data: " + "c" * 33 + " score 4 30", Reason.CHART),
        ("mmulab: data: _oom score 4 30", Reason.CHART),
        ("mmulab: data: oom Score 4 30", Reason.SERIES),
        ("mmulab: data: oom sc/ore 4 30", Reason.SERIES),
        ("mmulab: data: oom score 4MiB 30", Reason.X),
        ("mmulab: data: oom score _x 30", Reason.X),
        ("mmulab: data: oom score " + "x" * 33 + " 30", Reason.X),
        ("mmulab: data: oom score 0xg 30", Reason.X),
        ("mmulab: data: oom score 4 thirty", Reason.Y),
        ("mmulab: data: oom score 4 nan", Reason.Y),
        ("mmulab: data: oom score 4 inf", Reason.Y),
        ("mmulab: data: oom score 4 None", Reason.Y),
        ("mmulab: data: oom score 4 0x", Reason.Y),
        ("[    2.1] random: crng init done mmulab: data: oom score 4 30", Reason.NOT_AT_START),
    ],
)
def test_every_malformed_data_line_is_a_problem_naming_its_line(line: str, reason: Reason):
    series, problems = parse_console(f"mmulab: data: oom score 0 1\nmmulab: hello\n{line}\n")
    assert problems == (DataProblem(3, line, reason),)
    assert series == (Series("oom", "score", (Point(0.0, 1.0),)),)  # the good line is kept, the bad one is not


def test_a_data_line_cut_by_a_kernel_message_is_a_problem_not_a_short_series():
    """Regression: a kernel message printed into the middle of a data line must not pass for a data point."""
    console = "mmulab: data: slab dentry bef[   3.000000] hrtimer: interrupt took 1000 ns\nore 12\n"
    series, problems = parse_console(console)
    assert series == ()
    assert [p.line_number for p in problems] == [1]


def test_the_mmu_kernels_memory_layout_is_the_kspace_chart():
    series, problems = parse_console((BOOTS / "kspace-c-mmu.log").read_text())
    assert problems == ()
    layout = {s.name: s.points for s in series if s.chart == KSPACE_CHART}
    assert layout["virtual.vmalloc"] == (Point(float(0xFF20000000000000), float(0xFF60000000000000)),)
    assert layout["virtual.pci_io"] == (Point(float(0xFF1BFFFFFF000000), float(0xFF1C000000000000)),)
    assert list(layout) == [
        "virtual.fixmap",
        "virtual.pci_io",
        "virtual.vmemmap",
        "virtual.vmalloc",
        "virtual.modules",
        "virtual.lowmem",
        "virtual.kernel",
    ]


def test_layout_like_lines_outside_the_kernels_block_are_not_read():
    console = "mmulab: kspace: heap : 0x1000 - 0x2000 (4 kB)\n     vmalloc : 0x1000 - 0x2000   (4 kB)\n"
    assert parse_console(console) == ((), ())


def test_the_nommu_kernel_prints_no_layout_and_no_data_line_gives_no_series():
    assert parse_console((BOOTS / "pidns-c-nommu.log").read_text()) == ((), ())
    series, problems = parse_console((BOOTS / "kspace-c-nommu.log").read_text())
    assert problems == ()
    assert [(one.chart, one.name) for one in series] == [("kspace", "ram.identity")]


@settings(derandomize=True, max_examples=200, database=None, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=120))
def test_any_text_after_the_prefix_is_a_point_or_a_problem(tail: str):
    """Never a traceback, never silently dropped: each data line is one point or one problem."""
    line = f"mmulab: data:{tail}".replace("\n", " ").replace("\r", " ")
    series, problems = parse_console(line + "\n")
    assert len(problems) + sum(len(s.points) for s in series) == 1
