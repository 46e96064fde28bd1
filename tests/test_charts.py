"""Charts from consoles (mmulab/boot/charts.py) and their declarations in demos.toml (project/loader.py).

The drawing is real matplotlib; the bytes must not depend on the process, folder, HOME or a user's matplotlibrc.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import clean_environment

from mmulab.boot import charts
from mmulab.boot.series import Series
from mmulab.core.errors import ChartError, ConfigError
from mmulab.core.settings import Settings
from mmulab.project.loader import load_project
from mmulab.project.model import ChartKind, ChartSpec

BOOTS = Path(__file__).parent / "data" / "boots"

# One console with a chart of every kind (the lines the demos of docs/writing-demos.md print).
EVERY_KIND = textwrap.dedent(
    """\
    mmulab: fork: the human-readable lines stay
    mmulab: data: maps parent.text 0x10000 0x20000
    mmulab: data: maps parent.heap 0x30000 0x51000
    mmulab: data: maps parent.stack 0x3fffffd000 0x4000000000
    mmulab: data: maps child.heap 0x30000 0x51000
    mmulab: data: maps child.target 0x30010 0x30010
    mmulab: data: vaddr sv57 vpn4 1
    mmulab: data: vaddr sv57 vpn0 48
    mmulab: data: vaddr sv57 offset 0x123
    mmulab: data: slab dentry before 1200
    mmulab: data: slab dentry created 2250
    mmulab: data: slab inode before 900
    mmulab: data: slab inode created 1910
    mmulab: data: oom score 0 0
    mmulab: data: oom score 8 120
    mmulab: data: oom score 16 250
    """
)
# The declarations drawn with, as source: the other processes of the determinism test run the same text.
SPECS_SOURCE = textwrap.dedent(
    """\
    from mmulab.project.model import ChartKind, ChartSpec
    SPECS = {
        "maps": ChartSpec("maps", "where memory lies", ChartKind.RANGES, "address (hex)", "process"),
        "vaddr": ChartSpec("vaddr", "one virtual address", ChartKind.FIELDS, "field (bits)", "paging mode"),
        "slab": ChartSpec("slab", "slab objects", ChartKind.BARS, "moment of the run", "active objects (count)"),
        "oom": ChartSpec("oom", "the hog score", ChartKind.LINE, "memory allocated (MiB)", "oom_score (0-1000)"),
    }
    """
)
_namespace: dict[str, Any] = {}
exec(SPECS_SOURCE, _namespace)
SPECS: dict[str, ChartSpec] = _namespace["SPECS"]
DRAW = (
    "import sys; from pathlib import Path; from mmulab.boot import charts; "
    "exec(Path(sys.argv[2]).read_text()); "
    "sys.stdout.buffer.write(charts.draw_case('fork-c-mmu', 'mmu', Path(sys.argv[1]).read_text(), SPECS))"
)
# A user's matplotlibrc that changes everything a chart's bytes depend on, if it were read.
HOSTILE_RC = textwrap.dedent(
    """\
    font.family: serif
    font.size: 20
    lines.linewidth: 5
    svg.fonttype: path
    svg.hashsalt: mine
    axes.prop_cycle: cycler('color', ['r', 'g'])
    hatch.linewidth: 3
    figure.dpi: 300
    axes.titlesize: 30
    """
)


def first_difference(first: bytes, second: bytes) -> str:
    """The first line where two SVGs differ, both ways (what a failed comparison shows)."""
    pairs = zip(first.decode().splitlines(), second.decode().splitlines(), strict=False)
    return next((f"{a!r} != {b!r}" for a, b in pairs if a != b), f"lengths {len(first)} != {len(second)}")


def text_of(svg: bytes) -> str:
    return svg.decode()


def test_every_kind_is_drawn_with_its_units_and_the_kernels_name():
    svg = text_of(charts.draw_case("fork-c-mmu", "mmu", EVERY_KIND, SPECS) or b"")
    assert svg.startswith("<?xml")
    assert "fork-c-mmu: mmu kernel" in svg
    for spec in SPECS.values():
        assert f">{spec.title} (mmu kernel)<" in svg
        assert spec.x in svg and spec.y in svg, spec
    # ranges: regions named, the single address a marker with its name; fields: every field with its value
    for text in ("heap", "stack", "target", "0x3fffffd000", "vpn4", "offset", "0x123", "before", "created"):
        assert f">{text}" in svg, text
    assert svg.count("<pattern") >= 4  # hatched bars and ranges: readable in black and white


def test_the_same_console_gives_the_same_bytes_in_another_process_folder_home_and_matplotlibrc(tmp_path: Path):
    console = tmp_path / "fork-c-mmu.log"
    console.write_text(EVERY_KIND)
    specs = tmp_path / "specs.py"
    specs.write_text(SPECS_SOURCE)
    outputs = []
    for name, rc in (("plain", ""), ("hostile", HOSTILE_RC)):
        home, config, cwd = (tmp_path / name / part for part in ("home", "mplconfig", "cwd"))
        for folder in (home, config, cwd):
            folder.mkdir(parents=True)
        if rc:  # matplotlib reads ./matplotlibrc first, then $MPLCONFIGDIR/matplotlibrc
            (cwd / "matplotlibrc").write_text(rc)
            (config / "matplotlibrc").write_text(rc)
        env = clean_environment() | {
            "HOME": str(home),
            "MPLCONFIGDIR": str(config),
        }
        env.pop("MATPLOTLIBRC", None)
        done = subprocess.run(
            [sys.executable, "-c", DRAW, str(console), str(specs)], cwd=cwd, env=env, capture_output=True, check=False
        )
        assert done.returncode == 0, done.stderr.decode()
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1], (
        f"a user's matplotlibrc or another folder changed the bytes: {first_difference(*outputs)}"
    )
    here = charts.draw_case("fork-c-mmu", "mmu", EVERY_KIND, SPECS) or b""
    assert outputs[0] == here, first_difference(outputs[0], here)
    assert b"font-family" in outputs[0] or b"font:" in outputs[0]  # text kept as text (svg.fonttype none)
    assert b"DejaVu Sans" in outputs[0]


def test_a_different_console_gives_different_bytes():
    first = charts.draw_case("oom-c-mmu", "mmu", "mmulab: data: oom score 0 1\n", SPECS)
    second = charts.draw_case("oom-c-mmu", "mmu", "mmulab: data: oom score 0 2\n", SPECS)
    assert first and second and first != second


def test_a_chart_no_demo_declares_is_drawn_as_a_line_or_bars():
    numbers = text_of(charts.draw_case("mine-c-nommu", "nommu", "mmulab: data: tries run 1 5\n", {}) or b"")
    assert ">tries (nommu kernel)" in numbers and ">x<" in numbers and ">y<" in numbers
    assert "<pattern" not in numbers  # a line: markers, no hatched bars
    labels = text_of(charts.draw_case("mine-c-nommu", "nommu", "mmulab: data: tries run first 5\n", {}) or b"")
    assert ">first<" in labels and "<pattern" in labels  # bars, hatched


def test_an_overlay_demo_that_prints_data_lines_gets_its_chart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "hello.c").write_text('#include <stdio.h>\nint main(void) { printf("mmulab: data: ...\\n"); }\n')
    (tmp_path / "demos.toml").write_text(
        textwrap.dedent(
            """
            [demos.hello]
            description = "a demo of my own"
            [demos.hello.builds.c]
            init = ["hello.c"]
            [demos.hello.runs.nommu]
            must = ["hello"]
            [demos.hello.charts.latency]
            title = "how long a page fault takes"
            kind = "bars"
            x = "attempt"
            y = "time (ns)"
            """
        )
    )
    monkeypatch.setenv("MMULAB_CONFIG_OVERLAY", str(tmp_path))
    project = load_project(Settings.from_environment())
    specs = charts.case_specs(project, "hello-c-nommu")
    assert list(specs) == ["latency"]
    console = (
        "hello\nmmulab: data: latency fault first 812\n"
        "mmulab: data: tries n 1 2\nmmulab: data: latency fault second 640\n"
    )
    svg = text_of(charts.draw_case("hello-c-nommu", "nommu", console, specs) or b"")
    assert ">how long a page fault takes (nommu kernel)" in svg and ">time (ns)<" in svg
    assert ">tries (nommu kernel)" in svg  # the chart it prints but does not declare: drawn too


def test_a_malformed_data_line_is_one_line_naming_the_case_and_line_number():
    console = "mmulab: data: oom score 0 0\nmmulab: oom: hi\nmmulab: data: oom score 8 lots\nmmulab: data: x\n"
    with pytest.raises(ChartError) as caught:
        charts.draw_case("oom-c-mmu", "mmu", console, SPECS)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("oom-c-mmu: console line 3: y is neither a number")
    assert "'mmulab: data: oom score 8 lots'" in message
    assert "mmulab: data: <chart> <series> <x> <y>" in message and "(and 1 more malformed data line(s))" in message


def test_a_console_without_data_lines_draws_nothing():
    assert charts.draw_case("pidns-c-mmu", "mmu", (BOOTS / "pidns-c-mmu.log").read_text(), {}) is None


def test_none_is_drawn_as_none_not_as_zero():
    spec = {"pagetables": ChartSpec("pagetables", "page tables", ChartKind.LINE, "pages (count)", "PageTables (kB)")}
    svg = text_of(charts.draw_case("pagetables-c-nommu", "nommu", "mmulab: data: pagetables kb 0 none\n", spec) or b"")
    assert ">none" in svg and "this kernel has no kb" in svg


def test_the_mmu_kernels_layout_is_drawn_to_a_log_scale_where_kspace_is_declared():
    specs = load_project().demos["kspace"].charts
    console = (BOOTS / "kspace-c-mmu.log").read_text()
    svg = text_of(charts.draw_case("kspace-c-mmu", "mmu", console, specs) or b"")
    assert ">virtual.vmalloc<" in svg and "0xff20000000000000 - 0xff60000000000000" in svg
    assert f">{specs['kspace'].x}<" in svg
    exponents = re.findall(r"font-size: 5.6px[^>]*>(\d+)</tspan>", svg)  # log ticks: 10 with a small exponent
    assert exponents[:4] == ["0", "3", "6", "9"]


def test_every_mmu_boot_prints_its_layout_but_only_the_kspace_demo_charts_it():
    """Regression: the kernel's layout lines are on every MMU console; a case of another demo got a kspace chart."""
    console = (BOOTS / "pidns-c-mmu.log").read_text()
    assert "Virtual kernel memory layout:" in console
    assert charts.draw_case("pidns-c-mmu", "mmu", console, {}) is None


