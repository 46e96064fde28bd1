"""The documents a release makes from its manifest (the SBOM, the provenance statement, the page), made again
and checked; and the structure SPDX 2.3, SLSA provenance v1 and run.json require, told field by field.

publish writes what `made_from_manifest` gives; verify makes the same documents again from the release's own
manifest and files and compares, so a document rewritten after publishing (an index.html turned into a
JavaScript redirect, an SBOM without SPDXIDs) fails even when SHA256SUMS was rewritten to match. The structural
checks come first, so the line says what is wrong rather than only that the bytes differ; they are the SPDX 2.3
and SLSA v1 rules a consumer's tools (pyspdxtools, in-toto) apply, without needing those tools here.

No Problem here (check.py imports this module and makes the lines): a check returns the details of its lines,
or (path, detail) pairs.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from mmulab.core.fsutil import sha1_of
from mmulab.project.model import NOASSERTION
from mmulab.release import figures, page, provenance
from mmulab.release.format import CHARTS, INDEX, MANIFEST, PROVENANCE, SBOM

# What making a document of a hostile manifest may raise (a missing key, a list where a dict belongs, ...).
MAKING_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, RecursionError, OSError)
RUN_KEYS = ("boot_seconds", "host", "published_at")  # run.json's keys, exactly
MAX_HOST_CHARS = 255  # a host name (HOST_NAME_MAX is 64; a FQDN at most 253)
_UTC_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
_SPDX_ID = re.compile(r"SPDXRef-[A-Za-z0-9.-]+")
_SHA1 = re.compile(r"[0-9a-f]{40}")
_CREATOR = re.compile(r"(Tool|Person|Organization): \S.*")
SHOWN = 5  # at most this many structural problems of one document are told


class TooLarge(Exception):
    """A release file over the reader's bound: not read. `path` is its release path."""

    def __init__(self, path: str, cap: int) -> None:
        super().__init__(f"larger than {cap} bytes; not read")
        self.path = path


# ---------------------------------------------------------------------------------------------------------------
# Making them


def made_sbom(root: Path, manifest: Mapping[str, Any]) -> str:
    epoch = int(manifest["source_date_epoch"])
    return provenance.canonical_json(provenance.spdx_document(dict(manifest), epoch, lambda path: sha1_of(root / path)))


