"""The release page: rendered from a small synthetic release, checked structurally and in a real browser."""

from __future__ import annotations

import json
import struct
import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from conftest import same_bytes_in_two_processes

from mmulab.project.loader import load_project
from mmulab.release import page

NOISE = "[    0.012345] Dentry cache hash table entries: 16384"
ALPHA_MUST = {
    "alpha-c-nommu": ("Run /init as init process", "mmulab: alpha: value now 0x3333", "reboot: Power down"),
    "alpha-c-mmu": ("Run /init as init process", "mmulab: alpha: value now 0x1111", "reboot: Power down"),
    "alpha-c-mmu-mmu-off": ("OpenSBI",),
    "alpha-asm-nommu": ("mmulab: alpha: value now 0x3333",),
    "alpha-asm-mmu": ("mmulab: alpha: value now 0x1111",),
}
NOTES = {
    "alpha": page.DemoNotes("a child writes the parent's memory: NOMMU lets it, MMU isolates", ALPHA_MUST),
    "beta": page.DemoNotes("a demo that fails here", {"beta-asm-nommu": ("mmulab: beta: done",)}),
}


def _log(*program: str) -> str:
    return "\n".join(["$ qemu-system-riscv64 -M virt", NOISE, "[    0.2] Run /init as init process", *program]) + "\n"


LOGS = {
    "alpha-c-nommu": _log(
        "mmulab: alpha: starting the child", "mmulab: alpha: value now 0x3333", "[    0.3] reboot: Power down"
    ),
    "alpha-c-mmu": _log(
        "mmulab: alpha: starting the child",
        "mmulab: alpha: child says <script>alert('x')</script> & more",
        "mmulab: alpha: value now 0x1111",
        "[    0.3] reboot: Power down",
    ),
    "alpha-c-mmu-mmu-off": "OpenSBI v1.1\nBoot HART MEDELEG : 0x0\n",
    "alpha-asm-nommu": _log("mmulab: alpha: value now 0x3333"),
    "alpha-asm-mmu": _log("mmulab: alpha: value now 0x1111"),
    "beta-asm-nommu": _log("mmulab: beta: starting", *(f"[    1.{i}] noise {i}" for i in range(30))),
    # beta-asm-mmu did not run: no log
}
BOOTS = [
    ("alpha-asm-mmu", "alpha", "mmu", "default", "pass", "pass", True),
    ("alpha-asm-nommu", "alpha", "nommu", "default", "pass", "pass", True),
    ("alpha-c-mmu", "alpha", "mmu", "default", "pass", "pass", True),
    ("alpha-c-mmu-mmu-off", "alpha", "mmu", "mmu-off", "hang", "hang", True),
    ("alpha-c-nommu", "alpha", "nommu", "default", "pass", "pass", True),
    ("beta-asm-mmu", "beta", "mmu", "default", "pass", "not-run", False),
    ("beta-asm-nommu", "beta", "nommu", "default", "pass", "hang", False),
]
KEYS = ("case", "demo", "variant", "qemu", "expected", "observed", "passed")
SHA = "0123456789abcdef" * 4