def test_the_boot_matrix_is_coloured_and_hatched_by_outcome():
    seconds = {"fork-c-mmu": 4.5, "oom-c-mmu-init-hog": 12.0, "swap-c-nommu": 30.0}
    outcomes = {"fork-c-mmu": "pass", "oom-c-mmu-init-hog": "panic", "swap-c-nommu": "weird"}
    svg = charts.draw_matrix(seconds, outcomes)
    assert svg == charts.draw_matrix(dict(seconds), dict(outcomes))
    text = text_of(svg)
    for word in (*seconds, "pass", "panic", "weird", "seconds to verdict (s)"):
        assert f">{word}<" in text, word
    assert text.count("<pattern") >= 2  # panic and the unknown outcome are hatched; pass is plain


def test_drawing_is_the_only_thing_that_imports_matplotlib():
    script = (
        "import sys; import mmulab.pipeline.tasks, mmulab.pipeline.actions, mmulab.boot.qemu, mmulab.boot.charts; "
        "import mmulab.boot.series; assert 'matplotlib' not in sys.modules, 'imported at import time'; "
        "mmulab.boot.charts.draw_matrix({'a': 1.0}, {'a': 'pass'}); assert 'matplotlib' in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", script], env=clean_environment(), capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()


def test_matplotlib_version_is_the_installed_one():
    import matplotlib

    assert charts.matplotlib_version() == matplotlib.__version__