def made_statement(manifest: Mapping[str, Any], subjects: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The in-toto statement; `subjects` (path -> sha256) for a signed one, which covers every file."""
    return provenance.intoto_statement(dict(manifest), subjects)


def made_page(root: Path, manifest: Mapping[str, Any], read: Callable[[Path], bytes] = Path.read_bytes) -> str:
    """index.html from the manifest, the consoles (each through `read`) and this mmulab's page template."""
    import jinja2

    try:
        return page.render(root, manifest, read=read)
    except jinja2.TemplateError as exc:  # a manifest value the template cannot show (e.g. a number as project)
        raise ValueError(f"the page template: {exc}") from None


def made_from_manifest(root: Path, manifest: Mapping[str, Any]) -> dict[str, str]:
    """The SBOM and the page by name, from the manifest and the files in `root` (the provenance is made last,
    by publish: signed, it covers these and run.json too)."""
    return {SBOM: made_sbom(root, manifest), INDEX: made_page(root, manifest)}


def first_difference(found: Any, made: Any, where: str = "") -> str:
    """Where two JSON values first differ, as a path (`predicate.runDetails.builder.id`, `files[3]`)."""
    if isinstance(found, dict) and isinstance(made, dict):
        for key in sorted(set(found) | set(made), key=str):
            if found.get(key, ...) != made.get(key, ...):
                return first_difference(found.get(key), made.get(key), f"{where}.{key}" if where else str(key))
    elif isinstance(found, list) and isinstance(made, list) and len(found) == len(made):
        for index, (one, other) in enumerate(zip(found, made, strict=True)):
            if one != other:
                return first_difference(one, other, f"{where}[{index}]")
    return where or "the whole document"


def mmulab_named(version: Any, commit: Any) -> str:
    """An mmulab as made_by names it."""
    return f"mmulab {version!s} at commit {str(commit or 'unknown')[:12]}"


def made_by(manifest: Mapping[str, Any], ours: str) -> str:
    """Which mmulab the manifest says made the release, and which one this is (`ours`, from mmulab_named):
    another version's page template (or SBOM code) makes other bytes."""
    stated = manifest.get("project")
    stated = stated if isinstance(stated, dict) else {}
    theirs = mmulab_named(stated.get("version"), stated.get("commit"))
    if theirs == ours:
        return f"made by {theirs}, this mmulab too"
    return f"made by {theirs}, this is {ours}: another version may make other bytes; verify with that one"


def made_again(
    root: Path,
    manifest: dict[str, Any],
    statement: Mapping[str, Any] | None,
    read: Callable[[str], bytes],
    ours: Callable[[], str],
    subjects: Mapping[str, str] | None = None,
    charts: Mapping[str, bytes] | None = None,
) -> list[tuple[str, str]]:
    """The SBOM, the statement and the page, made again from the manifest and the files as publish makes them,
    against the release's: (path, detail) of each difference. `read(name)` gives a release file's bytes (bounded:
    TooLarge beyond); `ours()` names this mmulab (asked only when something differs); `subjects` are a signed
    statement's (every file but the provenance and the sums, with its sha256); `charts` the charts drawn again
    (charts_again), whose sizes the page takes as publish's page does, the release's own charts aside."""
    found: list[tuple[str, str]] = []
    made: dict[str, Any] = {}
    drawn = charts or {}

    def page_read(path: Path) -> bytes:
        name = path.relative_to(root).as_posix()
        return drawn[name] if name in drawn else read(name)

    makers: dict[str, Callable[[], Any]] = {
        SBOM: lambda: made_sbom(root, manifest).encode(),
        PROVENANCE: lambda: made_statement(manifest, subjects),
        # encoded here: a manifest's text may hold what UTF-8 cannot encode (a lone surrogate, "\ud800")
        INDEX: lambda: made_page(root, manifest, page_read).encode(),
    }
    for name, make in makers.items():
        try:
            made[name] = make()
        except TooLarge as exc:  # a console the page shows
            found.append((exc.path, str(exc)))
        except MAKING_ERRORS as exc:
            found.append((MANIFEST, f"{name} cannot be made from it ({type(exc).__name__}: {exc})"))
    differing: list[tuple[str, str]] = []  # each told with which mmulab made it, and which one this is
    if SBOM in made and (difference := _bytes_difference(read, SBOM, made[SBOM], _json_difference)):
        differing.append((SBOM, f"not the SBOM this release's manifest and files make ({difference}"))
    if PROVENANCE in made and statement is not None and statement != made[PROVENANCE]:
        where = f"first difference: {first_difference(statement, made[PROVENANCE])}"
        differing.append((PROVENANCE, f"not the statement this release's manifest makes ({where}"))
    if INDEX in made:
        found += [
            (INDEX, f"this mmulab's page template makes {what}; a release page has none")
            for what in page_problems(made[INDEX].decode())
        ]
        if difference := _bytes_difference(read, INDEX, made[INDEX], _line_difference):
            differing.append((INDEX, f"not the page this release's manifest and consoles make ({difference}"))
    if differing:
        by = made_by(manifest, ours())
        found += [(path, f"{text}; {by})") for path, text in differing]
    return found


def charts_again(
    manifest: Mapping[str, Any], read: Callable[[str], bytes], seconds: Mapping[str, float]
) -> tuple[list[tuple[str, str, str]], dict[str, bytes]]:
    """The charts drawn again from the release's consoles, boots and `seconds` (run.json's), against those the
    manifest lists: (kind, path, detail) of each chart changed, missing or extra, each told once, and the charts
    drawn. Drawn by another matplotlib, they are not compared: one line names both versions. `read(name)` gives
    a release file's bytes (bounded: TooLarge beyond)."""
    stated, ours = figures.recorded_version(manifest), figures.drawing_version()
    if stated is None:
        return [("mismatch", MANIFEST, f"no {figures.CHARTS_KEY}.matplotlib: which matplotlib drew the charts")], {}
    if stated != ours:
        fix = f"verify with matplotlib {stated} (pip install 'matplotlib=={stated}' into mmulab's environment)"
        told = f"drawn by matplotlib {stated}, this verify has matplotlib {ours}, which draws other bytes; {fix}"
        return [("mismatch", CHARTS, told)], {}
    stated_files = manifest.get("files")
    listed = stated_files if isinstance(stated_files, dict) else {}
    charts = {path for path in listed if figures.is_chart(path)}
    try:
        drawn, troubles = figures.draw(manifest, lambda name: read(name) if name in listed else None, seconds)
    except TooLarge as exc:  # a console
        return [("mismatch", exc.path, str(exc))], {}
    except MAKING_ERRORS as exc:
        return [("mismatch", MANIFEST, f"the charts cannot be drawn from it ({type(exc).__name__}: {exc})")], {}
    found = [("mismatch", trouble.path, str(trouble)) for trouble in troubles]
    troubled = {trouble.chart for trouble in troubles}  # told once: by what cannot be drawn, not again by its chart
    for path in sorted((charts | set(drawn)) - troubled):
        source = figures.source_of(path)
        if path not in charts:
            found.append(("missing", path, f"{source} holds data lines: verify draws this chart, the release lacks it"))
        elif path not in drawn:
            found.append(("unexpected", path, f"{source} draws no chart (no data lines): nothing draws this file"))
        elif (difference := _bytes_difference(read, path, drawn[path], _line_difference)) != "":
            found.append(("mismatch", path, f"not the chart matplotlib {ours} draws from {source} ({difference})"))
    return found, drawn


def _bytes_difference(
    read: Callable[[str], bytes], name: str, made: bytes, where: Callable[[bytes, bytes], str]
) -> str:
    """'' when release file `name` is `made`, else where it differs (or that it is too large to read)."""
    try:
        found = read(name)
    except TooLarge as exc:
        return str(exc)
    return "" if found == made else where(found, made)


def _json_difference(found: bytes, made: bytes) -> str:
    """Where a JSON document differs from the one made: a JSON path, or its formatting."""
    try:
        parsed = json.loads(found)
    except (ValueError, RecursionError):
        return "not JSON"
    made_json = json.loads(made)
    return (
        "its formatting differs" if parsed == made_json else f"first difference: {first_difference(parsed, made_json)}"
    )


def _line_difference(found: bytes, made: bytes) -> str:
    """The first line where two texts differ."""
    found_lines, made_lines = found.decode(errors="replace").splitlines(), made.decode().splitlines()
    line = next(
        (i for i, (a, b) in enumerate(zip(found_lines, made_lines, strict=False), 1) if a != b),
        min(len(found_lines), len(made_lines)) + 1,
    )
    return f"line {line} differs"


# ---------------------------------------------------------------------------------------------------------------
# Checking them


def spdx_problems(sbom: Mapping[str, Any]) -> Iterator[str]:
    """The SPDX 2.3 required fields that matter (document, creation info, packages, files, relationships), made
    lazily: a reader that takes the first SHOWN pays for SHOWN, however many bad elements follow."""
    for key, wanted in (("dataLicense", "CC0-1.0"), ("SPDXID", provenance.DOCUMENT_ID)):
        if sbom.get(key) != wanted:
            yield f"{key} {sbom.get(key)!r}, SPDX 2.3 requires {wanted!r}"
    for key in ("name", "documentNamespace"):
        if not isinstance(sbom.get(key), str) or not sbom[key].strip():
            yield f"no {key}"
    namespace = sbom.get("documentNamespace")
    if isinstance(namespace, str) and namespace.strip() and (":" not in namespace or "#" in namespace):
        yield f"documentNamespace {namespace!r} is not a URI without '#'"
    info = sbom.get("creationInfo")
    if not isinstance(info, dict):
        yield "no creationInfo"
    else:
        if not isinstance(info.get("created"), str) or not _UTC_STAMP.fullmatch(info["created"]):
            yield f"creationInfo.created {info.get('created')!r} is not YYYY-MM-DDThh:mm:ssZ"
        creators = info.get("creators")
        if not isinstance(creators, list) or not creators:
            yield "creationInfo.creators: none"
        elif not all(isinstance(c, str) and _CREATOR.fullmatch(c) for c in creators):
            yield "creationInfo.creators: each must be 'Tool: ...', 'Person: ...' or 'Organization: ...'"
    ids = [sbom.get("SPDXID")]
    for kind, required in (("packages", ("name", "downloadLocation")), ("files", ("fileName",))):
        elements = sbom.get(kind, [])
        if not isinstance(elements, list) or not all(isinstance(e, dict) for e in elements):
            yield f"{kind}: not a list of objects"
            continue
        for number, element in enumerate(elements):
            what = f"{kind}[{number}]"
            spdx_id = element.get("SPDXID")
            if not isinstance(spdx_id, str) or not _SPDX_ID.fullmatch(spdx_id):
                yield f"{what}: SPDXID {spdx_id!r} is not SPDXRef-<letters, digits, '.', '-'>"
            ids.append(spdx_id)
            yield from (
                f"{what}: no {key}" for key in required if not isinstance(element.get(key), str) or not element[key]
            )
            if kind == "files":
                checksums = element.get("checksums")
                sha1 = [
                    c.get("checksumValue")
                    for c in (checksums if isinstance(checksums, list) else [])
                    if isinstance(c, dict) and c.get("algorithm") == "SHA1"
                ]
                if not sha1 or not all(isinstance(v, str) and _SHA1.fullmatch(v) for v in sha1):
                    yield f"{what}: no SHA1 checksum (SPDX 2.3 requires one for every file)"
    known = {i for i in ids if isinstance(i, str)}
    duplicates = sorted(i for i, count in Counter(i for i in ids if isinstance(i, str)).items() if count > 1)
    if duplicates:
        yield f"SPDXID {duplicates[0]!r} names more than one element"
    yield from _relationship_problems(sbom.get("relationships", []), known)


def _relationship_problems(relationships: Any, known: set[str]) -> list[str]:
    if not isinstance(relationships, list) or not all(isinstance(r, dict) for r in relationships):
        return ["relationships: not a list of objects"]
    problems: list[str] = []
    for number, relationship in enumerate(relationships):
        element, kind, related = (
            relationship.get(key) for key in ("spdxElementId", "relationshipType", "relatedSpdxElement")
        )
        if not isinstance(kind, str) or not kind:
            problems.append(f"relationships[{number}]: no relationshipType")
        if not isinstance(element, str) or element not in known:
            problems.append(f"relationships[{number}]: spdxElementId {element!r} names no element")
        if not isinstance(related, str) or (related not in known and related not in ("NONE", NOASSERTION)):
            problems.append(f"relationships[{number}]: relatedSpdxElement {related!r} names no element")
    if not any(
        r.get("spdxElementId") == provenance.DOCUMENT_ID and r.get("relationshipType") == "DESCRIBES"
        for r in relationships
    ):
        problems.append(f"no relationship {provenance.DOCUMENT_ID} DESCRIBES (what the document is about)")
    return problems


def statement_problems(statement: Mapping[str, Any], manifest: Mapping[str, Any] | None) -> list[str]:
    """SLSA provenance v1, built by mmulab as the manifest's project names: predicateType, buildType, builder.id.
    A function of the statement alone (a signed envelope's decoded payload is checked the same way)."""
    problems: list[str] = []
    if statement.get("predicateType") != provenance.PREDICATE_TYPE:
        problems.append(
            f"predicateType {statement.get('predicateType')!r}, expected SLSA provenance v1 "
            f"({provenance.PREDICATE_TYPE!r})"
        )
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict):
        return [*problems, "no predicate"]
    definition, details = predicate.get("buildDefinition"), predicate.get("runDetails")
    build_type = definition.get("buildType") if isinstance(definition, dict) else None
    if build_type != provenance.BUILD_TYPE:
        problems.append(f"buildDefinition.buildType {build_type!r}, expected {provenance.BUILD_TYPE!r}")
    builder = details.get("builder") if isinstance(details, dict) else None
    builder_id = builder.get("id") if isinstance(builder, dict) else None
    project = manifest.get("project") if manifest is not None else None
    if isinstance(project, dict) and isinstance(project.get("name"), str) and isinstance(project.get("version"), str):
        expected = provenance.builder_id(project)
        if builder_id != expected:
            problems.append(f"runDetails.builder.id {builder_id!r}, the manifest's project makes {expected!r}")
    elif not isinstance(builder_id, str) or not builder_id.startswith("pkg:generic/"):
        problems.append(f"runDetails.builder.id {builder_id!r} is not mmulab's")
    return problems


