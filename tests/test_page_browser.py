"""The release page's charts (issue 19): beside each console and with the boot matrix in the page's HTML, and in
a real browser (headless Chromium): every chart loads and is not blank, seen in a screenshot that is kept.

The screenshot goes to the folder MMULAB_TEST_ARTIFACTS names (made if missing), else to pytest's tmp_path;
the test prints where (`pytest -s`, or the failure message)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import caller_variable
from test_page import Node, chromium, parse
from test_release import DATA_LINES, Synthetic, synthetic  # noqa: F401  (synthetic: the fixture)

from mmulab.release import figures
from mmulab.release.format import MATRIX_CHART

WINDOW_WIDTH = 1400
# A chart is not blank when at least this share of its box is ink: far from the background (the image's white).
MIN_INK = 0.01
INK_DISTANCE = 0.25  # per channel, on 0..1
# Injected into a TEST COPY of the page only (the release page has no script; verify refuses one): on load, it
# writes each image's box (page coordinates), natural width and the page's size into the DOM as JSON.
MEASURE = """<script>
window.addEventListener("load", () => {
  const root = document.documentElement;
  const images = Array.from(document.images, (img) => {
    const box = img.getBoundingClientRect();
    return {src: img.getAttribute("src"), natural: img.naturalWidth, complete: img.complete,
            left: box.left + window.scrollX, top: box.top + window.scrollY, width: box.width, height: box.height};
  });
  const out = document.createElement("pre");
  out.id = "measured";
  out.textContent = JSON.stringify({width: root.scrollWidth, height: root.scrollHeight, images: images});
  document.body.appendChild(out);
});
</script>
"""


@pytest.fixture
def published(synthetic: Synthetic) -> Path:  # noqa: F811
    """A release whose consoles printed data lines (test_release's synthetic build), as `doit publish` makes it."""
    return synthetic.publish()


def charts_of(release: Path) -> list[str]:
    manifest = json.loads((release / "manifest.json").read_text())
    return sorted(path for path in manifest["files"] if figures.is_chart(path))


# --- the page's HTML ---


def _images(node: Node) -> list[Node]:
    return list(node.iter("img"))


def test_the_page_shows_each_chart_beside_its_console_and_the_matrix_chart(
    synthetic: Synthetic,  # noqa: F811
    published: Path,
) -> None:
    dom = parse((published / "index.html").read_text())
    assert not list(dom.iter("script"))
    shown = {img.attrs["src"]: img for img in _images(dom)}
    assert sorted(shown) == charts_of(published)
    assert sorted(shown) == sorted([MATRIX_CHART, *(f"charts/{case}.svg" for case in DATA_LINES)])
    for src, img in shown.items():
        width, height = figures.size_of((published / src).read_bytes())
        assert (int(img.attrs["width"]), int(img.attrs["height"])) == (width, height), src
        assert width > 100 and height > 100, src
    assert shown[MATRIX_CHART] in _images(dom.by_id("matrix"))
    cases = len(json.loads((published / "run.json").read_text())["boot_seconds"])
    alt = shown[MATRIX_CHART].attrs["alt"]
    assert alt.startswith(f"Seconds from boot to verdict for each of the {cases} boot cases")
    for case in DATA_LINES:
        run = dom.by_id(f"run-{case}")
        img = shown[f"charts/{case}.svg"]
        assert img in _images(run), case  # in the case's own column, with its console
        assert list(run.iter("pre")), case
        variant = "nommu" if case.endswith("nommu") else "mmu-full" if case.endswith("full") else "mmu"
        assert img.attrs["alt"].startswith(f"Charts of {case} on the {variant} kernel: "), img.attrs["alt"]
    # the declaration's title and axes, and the series printed
    declared = synthetic.project.demos["buddy"].charts["buddy"]
    told = f"{declared.title} ({declared.y} against {declared.x}; before, fragmented)"
    assert shown["charts/buddy-c-nommu.svg"].attrs["alt"] == f"Charts of buddy-c-nommu on the nommu kernel: {told}"
    # the cases of a demo side by side: both oom charts in one row of columns
    rows = [node for node in dom.by_id("demo-oom").iter("div") if "demo-row" in node.classes()]
    assert any({"charts/oom-c-mmu.svg", "charts/oom-c-nommu.svg"} <= {i.attrs["src"] for i in _images(r)} for r in rows)
    assert not _images(dom.by_id("run-fork-c-mmu"))  # no data lines, no chart


# --- in a real browser ---


@dataclass(frozen=True)
class Seen:
    """One chart as the browser showed it."""

    src: str
    natural_width: int
    ink: float  # the share of its box, in the screenshot, that is not background

    def problem(self) -> str:
        if self.natural_width <= 0:
            return f"{self.src}: not loaded (naturalWidth {self.natural_width})"
        if self.ink < MIN_INK:
            return f"{self.src}: blank ({self.ink:.2%} of its box is ink, fewer than {MIN_INK:.0%})"
        return ""


def artifacts_folder(tmp_path: Path) -> Path:
    """Where the screenshot is kept: the caller's MMULAB_TEST_ARTIFACTS (the tests' environment is scrubbed of
    MMULAB_*: conftest keeps the caller's), else the test's tmp_path."""
    named = caller_variable("MMULAB_TEST_ARTIFACTS")
    folder = Path(named) if named else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def look(release: Path, tmp_path: Path, screenshot: Path) -> list[Seen]:
    """Open a test copy of the release page in headless Chromium: the charts' boxes and natural widths from its
    DOM, then a screenshot of the whole page at one CSS pixel per pixel, and each chart's ink in it."""
    from matplotlib import image

    measured = release / "index-measured.html"
    html = (release / "index.html").read_text()
    measured.write_text(html.replace("</body>", f"{MEASURE}</body>", 1))
    common = ("--force-device-scale-factor=1", "--hide-scrollbars", "--virtual-time-budget=10000")
    dom = parse_measured(
        chromium(tmp_path, *common, f"--window-size={WINDOW_WIDTH},1000", "--dump-dom", measured.as_uri()).stdout
    )
    height = int(dom["height"])
    chromium(
        tmp_path, *common, f"--window-size={WINDOW_WIDTH},{height}", f"--screenshot={screenshot}", measured.as_uri()
    )
    pixels = image.imread(screenshot)[:, :, :3]
    assert pixels.shape[:2] == (height, WINDOW_WIDTH), f"screenshot {pixels.shape} for a page of {height} px"
    seen = []
    for img in dom["images"]:
        top, left = round(img["top"]) + 2, round(img["left"]) + 2  # inside its 1 px border
        box = pixels[top : top + round(img["height"]) - 4, left : left + round(img["width"]) - 4]
        assert box.size, f"{img['src']}: an empty box {img}"
        ink = (abs(box - 1.0) > INK_DISTANCE).any(axis=2).mean()  # the charts' background is white
        seen.append(Seen(img["src"], int(img["natural"]), float(ink)))
    return seen


def parse_measured(dumped: str) -> dict:
    marker = '<pre id="measured">'
    assert marker in dumped, "the page's load event never ran the measuring script"
    text = dumped.split(marker, 1)[1].split("</pre>", 1)[0]
    return json.loads(text.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))