def overlay_chart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chart: str) -> str:
    """Load the project with an overlay demo declaring `chart` (the body of its charts table); the error."""
    (tmp_path / "hello.S").write_text(".globl _start\n_start:\n")
    (tmp_path / "demos.toml").write_text(
        '[demos.hello.builds.asm]\ninit = ["hello.S"]\n[demos.hello.charts.tries]\n' + chart
    )
    monkeypatch.setenv("MMULAB_CONFIG_OVERLAY", str(tmp_path))
    with pytest.raises(ConfigError) as caught:
        load_project(Settings.from_environment())
    return str(caught.value)


GOOD = 'title = "t"\nkind = "line"\nx = "step (count)"\ny = "time (ns)"\n'


def test_a_chart_of_an_unknown_kind_names_the_file_field_and_kinds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    message = overlay_chart(tmp_path, monkeypatch, GOOD.replace('"line"', '"pie"'))
    assert message == (
        f"{tmp_path}/demos.toml: demos.hello.charts.tries.kind: 'pie' is not one of line, bars, ranges, fields"
    )


def test_a_chart_without_an_axis_label_asks_for_it_with_its_unit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    message = overlay_chart(tmp_path, monkeypatch, GOOD.replace('y = "time (ns)"\n', ""))
    assert message.startswith(f"{tmp_path}/demos.toml: demos.hello.charts.tries.y: missing (the y axis label")
    assert "with its unit" in message


def test_a_chart_with_an_empty_axis_label_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    message = overlay_chart(tmp_path, monkeypatch, GOOD.replace('"step (count)"', '" "'))
    assert message.startswith(f"{tmp_path}/demos.toml: demos.hello.charts.tries.x: empty (the x axis label")


def test_a_chart_with_an_unknown_key_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    message = overlay_chart(tmp_path, monkeypatch, GOOD + 'colour = "red"\n')
    assert message == (
        f"{tmp_path}/demos.toml: demos.hello.charts.tries.colour: unknown field (a chart has title, kind, x, y, log)"
    )