def make_release(root: Path) -> dict:
    """A small release: its manifest, its boot logs and every file the manifest names (empty)."""
    files = {f"boots/{case}.log": SHA for case in LOGS}
    for path in ("nommu/Image", "nommu/config", "nommu/fragment.config", "mmu/Image", "mmu/busybox.config"):
        files[path] = SHA
    files["sources/linux-6.12.tar.xz"] = SHA
    files["sources/patches/musl/0001-riscv64-add-vfork.patch"] = SHA
    files["sources/musl-1.2.3.tar.gz"] = SHA
    for path in [*files, *page.METADATA_FILES]:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("")
    for case, text in LOGS.items():
        (root / "boots" / f"{case}.log").write_text(text)
    return {
        "format": "mmulab-release/1",
        "release": "test-<release>",
        "project": {
            "name": "mmulab",
            "version": "0.1.0",
            "commit": "fedcba9876543210" * 2,
            "describe": "",
            "dirty": False,
        },
        "source_date_epoch": 1700000000,
        "sources": [
            {
                "name": "linux",
                "version": "6.12.117",
                "file": "sources/linux-6.12.tar.xz",
                "sha256": SHA,
                "origin": "/usr/src/linux-source-6.12.tar.xz",
                "origin_kind": "debian-source",
                "package": "linux-source-6.12",
                "package_version": "6.12.117-1~deb12u1",
                "trust": "apt-archive",
                "license": "GPL-2.0-only",
                "download_location": "NOASSERTION",
                "patches": [],
            },
            {
                "name": "musl",
                "version": "1.2.3",
                "file": "sources/musl-1.2.3.tar.gz",
                "sha256": SHA,
                "origin": "https://musl.libc.org/releases/musl-1.2.3.tar.gz",
                "origin_kind": "url",
                "trust": "pinned",
                "license": "MIT",
                "patches": [
                    {
                        "name": "0001-riscv64-add-vfork.patch",
                        "file": "sources/patches/musl/0001-riscv64-add-vfork.patch",
                        "sha256": SHA,
                    }
                ],
            },
        ],
        "tools": {"gcc": {"version": "riscv64-linux-gnu-gcc 12.2.0", "package": "gcc-riscv64-linux-gnu"}},
        "configs": {
            "kernel-nommu": {"fragment_sha256": SHA, "config_sha256": SHA},
            "busybox-mmu": {"fragment_sha256": SHA, "config_sha256": SHA},
        },
        "boots": [dict(zip(KEYS, boot, strict=True)) for boot in BOOTS],
        "files": dict(sorted(files.items())),
    }


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(child if isinstance(child, str) else child.text() for child in self.children)

    def iter(self, tag: str | None = None):
        for child in self.children:
            if isinstance(child, Node):
                if tag is None or child.tag == tag:
                    yield child
                yield from child.iter(tag)

    def by_id(self, ident: str) -> Node:
        return next(node for node in self.iter() if node.attrs.get("id") == ident)

    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


VOID = {"meta", "br", "link", "img", "input", "hr", "col", "source", "wbr"}


