"""`mmulab verify` against a release's documents (issue 18, defects 6-8): the page and run.json are checked
(the page drawn again from the manifest and the consoles, byte for byte), every document is read bounded, and
the SBOM and the provenance are held to SPDX 2.3 and SLSA v1 (cross-checked with the real spdx-tools).

Each release here is a real one: published by `publish()` from the synthetic build of tests/test_release.py.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_release import Synthetic, make_synthetic, synthetic  # noqa: F401  (synthetic: the fixture)
from test_verify import dumps, run_verify, write_sums

from mmulab.boot import charts
from mmulab.core.fsutil import sha256_of
from mmulab.release import check, documents, figures, page, provenance
from mmulab.release.format import METADATA
from mmulab.release.publish import project_version

GiB = 1 << 30


@pytest.fixture(scope="module")
def published_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A release as `doit publish` makes it (after `doit all` passed): published once for the module."""
    return make_synthetic(tmp_path_factory.mktemp("synthetic")).publish()


@pytest.fixture
def published(published_once: Path, tmp_path: Path) -> Path:
    """The module's release, not yet touched: each test's own copy (publishing for every test was most of the
    module's time)."""
    copy = tmp_path / "published" / published_once.name
    shutil.copytree(published_once, copy, symlinks=True)
    return copy


def problems_of(capsys: pytest.CaptureFixture[str], release: Path) -> tuple[int, list[str]]:
    code, out, err = run_verify(capsys, str(release))
    assert err == []
    return code, [line for line in out if not line.startswith("mmulab: verify:")]


def rewrite(release: Path, name: str, change: Callable[[Any], Any]) -> None:
    """Change a JSON document of the release as an attacker would: then SHA256SUMS is made to vouch for it."""
    path = release / name
    document = json.loads(path.read_text())
    change(document)  # in place
    path.write_text(dumps(document))
    write_sums(release)