def test_a_chart_name_a_data_line_cannot_print_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "hello.S").write_text(".globl _start\n_start:\n")
    (tmp_path / "demos.toml").write_text(
        '[demos.hello.builds.asm]\ninit = ["hello.S"]\n[demos.hello.charts.Tries]\n' + GOOD
    )
    monkeypatch.setenv("MMULAB_CONFIG_OVERLAY", str(tmp_path))
    with pytest.raises(ConfigError, match=r"demos.hello.charts.Tries: 'Tries' is not a chart name"):
        load_project(Settings.from_environment())


def test_the_memory_demos_declare_the_charts_they_print():
    declared = {(demo.name, chart) for demo in load_project().demos.values() for chart in demo.charts}
    for demo in ("addrspace", "fork", "clone_vm"):
        assert (demo, "maps") in declared
    for pair in [("pagetables", "vaddr"), ("pagetables", "frame"), ("pagetables", "pagetables")]:
        assert pair in declared
    for demo in ("kspace", "slab", "oom", "swap", "buddy", "numa"):
        assert (demo, demo) in declared


def test_lines_differ_by_marker_and_dash_so_they_read_in_black_and_white():
    console = "".join(f"mmulab: data: swap s{n} {x} {x * n}\n" for n in (1, 2, 3) for x in (0, 1, 2))
    svg = text_of(charts.draw_case("swap-c-mmu-full", "mmu-full", console, {}) or b"")
    markers = set(re.findall(r'<path id="(m[0-9a-f]+)"', svg))  # each marker shape once; the ticks take two
    assert len(markers) >= 2 + 3, markers
    assert svg.count("stroke-dasharray") >= 2  # dashed and dotted lines beside the solid one


def test_a_region_has_the_same_colour_and_hatch_on_every_chart_whatever_was_printed_first():
    """Text is the same blue on the NOMMU chart (text printed first) and the MMU one (mmap printed first)."""
    nommu = charts._region_styles([Series("maps", name, ()) for name in ("parent.text", "parent.data", "parent.stack")])
    mmu = charts._region_styles([Series("maps", name, ()) for name in ("parent.mmap", "parent.stack", "child.text")])
    assert nommu["text"] == mmu["text"] and nommu["stack"] == mmu["stack"]
    assert len({*nommu.values(), *mmu.values()}) == 4  # text, data, stack, mmap: four looks
    own = charts._region_styles([Series("maps", "parent.guard", ()), Series("maps", "parent.text", ())])
    assert own["guard"] not in nommu.values()


# The chart rules (mmulab/boot/legibility.py), checked on matplotlib's geometry of every chart the catalogue draws.
RECORDED_CHART_CASES = sorted(
    log.stem
    for log in BOOTS.glob("*.log")
    if log.stem in load_project().boots and charts.case_specs(load_project(), log.stem)
)


def recorded_problems(case: str, specs: dict[str, ChartSpec] | None = None) -> tuple[str, ...]:
    project = load_project()
    console = (BOOTS / f"{case}.log").read_text(errors="replace")
    return charts.case_problems(case, project.boots[case].variant, console, specs or charts.case_specs(project, case))


def test_the_recorded_consoles_cover_the_demos_with_bars_and_lines():
    assert {"buddy-c-nommu", "buddy-c-mmu-full", "pagetables-c-mmu", "numa-c-mmu-full"} <= set(RECORDED_CHART_CASES)


@pytest.mark.parametrize("case", RECORDED_CHART_CASES)
def test_every_chart_shows_every_nonzero_value_and_the_differences_of_near_equal_ones(case: str):
    assert recorded_problems(case) == ()


@pytest.mark.parametrize("case", ["buddy-c-nommu", "buddy-c-mmu-full"])
def test_buddy_on_a_linear_count_axis_as_it_was_hides_the_high_orders(case: str):
    linear = {name: dataclasses.replace(spec, log=False) for name, spec in load_project().demos["buddy"].charts.items()}
    (problem,) = recorded_problems(case, linear)
    assert "nonzero value(s) drawn under 3 px from zero" in problem and "log axis" in problem


def test_frame_numbers_drawn_from_zero_as_they_were_hide_which_pages_share_a_frame():
    from matplotlib.figure import Figure

    from mmulab.boot.legibility import problems

    frames = [0x8049B, 0x8049B, 0x80357, 0x80356]  # pagetables-c-mmu: two reads share the zero page
    figure = Figure(figsize=(5.4, 3.0), dpi=100)
    figure.add_axes((0.1, 0.1, 0.8, 0.8)).bar(range(4), frames)
    (problem,) = problems(figure)
    assert "values from 525142 to 525467 spread over 0.1 px" in problem and "offset axis" in problem


def test_near_equal_frame_numbers_are_drawn_on_an_offset_axis_with_their_values():
    svg = text_of(charts.draw_case("pagetables-c-mmu", "mmu", (BOOTS / "pagetables-c-mmu.log").read_text(), {}) or b"")
    assert "axis from 524947, not from zero" in svg
    assert all(label in svg for label in ("0x8049b", "0x80357", "0x80356"))