class TreeBuilder(HTMLParser):
    """A small DOM from Python's html.parser (enough for these checks; the page is well-formed)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(html: str) -> Node:
    builder = TreeBuilder()
    builder.feed(html)
    builder.close()
    assert builder.stack == [builder.root], "unclosed elements"
    return builder.root


@pytest.fixture
def release(tmp_path: Path) -> tuple[Path, dict]:
    root = tmp_path / "release"
    root.mkdir()
    return root, make_release(root)


@pytest.fixture
def dom(release: tuple[Path, dict]) -> Node:
    root, manifest = release
    return parse(page.render(root, manifest, NOTES))


def matrix_rows(dom: Node) -> dict[str, list[str]]:
    table = next(dom.by_id("matrix").iter("table"))
    return {
        row.attrs["id"].removeprefix("case-"): [td.text() for td in row.iter("td")]
        for row in table.iter("tr")
        if "id" in row.attrs
    }


def test_matrix_has_every_case_with_its_verdict(dom: Node) -> None:
    rows = matrix_rows(dom)
    assert list(rows) == [boot[0] for boot in BOOTS]
    for case, demo, variant, qemu, expected, observed, passed in BOOTS:
        assert rows[case][:7] == [case, demo, variant, qemu, expected, observed, "PASS" if passed else "FAIL"]
    assert "5 of 7 boot cases passed" in dom.text()


def test_side_by_side_shows_the_c_build_and_lists_the_others(dom: Node) -> None:
    section = dom.by_id("demo-alpha")
    assert NOTES["alpha"].description in section.text()
    rows = [node for node in section.iter("div") if "demo-row" in node.classes()]
    columns = [[run.attrs["id"].removeprefix("run-") for run in row.iter("article")] for row in rows]
    assert columns == [["alpha-c-nommu", "alpha-c-mmu"], ["alpha-c-mmu-mmu-off"]]
    others = next(node for node in section.iter("ul") if "others" in node.classes()).text()
    assert "alpha-asm-nommu" in others and "alpha-asm-mmu" in others and "PASS" in others
    # beta has only an asm build: that one is shown
    beta = dom.by_id("demo-beta")
    assert [run.attrs["id"] for run in beta.iter("article")] == ["run-beta-asm-nommu", "run-beta-asm-mmu"]


def key_console(dom: Node, case: str) -> Node:
    return next(pre for pre in dom.by_id(f"run-{case}").iter("pre") if "full" not in pre.classes())


def test_marker_lines_are_marked_and_noise_is_folded_away(dom: Node) -> None:
    pre = key_console(dom, "alpha-c-nommu")
    marks = [mark.text() for mark in pre.iter("mark")]
    assert marks == [
        "[    0.2] Run /init as init process",
        "mmulab: alpha: value now 0x3333",
        "[    0.3] reboot: Power down",
    ]
    assert "mmulab: alpha: starting the child" in pre.text()  # an mmulab: line, shown but not a marker
    assert NOISE not in pre.text() and "qemu-system-riscv64" not in pre.text()
    assert "2 lines folded" in pre.text()
    details = next(dom.by_id("run-alpha-c-nommu").iter("details"))
    assert next(details.iter("summary")).text() == "full console (6 lines)"
    assert NOISE in details.text()
    assert [mark.text() for mark in details.iter("mark")] == marks


def test_console_text_is_escaped(release: tuple[Path, dict], dom: Node) -> None:
    root, manifest = release
    html = page.render(root, manifest, NOTES)
    assert not list(dom.iter("script"))
    assert "&lt;script&gt;alert(" in html and "<script>" not in html
    assert "child says <script>alert('x')</script> & more" in key_console(dom, "alpha-c-mmu").text()
    assert "test-&lt;release&gt;" in html  # manifest strings too


def test_links_are_relative_and_point_at_files_of_the_release(release: tuple[Path, dict], dom: Node) -> None:
    root, _ = release
    ids = {node.attrs["id"] for node in dom.iter() if "id" in node.attrs}
    links = [a.attrs["href"] for a in dom.iter("a")]
    assert links
    for href in links:
        parts = urlsplit(href)
        assert not parts.scheme and not parts.netloc and not parts.path.startswith("/"), href
        if href.startswith("#"):
            assert href[1:] in ids, href
        else:
            assert (root / unquote(parts.path)).is_file(), href
    for case in LOGS:
        assert f"boots/{case}.log" in links
    assert "nommu/config" in links and "sources/patches/musl/0001-riscv64-add-vfork.patch" in links


def test_static_page_without_external_resources(dom: Node) -> None:
    assert not [node.tag for node in dom.iter() if node.tag in {"script", "link", "img", "iframe", "object"}]
    assert not [node for node in dom.iter() if "src" in node.attrs]
    style = next(dom.iter("style")).text()
    assert "url(" not in style and "@import" not in style
    assert next(dom.iter("meta")).attrs == {"charset": "utf-8"}


def test_failed_and_missing_cases(dom: Node) -> None:
    failed = dom.by_id("run-beta-asm-nommu")
    missing = next(node for node in failed.iter("p") if "missing" in node.classes())
    assert "mmulab: beta: done" in missing.text()
    assert "[    1.29] noise 29" in key_console(dom, "beta-asm-nommu").text()  # a failed case shows where it stopped
    not_run = dom.by_id("run-beta-asm-mmu")
    assert not list(not_run.iter("pre")) and not list(not_run.iter("a"))
    assert "no console log" in not_run.text()
    assert matrix_rows(dom)["beta-asm-mmu"][-1] == "no log"


def test_without_notes_the_mmulab_lines_are_marked(release: tuple[Path, dict]) -> None:
    root, manifest = release
    dom = parse(page.render(root, manifest))
    marks = [mark.text() for mark in key_console(dom, "alpha-c-nommu").iter("mark")]
    assert marks == ["mmulab: alpha: starting the child", "mmulab: alpha: value now 0x3333"]
    assert "a child writes" not in dom.text()
    assert [section.attrs["id"] for section in dom.iter("section")][1:3] == ["demo-alpha", "demo-beta"]


def rendered(root: str, manifest: str) -> bytes:
    """The page of the release at `root` (its manifest in a JSON file), as bytes: run in new processes."""
    return page.render(Path(root), json.loads(Path(manifest).read_text()), NOTES).encode()


def test_render_is_deterministic(release: tuple[Path, dict], tmp_path: Path) -> None:
    root, manifest = release
    manifest_file = tmp_path / "manifest.json"
    manifest_file.write_text(json.dumps(manifest))
    html = same_bytes_in_two_processes("test_page:rendered", [str(root), str(manifest_file)], tmp_path)
    assert html == page.render(root, manifest, NOTES).encode()


def test_a_case_name_cannot_reach_outside_the_release(release: tuple[Path, dict]) -> None:
    root, manifest = release
    (root.parent / "secret.log").write_text("mmulab: secret\n")
    manifest["boots"].append(
        dict(zip(KEYS, ("../secret", "alpha", "mmu", "default", "pass", "pass", True), strict=True))
    )
    html = page.render(root, manifest, NOTES)
    assert "mmulab: secret" not in html and "../secret" in html


def test_demo_notes_cover_every_case_of_the_project() -> None:
    project = load_project()
    notes = page.demo_notes(project)
    assert list(notes) == list(project.demos)
    assert {case for note in notes.values() for case in note.must} == set(project.boots)
    assert notes["addrspace"].must["addrspace-c-mmu"] == project.boots["addrspace-c-mmu"].must
    assert all(note.description for note in notes.values())


CHROMIUM = [
    "chromium",
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "chromium-profile"
    command = [*CHROMIUM, f"--user-data-dir={profile}", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def write_page(release: tuple[Path, dict]) -> Path:
    root, manifest = release
    index = root / "index.html"
    index.write_text(page.render(root, manifest, NOTES), encoding="utf-8")
    return index


@pytest.mark.needs("chromium")
def test_a_browser_shows_every_case_with_its_verdict(release: tuple[Path, dict], tmp_path: Path) -> None:
    index = write_page(release)
    dom = parse_browser_dom(chromium(tmp_path, "--dump-dom", index.as_uri()).stdout)
    rows = matrix_rows(dom)
    for case, *_, passed in BOOTS:
        assert rows[case][6] == ("PASS" if passed else "FAIL"), case
    assert not list(dom.iter("script"))
    assert [mark.text() for mark in key_console(dom, "alpha-c-mmu").iter("mark")][
        1
    ] == "mmulab: alpha: value now 0x1111"


def parse_browser_dom(html: str) -> Node:
    """Chromium's serialised DOM: it adds <tbody> and drops nothing the checks use."""
    assert "<html" in html
    return parse(html)


