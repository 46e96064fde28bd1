"""The release format: the file names, folders and document types that publish writes and verify reads, once.

Imported by release/* and pipeline/*; earlier layers (boot and before) do not know releases exist.
"""

from __future__ import annotations

FORMAT = "mmulab-release/1"  # manifest.json's "format": bump it when a release's layout or meaning changes

SUMS = "SHA256SUMS"
MANIFEST = "manifest.json"
SBOM = "sbom.spdx.json"
PROVENANCE = "provenance.intoto.json"
RUN = "run.json"
INDEX = "index.html"
# Made from the manifest once it is written (publish), hashed in SHA256SUMS, not listed in manifest["files"].
MADE_FROM_MANIFEST = (SBOM, PROVENANCE, INDEX)
# Every file about the release's other files: manifest["files"] lists the rest; a rebuild compares the rest.
METADATA = (MANIFEST, RUN, SUMS, *MADE_FROM_MANIFEST)

# The release's folders, as path prefixes; a release path is always POSIX and relative.
BOOTS = "boots/"  # each case's console log, and the boot summaries
SOURCES = "sources/"  # the exact source archives built from
PATCHES = "sources/patches/"  # <source>/<patch>: the patches applied to each source
PROGRAMS = "programs/"  # the demos' binaries
CHARTS = "charts/"  # <case>.svg: what a console's data lines measured; matrix.svg: seconds to verdict per case
MATRIX_CHART = f"{CHARTS}matrix.svg"  # no case is named "matrix": a case is <demo>-<language>-<run>

SPDX_VERSION = "SPDX-2.3"  # the sbom's spdxVersion
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"  # the provenance statement's _type


def console_log(case: str) -> str:
    """The release path of a boot case's console log."""
    return f"{BOOTS}{case}.log"


def chart_file(case: str) -> str:
    """The release path of the chart drawn from a boot case's console."""
    return f"{CHARTS}{case}.svg"


def source_file(filename: str) -> str:
    """The release path of a source archive (by its file name in the download cache)."""
    return f"{SOURCES}{filename}"


def patch_file(source: str, patch: str) -> str:
    """The release path of a patch (by its file name) applied to `source`."""
    return f"{PATCHES}{source}/{patch}"


def program_file(program: str) -> str:
    """The release path of a demo program's binary."""
    return f"{PROGRAMS}{program}"