class _Active(HTMLParser):
    """What in a page could run or take the reader elsewhere: script, event attributes, javascript: links,
    meta refresh."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.found.append("a <script> element")
        for name, value in attrs:
            text = (value or "").strip().lower()
            if name.startswith("on"):
                self.found.append(f"an event attribute {name}= on <{tag}>")
            elif text.startswith("javascript:"):
                self.found.append(f"a javascript: URL in <{tag} {name}>")
            elif tag == "meta" and name == "http-equiv" and text == "refresh":
                self.found.append("a <meta http-equiv=refresh> redirect")


def page_problems(html: str) -> list[str]:
    """The release page has no JavaScript and sends nobody elsewhere: whatever of that it has."""
    parser = _Active()
    parser.feed(html)
    parser.close()
    return list(dict.fromkeys(parser.found))


def run_problems(run: Mapping[str, Any], cases: list[str] | None) -> list[str]:
    """run.json: exactly published_at (an ISO-8601 UTC time), host (short, printable) and boot_seconds (every
    boot case of the manifest, `cases`, each a finite number >= 0; unchecked against cases when None)."""
    problems: list[str] = []
    if sorted(run) != sorted(RUN_KEYS):
        problems.append(f"keys {sorted(run)}, expected exactly {list(RUN_KEYS)}")
    stamp = run.get("published_at")
    try:
        valid = isinstance(stamp, str) and bool(_UTC_STAMP.fullmatch(stamp))
        valid = valid and bool(datetime.strptime(str(stamp), "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        valid = False
    if "published_at" in run and not valid:
        problems.append(f"published_at {stamp!r} is not an ISO-8601 UTC time (YYYY-MM-DDThh:mm:ssZ)")
    host = run.get("host")
    if "host" in run and not (isinstance(host, str) and len(host) <= MAX_HOST_CHARS and host.isprintable()):
        problems.append(f"host {host!r:.80} is not a printable name of at most {MAX_HOST_CHARS} characters")
    seconds = run.get("boot_seconds")
    if "boot_seconds" not in run:
        return problems
    if not isinstance(seconds, dict):
        return [*problems, "boot_seconds: not an object"]
    for case, value in sorted(seconds.items()):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            problems.append(f"boot_seconds.{case}: {value!r:.40} is not a number of seconds >= 0")
    if cases is not None and sorted(seconds) != sorted(cases):
        extra, absent = sorted(set(seconds) - set(cases)), sorted(set(cases) - set(seconds))
        told = [*(f"{case} is no boot case of the manifest" for case in extra), *(f"{c} missing" for c in absent)]
        problems.append(f"boot_seconds: {'; '.join(told[:3])}{' ...' if len(told) > 3 else ''}")
    return problems