@pytest.mark.slow
@pytest.mark.needs("chromium")
def test_a_browser_screenshot_of_the_page(release: tuple[Path, dict], tmp_path: Path) -> None:
    index = write_page(release)
    shot = tmp_path / "page.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,2000", index.as_uri())
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (1400, 2000)
    assert len(data) > 50_000, "a nearly blank screenshot"


def lead(root: Path, manifest: dict) -> str:
    return " ".join(
        next(p for p in parse(page.render(root, manifest, NOTES)).iter("p") if "lead" in p.classes()).text().split()
    )


def test_the_opening_sentence_names_the_kernels_and_series_the_manifest_holds(release: tuple[Path, dict]) -> None:
    root, manifest = release
    assert lead(root, manifest).startswith("RISC-V Linux 6.12 built from pinned sources as 2 kernels: mmu and nommu, ")
    manifest["configs"]["kernel-mmu-full"] = manifest["configs"]["kernel-nommu"]
    manifest["sources"].append({**manifest["sources"][0], "name": "linux-6.6", "version": "6.6.60"})
    assert lead(root, manifest).startswith(
        "RISC-V Linux 6.6 and 6.12 built from pinned sources as 3 kernels: mmu, nommu and mmu-full, "
    )
    assert "twice" not in lead(root, manifest)
