"""Standard provenance for a release, made from its manifest alone: an SPDX 2.3 SBOM and an in-toto Statement v1
with a SLSA provenance v1 predicate. Pure functions: no clock, no host, no I/O of their own, so the same manifest
gives the same bytes (json.dumps(..., indent=2, sort_keys=True)) and `doit repro` can compare them.

The only thing the manifest lacks is SPDX's mandatory SHA1 of every file: spdx_document() takes a callback that
gives the SHA1 of a published file by its release path (the caller reads the file), rather than making the
manifest carry a second digest nobody else needs. Likewise a signed statement's subjects are given by the caller
(the digests of every file written, the documents about the others included: release/signing.py signs them).

URIs name no host, real or invented: the SPDX namespace is a urn:uuid derived from the manifest's bytes, and the
SLSA buildType and builder id are package URLs (purl, pkg:generic/mmulab).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from mmulab.project.model import NOASSERTION
from mmulab.release.format import PATCHES, PROGRAMS, SOURCES, SPDX_VERSION, STATEMENT_TYPE

DOCUMENT_ID = "SPDXRef-DOCUMENT"
RELEASE_ID = "SPDXRef-Release"
# The uuid5 namespace of document namespaces: fixed, so a manifest always maps to the same urn:uuid.
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:mmulab:spdx-document")

PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
# What externalParameters below mean; bump the v1 when their shape changes.
BUILD_TYPE = "pkg:generic/mmulab#build/v1"

# Per-variant files and the sources they are built from (the C ones link musl statically).
KERNEL_FILES = ("Image", "System.map", "config")
BUSYBOX_FROM = {"busybox": ("busybox", "musl"), "busybox.config": ("busybox",)}
SPDX_ID_UNSAFE = re.compile(r"[^A-Za-z0-9.-]")


def canonical_json(manifest: dict[str, Any]) -> str:
    """The manifest's bytes as manifest.json holds them (sorted keys, indent 2, trailing newline)."""
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def document_namespace(manifest: dict[str, Any]) -> str:
    """Unique per release yet deterministic and hostless: uuid5 of the sha256 of manifest.json."""
    digest = hashlib.sha256(canonical_json(manifest).encode()).hexdigest()
    return f"urn:uuid:{uuid.uuid5(NAMESPACE, digest)}"


def is_c_program(name: str) -> bool:
    """Programs are named <demo>-<language>[-<helper>]; the manifest does not record the language itself."""
    return name.endswith("-c") or "-c-" in name


def file_ids(paths: Iterable[str]) -> dict[str, str]:
    """SPDXRef ids for release paths: unsafe characters become '-', and a path whose id another path already
    maps to gets a short hash of itself appended (decided in sorted order, so stable)."""
    ids: dict[str, str] = {}
    taken: set[str] = set()
    for path in sorted(set(paths)):
        spdx_id = "SPDXRef-File-" + SPDX_ID_UNSAFE.sub("-", path)
        if spdx_id in taken:
            spdx_id += "-" + hashlib.sha256(path.encode()).hexdigest()[:12]
        taken.add(spdx_id)
        ids[path] = spdx_id
    return ids


def package_id(source_name: str) -> str:
    return "SPDXRef-Package-" + SPDX_ID_UNSAFE.sub("-", source_name)


def file_type(path: str) -> str:
    """SPDX fileTypes value, from the release layout (everything else published is text)."""
    if path.startswith(PATCHES):
        return "SOURCE"
    if path.startswith(SOURCES) or path.endswith(".cpio"):
        return "ARCHIVE"
    if path.startswith(PROGRAMS) or path.rsplit("/", 1)[-1] in ("Image", "busybox"):
        return "BINARY"
    return "TEXT"


def _relationship(element: str, kind: str, related: str) -> dict[str, str]:
    return {"spdxElementId": element, "relationshipType": kind, "relatedSpdxElement": related}


def _generated_from(manifest: dict[str, Any], path: str) -> tuple[str, ...]:
    """Names of the sources a published file was built from (none for inputs, logs and asm programs)."""
    variants = {key.removeprefix("kernel-") for key in manifest["configs"] if key.startswith("kernel-")}
    parts = path.split("/")
    if len(parts) == 2 and parts[0] == "programs":
        return ("musl",) if is_c_program(parts[1]) else ()
    if len(parts) == 2 and parts[0] in variants:
        if parts[1] in KERNEL_FILES:
            return ("linux",)
        return BUSYBOX_FROM.get(parts[1], ())
    return ()


def verification_code(sha1s: Iterable[str]) -> str:
    """SPDX 2.3 clause 7.9: SHA1 of the sorted, concatenated SHA1s of the package's files."""
    return hashlib.sha1("".join(sorted(sha1s)).encode()).hexdigest()