@pytest.mark.needs("chromium")
def test_a_browser_shows_every_chart_loaded_and_not_blank(published: Path, tmp_path: Path) -> None:
    screenshot = artifacts_folder(tmp_path) / "release-page-charts.png"
    seen = look(published, tmp_path, screenshot)
    print(f"screenshot of the release page: {screenshot}")
    assert sorted(s.src for s in seen) == charts_of(published), f"screenshot: {screenshot}"
    problems = [s.problem() for s in seen if s.problem()]
    assert problems == [], f"{problems}; screenshot: {screenshot}"


BLANK_SVG = (
    '<?xml version="1.0" encoding="utf-8" standalone="no"?>\n'
    '<svg xmlns="http://www.w3.org/2000/svg" width="648pt" height="400pt" viewBox="0 0 648 400">'
    '<rect width="648" height="400" fill="#ffffff"/></svg>\n'
)


@pytest.mark.slow
@pytest.mark.needs("chromium")
@pytest.mark.parametrize("breakage", ["missing", "blank"])
def test_the_browser_check_fails_for_a_missing_or_blank_chart(published: Path, tmp_path: Path, breakage: str) -> None:
    """The check above can fail: the same look at a release with one chart removed, or drawn blank."""
    broken = tmp_path / "broken"
    shutil.copytree(published, broken)
    chart = broken / "charts" / "oom-c-mmu.svg"
    if breakage == "missing":
        chart.unlink()
    else:
        chart.write_text(BLANK_SVG)
    seen = {s.src: s for s in look(broken, tmp_path, tmp_path / f"{breakage}.png")}
    problem = seen.pop("charts/oom-c-mmu.svg").problem()
    assert problem.startswith("charts/oom-c-mmu.svg: " + ("not loaded" if breakage == "missing" else "blank"))
    assert [s.problem() for s in seen.values() if s.problem()] == []  # the others still pass