def test_a_published_release_verifies_documents_and_all(published: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert problems_of(capsys, published) == (0, [])


# --- defect 6: index.html and run.json ---


REDIRECT = '<!DOCTYPE html><script>location.replace("https://elsewhere.example/get-this-kernel")</script>\n'


def test_defect6_an_index_html_turned_into_a_javascript_redirect_is_refused(
    published: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (published / "index.html").write_text(REDIRECT)
    write_sums(published)  # SHA256SUMS vouches for the new page
    code, problems = problems_of(capsys, published)
    assert code == 1
    assert len(problems) == 1
    assert problems[0].startswith(
        "mismatch: index.html: not the page this release's manifest and consoles make (line 1 differs; made by mmulab "
    )


def test_defect6_one_changed_line_of_the_page_is_found(published: Path, capsys: pytest.CaptureFixture[str]) -> None:
    html = (published / "index.html").read_text()
    lines = html.splitlines(keepends=True)
    number = next(i for i, line in enumerate(lines) if "PASS" in line)
    lines[number] = lines[number].replace("PASS", "FAIL", 1)
    (published / "index.html").write_text("".join(lines))
    write_sums(published)
    code, problems = problems_of(capsys, published)
    assert code == 1 and len(problems) == 1
    assert f"(line {number + 1} differs; " in problems[0]


def test_defect6_the_page_comes_from_the_manifest_not_from_this_checkout(
    synthetic: Synthetic,  # noqa: F811
    published: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another checkout's demos.toml may differ: verify never reads it (the notes are in the manifest)."""
    manifest = json.loads((published / "manifest.json").read_text())
    assert page.notes_of(manifest) == page.demo_notes(synthetic.project)
    html = (published / "index.html").read_text()
    assert html == page.render(published, manifest)  # the notes from the manifest
    assert html != page.render(published, manifest, {})  # and they matter: must lines are marked

    def no_checkout(*_: object) -> None:
        raise AssertionError("verify read the checkout's demo notes")

    monkeypatch.setattr(page, "demo_notes", no_checkout)
    assert problems_of(capsys, published) == (0, [])


def test_defect6_a_page_of_another_mmulab_version_says_which(
    published: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (published / "index.html").write_text((published / "index.html").read_text().replace("<h2", "<h2 class=new", 1))
    write_sums(published)
    _, problems = problems_of(capsys, published)
    manifest = json.loads((published / "manifest.json").read_text())
    theirs = f"mmulab {manifest['project']['version']} at commit unknown"  # published outside git
    assert f"; made by {theirs}, this is mmulab {project_version()} at commit " in problems[0]
    monkeypatch.setattr(check, "_this_mmulab", lambda: documents.mmulab_named("9.9.9", "f" * 40))
    _, problems = problems_of(capsys, published)
    assert problems[0].endswith(
        f"; made by {theirs}, this is mmulab 9.9.9 at commit ffffffffffff: another version may make other bytes; "
        "verify with that one)"
    )


def test_defect6_verify_refuses_a_page_template_that_would_run_javascript(
    synthetic: Synthetic,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The page verify draws must have no JavaScript, even when this mmulab's template (data) was edited."""
    template = tmp_path / "template" / "index.html.j2"
    template.parent.mkdir()
    template.write_text(page.TEMPLATE.read_text().replace("</body>", "<script>alert(1)</script></body>"))
    monkeypatch.setattr(page, "render", functools.partial(page.render, template=template))
    release = synthetic.publish()  # the same template publishes and verifies: the bytes agree
    capsys.readouterr()
    code, problems = problems_of(capsys, release)
    assert code == 1
    assert problems == [
        "mismatch: index.html: this mmulab's page template makes a <script> element; a release page has none"
    ]


@pytest.mark.parametrize(
    ("html", "found"),
    [
        ("<p>text &lt;script&gt; onload=x javascript:y</p>", []),  # a console's text, escaped: nothing runs
        ("<SCRIPT src=x></SCRIPT>", ["a <script> element"]),
        ('<body onload="go()">', ["an event attribute onload= on <body>"]),
        ('<a href=" JavaScript:go()">x</a>', ["a javascript: URL in <a href>"]),
        ('<meta http-equiv="Refresh" content="0; url=https://x">', ["a <meta http-equiv=refresh> redirect"]),
    ],
)
def test_what_counts_as_javascript_in_a_page(html: str, found: list[str]) -> None:
    assert documents.page_problems(html) == found


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda run: run.__setitem__(key, value)


def _seconds(change: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    return lambda run: change(run["boot_seconds"])


def _first_case(value: Any) -> Callable[[dict[str, Any]], None]:
    return _seconds(lambda seconds: seconds.__setitem__(sorted(seconds)[0], value))


RUN_CHANGES: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "an extra key": (_set("script", "<script>"), "keys ['boot_seconds', 'host', 'published_at', 'script'], expected"),
    "no host": (lambda run: run.pop("host"), "keys ['boot_seconds', 'published_at'], expected exactly"),
    "a date that is no date": (_set("published_at", "yesterday"), "published_at 'yesterday' is not an ISO-8601"),
    "month 13": (_set("published_at", "2026-13-01T00:00:00Z"), "published_at '2026-13-01T00:00:00Z' is not"),
    "a local time": (_set("published_at", "2026-01-01T00:00:00+02:00"), "is not an ISO-8601 UTC time"),
    "a host with a newline": (_set("host", "a\nmismatch: fake"), "host 'a\\nmismatch: fake' is not a printable"),
    "a host of 300 characters": (_set("host", "h" * 300), "is not a printable name of at most 255 characters"),
    "a host that is a number": (_set("host", 7), "host 7 is not a printable name"),
    "NaN seconds": (_first_case(float("nan")), "is not a number of seconds >= 0"),
    "negative seconds": (_first_case(-1), ": -1 is not a number of seconds >= 0"),
    "seconds as text": (_first_case("1.0"), ": '1.0' is not a number of seconds >= 0"),
    "seconds as true": (_first_case(True), ": True is not a number of seconds >= 0"),
    "a case missing": (_seconds(lambda s: s.pop(sorted(s)[0])), " missing"),
    "a case the manifest lacks": (_seconds(lambda s: s.__setitem__("nosuch", 1.0)), "nosuch is no boot case"),
    "boot_seconds a list": (_set("boot_seconds", [1.0]), "boot_seconds: not an object"),
}


@pytest.mark.parametrize("change", list(RUN_CHANGES))
def test_defect6_run_json_holds_exactly_its_facts(
    published: Path, change: str, capsys: pytest.CaptureFixture[str]
) -> None:
    edit, expected = RUN_CHANGES[change]
    rewrite(published, "run.json", edit)
    code, problems = problems_of(capsys, published)
    assert code == 1
    assert len(problems) == 1 and problems[0].startswith("mismatch: run.json: ")
    assert expected in problems[0]


# --- defect 7: every document read bounded ---


def sparse(path: Path, size: int) -> None:
    """`path` as `size` bytes of zeros that cost no disk (a hole)."""
    path.unlink(missing_ok=True)
    with path.open("wb") as handle:
        handle.truncate(size)


def peak_bytes_of(action: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    "name", ["SHA256SUMS", "manifest.json", "sbom.spdx.json", "provenance.intoto.json", "run.json", "index.html"]
)
def test_defect7_a_3_GiB_document_is_refused_by_its_size_not_read(
    published: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sparse(published / name, 3 * GiB)
    if name != "SHA256SUMS":  # SHA256SUMS without it: verify does not even hash it (bounded work)
        paths = sorted(p.relative_to(published).as_posix() for p in published.rglob("*") if p.is_file())
        text = "".join(f"{sha256_of(published / p)}  {p}\n" for p in paths if p not in ("SHA256SUMS", name))
        (published / "SHA256SUMS").write_text(text)
    outcome: list[tuple[int, list[str]]] = []
    peak = peak_bytes_of(lambda: outcome.append(problems_of(capsys, published)))
    code, problems = outcome[0]
    assert code == 1
    cap = check.MAX_JSON_BYTES if name.endswith(".json") else check.MAX_DOCUMENT_BYTES  # JSON is parsed whole
    assert f"mismatch: {name}: larger than {cap} bytes; not read" in problems
    assert peak < 16 << 20, f"verify held {peak} bytes at once"
    assert check.MAX_DOCUMENT_BYTES == 64 << 20


def test_defect7_a_console_the_page_shows_is_read_bounded_too(
    synthetic: Synthetic,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = sorted(synthetic.project.boots)[0]
    log = synthetic.layout.console_log(case)
    log.write_text(log.read_text() + "[    1.000000] a long console, line after line of it\n" * (1 << 17))
    size = log.stat().st_size
    assert size > 4 << 20
    release = synthetic.publish()
    capsys.readouterr()
    assert problems_of(capsys, release) == (0, [])  # read whole under the real bound
    monkeypatch.setattr(check, "MAX_DOCUMENT_BYTES", 1 << 20)
    outcome: list[tuple[int, list[str]]] = []
    peak = peak_bytes_of(lambda: outcome.append(problems_of(capsys, release)))
    assert outcome == [(1, [f"mismatch: boots/{case}.log: larger than {1 << 20} bytes; not read"])]
    assert peak < size, f"verify held {peak} bytes at once"


def test_defect7_a_document_that_grows_after_its_size_was_checked_is_still_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "manifest.json"
    path.write_bytes(b"{}")
    monkeypatch.setattr(check, "MAX_DOCUMENT_BYTES", 1000)
    real_stat = Path.stat

    def stat_then_grow(self: Path, **kwargs: Any) -> os.stat_result:
        result = real_stat(self, **kwargs)
        if self == path:
            with path.open("ab") as handle:  # grows between the stat and the read
                handle.write(b" " * 2000)
        return result

    monkeypatch.setattr(Path, "stat", stat_then_grow)
    with pytest.raises(documents.TooLarge, match=r"^larger than 1000 bytes; not read$"):
        check.read_document(path, "manifest.json")


# --- defect 8: SPDX 2.3 and SLSA provenance v1 ---


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda document: document.pop(key)


def _first(kind: str, change: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], None]:
    return lambda document: change(document[kind][0])


SBOM_CHANGES: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "no SPDXID": (_drop("SPDXID"), "SPDXID None, SPDX 2.3 requires 'SPDXRef-DOCUMENT'"),
    "no creationInfo": (_drop("creationInfo"), "no creationInfo"),
    "no creators": (lambda d: d["creationInfo"].__setitem__("creators", []), "creationInfo.creators: none"),
    "another data license": (lambda d: d.__setitem__("dataLicense", "MIT"), "dataLicense 'MIT', SPDX 2.3 requires"),
    "no namespace": (_drop("documentNamespace"), "no documentNamespace"),
    "a file without SHA1": (
        _first("files", lambda f: f.__setitem__("checksums", f["checksums"][1:])),
        "files[0]: no SHA1 checksum",
    ),
    "a file without SPDXID": (_first("files", lambda f: f.pop("SPDXID")), "files[0]: SPDXID None is not SPDXRef-"),
    "a package without downloadLocation": (
        _first("packages", lambda p: p.pop("downloadLocation")),
        "packages[0]: no downloadLocation",
    ),
    "two elements, one SPDXID": (
        lambda d: d["files"][1].__setitem__("SPDXID", d["files"][0]["SPDXID"]),
        "names more than one element",
    ),
    "a relationship to nothing": (
        _first("relationships", lambda r: r.__setitem__("relatedSpdxElement", "SPDXRef-Nothing")),
        "relationships[0]: relatedSpdxElement 'SPDXRef-Nothing' names no element",
    ),
}


def spdx_tools_messages(path: Path) -> list[str]:
    """What the real spdx-tools (a test dependency) says of an SBOM file."""
    parser = pytest.importorskip("spdx_tools.spdx.parser.parse_anything")
    validator = pytest.importorskip("spdx_tools.spdx.validation.document_validator")
    try:
        document = parser.parse_file(str(path))
    except Exception as error:  # spdx-tools refuses some documents at parsing already
        return [f"parse: {error}"]
    return [m.validation_message for m in validator.validate_full_spdx_document(document)]


@pytest.mark.parametrize("change", list(SBOM_CHANGES))
def test_defect8_an_sbom_spdx_tools_rejects_verify_rejects(
    published: Path, change: str, capsys: pytest.CaptureFixture[str]
) -> None:
    edit, expected = SBOM_CHANGES[change]
    assert spdx_tools_messages(published / "sbom.spdx.json") == []
    rewrite(published, "sbom.spdx.json", edit)
    assert spdx_tools_messages(published / "sbom.spdx.json") != []  # the standard's own tool rejects it
    code, problems = problems_of(capsys, published)
    assert code == 1
    assert any(expected in line for line in problems), problems
    assert all(line.startswith("mismatch: sbom.spdx.json: ") for line in problems)


def test_defect8_an_sbom_valid_for_spdx_but_not_this_releases_is_refused(
    published: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rewrite(published, "sbom.spdx.json", _first("packages", lambda p: p.__setitem__("licenseConcluded", "MIT")))
    assert spdx_tools_messages(published / "sbom.spdx.json") == []
    code, problems = problems_of(capsys, published)
    assert code == 1 and len(problems) == 1
    assert problems[0].startswith(
        "mismatch: sbom.spdx.json: not the SBOM this release's manifest and files make (first difference: "
        "packages[0].licenseConcluded; made by mmulab "
    )


def _predicate(path: str, value: str) -> Callable[[dict[str, Any]], None]:
    def change(statement: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = statement["predicate"]
        for key in parents:
            node = node[key]
        node[last] = value

    return change


STATEMENT_CHANGES: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "a bogus predicateType": (
        lambda s: s.__setitem__("predicateType", "https://example.org/not-slsa"),
        "predicateType 'https://example.org/not-slsa', expected SLSA provenance v1 ('https://slsa.dev/provenance/v1')",
    ),
    "a bogus buildType": (
        _predicate("buildDefinition.buildType", "https://example.org/other-build"),
        f"buildDefinition.buildType 'https://example.org/other-build', expected '{provenance.BUILD_TYPE}'",
    ),
    "a bogus builder": (
        _predicate("runDetails.builder.id", "https://evil.example/builder"),
        "runDetails.builder.id 'https://evil.example/builder', the manifest's project makes 'pkg:generic/mmulab@",
    ),
    "no predicate": (lambda s: s.pop("predicate"), "no predicate"),
}


@pytest.mark.parametrize("change", list(STATEMENT_CHANGES))
def test_defect8_a_provenance_with_a_bogus_type_or_builder_is_refused(
    published: Path, change: str, capsys: pytest.CaptureFixture[str]
) -> None:
    edit, expected = STATEMENT_CHANGES[change]
    rewrite(published, "provenance.intoto.json", edit)
    code, problems = problems_of(capsys, published)
    assert code == 1
    assert len(problems) == 1 and problems[0].startswith(f"mismatch: provenance.intoto.json: {expected}"), problems


def test_defect8_a_statement_that_is_not_this_manifests_is_refused(
    published: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rewrite(
        published,
        "provenance.intoto.json",
        _predicate("buildDefinition.externalParameters.release", "another-release"),
    )
    code, problems = problems_of(capsys, published)
    assert code == 1 and len(problems) == 1
    assert problems[0].startswith(
        "mismatch: provenance.intoto.json: not the statement this release's manifest makes (first difference: "
        "predicate.buildDefinition.externalParameters.release; made by mmulab "
    )


def test_the_statement_check_is_a_function_of_the_statement(published: Path) -> None:
    """A signed envelope's decoded payload is checked with the same function: the dict is all it needs."""
    manifest = json.loads((published / "manifest.json").read_text())
    statement = provenance.intoto_statement(manifest)
    assert documents.statement_problems(statement, manifest) == []
    statement["predicateType"] = "x"
    assert documents.statement_problems(statement, manifest) == [
        f"predicateType 'x', expected SLSA provenance v1 ('{provenance.PREDICATE_TYPE}')"
    ]


UNMAKEABLE: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "demos not a list": (
        lambda m: m.__setitem__("demos", {"not": "a list"}),
        "mismatch: manifest.json: index.html cannot be made from it (ValueError: demos: not a list)",
    ),
    "a lone surrogate in the release name": (
        lambda m: m.__setitem__("release", "r\ud800"),
        "mismatch: manifest.json: index.html cannot be made from it (UnicodeEncodeError: ",
    ),
    "project a number": (
        lambda m: m.__setitem__("project", 5),
        "mismatch: manifest.json: sbom.spdx.json cannot be made from it (TypeError: ",
    ),
    "an epoch past year 9999": (
        lambda m: m.__setitem__("source_date_epoch", 10**30),
        "mismatch: manifest.json: sbom.spdx.json cannot be made from it (",
    ),
}


@pytest.mark.parametrize("change", list(UNMAKEABLE))
def test_a_manifest_the_documents_cannot_be_made_from_is_one_line_each(
    published: Path, change: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A self-consistent manifest the documents cannot be made from: lines naming it, never a traceback."""
    edit, expected = UNMAKEABLE[change]
    rewrite(published, "manifest.json", edit)
    code, problems = problems_of(capsys, published)
    assert code == 1
    assert any(line.startswith(expected) for line in problems), problems
    assert all(line.startswith("mismatch: ") and "\n" not in line for line in problems)


# --- issue 19: the charts, drawn again from the release's own consoles ---


def vouch(release: Path) -> None:
    """What an attacker does after changing files, with mmulab's own code: the manifest lists every file as it
    is now, the SBOM, page and statement are made again from it, then the sums."""
    manifest = json.loads((release / "manifest.json").read_text())
    on_disk = sorted(p.relative_to(release).as_posix() for p in release.rglob("*") if p.is_file())
    manifest["files"] = {p: sha256_of(release / p) for p in on_disk if p not in METADATA}
    (release / "manifest.json").write_text(dumps(manifest))
    for name, text in documents.made_from_manifest(release, manifest).items():
        (release / name).write_text(text)
    (release / "provenance.intoto.json").write_text(dumps(documents.made_statement(manifest)))
    write_sums(release)


def test_charts_a_vouched_release_verifies_as_published(published: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The helper above changes nothing by itself: each test below fails by its own change alone."""
    vouch(published)
    assert problems_of(capsys, published) == (0, [])


def test_charts_a_changed_chart_is_one_line_naming_it(published: Path, capsys: pytest.CaptureFixture[str]) -> None:
    chart = published / "charts" / "oom-c-mmu.svg"
    svg = chart.read_text()
    assert svg.rstrip().endswith("</svg>")
    chart.write_text(svg.rstrip()[: -len("</svg>")] + '<rect x="90" y="90" width="40" height="9"/>\n</svg>\n')
    vouch(published)
    code, problems = problems_of(capsys, published)
    assert code == 1
    assert len(problems) == 1, problems
    assert problems[0].startswith(
        f"mismatch: charts/oom-c-mmu.svg: not the chart matplotlib {charts.matplotlib_version()} draws from "
        "boots/oom-c-mmu.log (line "
    )


def test_charts_a_missing_chart_is_one_line_naming_it(published: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (published / "charts" / "buddy-c-nommu.svg").unlink()
    vouch(published)
    assert problems_of(capsys, published) == (
        1,
        [
            "missing: charts/buddy-c-nommu.svg: boots/buddy-c-nommu.log holds data lines: verify draws this chart, "
            "the release lacks it"
        ],
    )


def test_charts_a_missing_matrix_chart_is_one_line(published: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (published / "charts" / "matrix.svg").unlink()
    vouch(published)
    code, problems = problems_of(capsys, published)
    assert code == 1 and len(problems) == 1 and problems[0].startswith("missing: charts/matrix.svg: "), problems


def test_charts_an_extra_chart_is_one_line_naming_it(published: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copyfile(published / "charts" / "oom-c-mmu.svg", published / "charts" / "fork-c-mmu.svg")
    vouch(published)
    assert problems_of(capsys, published) == (
        1,
        [
            "unexpected: charts/fork-c-mmu.svg: boots/fork-c-mmu.log draws no chart (no data lines): nothing "
            "draws this file"
        ],
    )


def test_charts_a_console_changed_under_its_chart_is_one_line(
    published: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The chart is checked against the console, not the console against the chart's own record."""
    log = published / "boots" / "oom-c-nommu.log"
    log.write_text(log.read_text().replace("oom score 8 0", "oom score 8 70"))
    vouch(published)
    code, problems = problems_of(capsys, published)
    assert code == 1 and len(problems) == 1, problems
    assert problems[0].startswith("mismatch: charts/oom-c-nommu.svg: not the chart ")


def test_charts_the_matrix_is_drawn_from_run_json_boot_seconds(
    published: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = sorted(json.loads((published / "run.json").read_text())["boot_seconds"])[0]
    rewrite(published, "run.json", lambda run: run["boot_seconds"].__setitem__(case, 99.5))
    code, problems = problems_of(capsys, published)
    assert code == 1 and len(problems) == 1, problems
    assert (
        problems[0].startswith("mismatch: charts/matrix.svg: not the chart matplotlib ")
        and "from the manifest's boots and run.json's boot_seconds (line " in problems[0]
    )


def test_charts_drawn_by_another_matplotlib_is_one_line_naming_both_and_the_fix(
    published: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ours = charts.matplotlib_version()
    rewrite(published, "manifest.json", lambda m: m["charts"].__setitem__("matplotlib", "3.1.0"))
    vouch(published)  # the page names the matplotlib: made again too
    assert problems_of(capsys, published) == (
        1,
        [
            f"mismatch: charts/: drawn by matplotlib 3.1.0, this verify has matplotlib {ours}, which draws other "
            "bytes; verify with matplotlib 3.1.0 (pip install 'matplotlib==3.1.0' into mmulab's environment)"
        ],
    )


def test_charts_a_manifest_without_its_matplotlib_record_is_one_line(
    published: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rewrite(published, "manifest.json", lambda m: m.pop("charts"))
    vouch(published)
    assert problems_of(capsys, published) == (
        1,
        ["mismatch: manifest.json: no charts.matplotlib: which matplotlib drew the charts"],
    )


def test_charts_a_malformed_data_line_in_a_console_is_one_line_naming_it(
    published: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = published / "boots" / "buddy-c-nommu.log"
    log.write_text(log.read_text().replace("buddy before 1 7", "buddy before 1 seven"))
    vouch(published)
    code, problems = problems_of(capsys, published)
    assert code == 1 and len(problems) == 1, problems
    assert problems[0].startswith("mismatch: boots/buddy-c-nommu.log: buddy-c-nommu: console line 3: "), problems


def test_charts_a_console_of_too_many_data_lines_is_one_line_and_not_drawn(
    published: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = published / "boots" / "oom-c-mmu.log"
    log.write_text(log.read_text() + "mmulab: data: oom score 24 300\n" * (figures.MAX_DATA_LINES + 1))
    vouch(published)
    drawn: list[str] = []
    real = charts.draw_case
    monkeypatch.setattr(charts, "draw_case", lambda case, *args: drawn.append(case) or real(case, *args))
    code, problems = problems_of(capsys, published)
    assert code == 1
    assert problems == [
        f"mismatch: boots/oom-c-mmu.log: {figures.MAX_DATA_LINES + 4} data lines, more than a chart draws "
        f"({figures.MAX_DATA_LINES})"
    ]
    assert "oom-c-mmu" not in drawn and "oom-c-nommu" in drawn


def test_charts_numbers_matplotlib_cannot_draw_are_one_line_naming_the_console(
    published: Path, capsys: pytest.CaptureFixture[str], recwarn: pytest.WarningsRecorder
) -> None:
    """Valid data lines whose numbers matplotlib cannot lay out (a stranger's console): one line, no traceback,
    and none of numpy's overflow warnings on the way (they reached the user's stderr)."""
    log = published / "boots" / "oom-c-mmu.log"
    log.write_text(log.read_text() + "mmulab: data: oom score 1e308 1e308\nmmulab: data: oom score -1e308 -5\n")
    vouch(published)
    code, problems = problems_of(capsys, published)
    assert code == 1 and len(problems) == 1, problems
    assert problems[0].startswith("mismatch: boots/oom-c-mmu.log: its data lines cannot be drawn (ValueError: ")
    assert [str(warning.message) for warning in recwarn] == []