def spdx_document(manifest: dict[str, Any], source_date_epoch: int, sha1_of: Callable[[str], str]) -> dict[str, Any]:
    """The release's SBOM (SPDX 2.3 JSON). `sha1_of(path)` gives the SHA1 hex of a published file (SPDX requires
    one for every file; the manifest only has SHA256)."""
    sources = sorted(manifest["sources"], key=lambda source: source["name"])
    source_ids = {source["name"]: package_id(source["name"]) for source in sources}
    patches = {patch["file"]: (source["name"], patch) for source in sources for patch in source.get("patches", [])}
    sha256_of = dict(manifest["files"])
    sha256_of.update({path: patch["sha256"] for path, (_name, patch) in patches.items()})
    ids = file_ids(sha256_of)
    sha1s = {path: sha1_of(path) for path in sorted(sha256_of)}

    packages = [
        {
            "SPDXID": source_ids[source["name"]],
            "name": source["name"],
            "versionInfo": source["version"],
            "packageFileName": source["file"].rsplit("/", 1)[-1],
            "supplier": NOASSERTION,
            "downloadLocation": source.get("download_location") or NOASSERTION,
            "filesAnalyzed": False,
            "checksums": [{"algorithm": "SHA256", "checksumValue": source["sha256"]}],
            "licenseConcluded": source["license"],
            "licenseDeclared": source["license"],
            "copyrightText": NOASSERTION,
            "primaryPackagePurpose": "SOURCE",
        }
        for source in sources
    ]
    # The release contains files, which SPDX allows only with filesAnalyzed (and then a verification code).
    packages.append(
        {
            "SPDXID": RELEASE_ID,
            "name": manifest["release"],
            "versionInfo": manifest["project"]["describe"] or manifest["project"]["version"],
            "supplier": NOASSERTION,
            "downloadLocation": NOASSERTION,
            "filesAnalyzed": True,
            "packageVerificationCode": {"packageVerificationCodeValue": verification_code(sha1s.values())},
            "licenseConcluded": NOASSERTION,
            "licenseDeclared": NOASSERTION,
            "copyrightText": NOASSERTION,
        }
    )
    files = [
        {
            "SPDXID": ids[path],
            "fileName": f"./{path}",
            "fileTypes": [file_type(path)],
            "checksums": [
                {"algorithm": "SHA1", "checksumValue": sha1s[path]},
                {"algorithm": "SHA256", "checksumValue": sha256_of[path]},
            ],
        }
        for path in sorted(sha256_of)
    ]

    relationships = [_relationship(DOCUMENT_ID, "DESCRIBES", RELEASE_ID)]
    for path in sorted(sha256_of):
        relationships.append(_relationship(RELEASE_ID, "CONTAINS", ids[path]))
        relationships.extend(
            _relationship(ids[path], "GENERATED_FROM", source_ids[name])
            for name in _generated_from(manifest, path)
            if name in source_ids
        )
        if path in patches:
            relationships.append(_relationship(ids[path], "PATCH_APPLIED", source_ids[patches[path][0]]))

    return {
        "spdxVersion": SPDX_VERSION,
        "dataLicense": "CC0-1.0",
        "SPDXID": DOCUMENT_ID,
        "name": manifest["release"],
        "documentNamespace": document_namespace(manifest),
        "creationInfo": {
            "created": datetime.fromtimestamp(source_date_epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "creators": [f"Tool: mmulab-{manifest['project']['version']}"],
        },
        "packages": sorted(packages, key=lambda package: package["SPDXID"]),
        "files": files,
        "relationships": sorted(
            relationships, key=lambda r: (r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"])
        ),
    }


def source_uri(source: dict[str, Any]) -> str:
    """Where the bytes actually came from, as a URI: the origin URL, a local file as file://, or else (a download
    cache, which does not remember its URL) the upstream download location; '' when there is none."""
    origin: str = source.get("origin", "")
    if "://" in origin:
        return origin
    if origin.startswith("/"):
        return "file://" + quote(origin)
    location: str = source.get("download_location", "")
    return location if location and location != NOASSERTION else ""


def _descriptor(name: str, uri: str, sha256: str, annotations: dict[str, Any]) -> dict[str, Any]:
    """An in-toto ResourceDescriptor; empty fields are left out, as protobuf's JSON form does."""
    descriptor: dict[str, Any] = {"name": name, "digest": {"sha256": sha256}, "annotations": annotations}
    if uri:
        descriptor["uri"] = uri
    return descriptor


def resolved_dependencies(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Every source tarball and every patch applied to it, each with its sha256."""
    dependencies = []
    for source in sorted(manifest["sources"], key=lambda source: source["name"]):
        annotations = {
            key: source[key]
            for key in ("version", "file", "origin_kind", "package", "package_version", "trust", "license")
            if key in source
        }
        dependency = _descriptor(source["name"], source_uri(source), source["sha256"], annotations)
        location = source.get("download_location", "")
        if location and location != NOASSERTION:
            dependency["downloadLocation"] = location
        dependencies.append(dependency)
        dependencies.extend(
            _descriptor(patch["file"], "", patch["sha256"], {"patch_for": source["name"], "patch": patch["name"]})
            for patch in source.get("patches", [])
        )
    return dependencies


def builder_id(project: dict[str, Any]) -> str:
    """runDetails.builder.id: the mmulab (name and version) the manifest's "project" names, as a purl."""
    return f"pkg:generic/{project['name']}@{project['version']}"


def intoto_statement(manifest: dict[str, Any], subjects: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The release's provenance: every published file as a subject, SLSA provenance v1 as the predicate.

    `subjects` (release path -> sha256) replaces the manifest's files: a signed statement covers every file of the
    release but itself and SHA256SUMS (the manifest, SBOM, page and run.json too), read from the files written."""
    project = manifest["project"]
    tools = [{"name": name, "annotations": dict(info)} for name, info in sorted(manifest.get("tools", {}).items())]
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": path, "digest": {"sha256": digest}}
            for path, digest in sorted((manifest["files"] if subjects is None else subjects).items())
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "release": manifest["release"],
                    "source_date_epoch": manifest["source_date_epoch"],
                    "project": {key: project[key] for key in ("name", "version", "commit", "describe", "dirty")},
                },
                "resolvedDependencies": resolved_dependencies(manifest),
            },
            "runDetails": {
                "builder": {
                    "id": builder_id(project),
                    "version": {project["name"]: project["version"]},
                    "builderDependencies": tools,
                },
            },
        },
    }
