"""The release format: the file names and document types that publishing writes and verify reads, defined once."""

from __future__ import annotations

SUMS = "SHA256SUMS"
MANIFEST = "manifest.json"
SBOM = "sbom.spdx.json"
PROVENANCE = "provenance.intoto.json"
RUN = "run.json"
INDEX = "index.html"
# Files about the rest (manifest["files"] lists everything else); a rebuild compares the rest, not these.
DERIVED = (MANIFEST, RUN, SUMS, SBOM, PROVENANCE, INDEX)
FORMAT = "mmulab-release/1"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
