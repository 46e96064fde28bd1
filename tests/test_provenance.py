"""The release's SBOM and provenance, checked by the standards' own tools: spdx-tools validates the SPDX 2.3
document, in-toto-attestation's protobuf bindings parse (strictly) and validate the Statement and its SLSA
provenance v1 predicate. Negative controls show each validator does catch a broken document."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import same_bytes_in_two_processes
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
from in_toto_attestation.v1.statement import Statement
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from mmulab.release import provenance
from mmulab.release import publish as release_module

VARIANTS = ("nommu", "mmu")
PROGRAMS = (
    "addrspace-asm",
    "addrspace-asm-addrspace-child",
    "addrspace-c",
    "addrspace-c-addrspace-child",
    "clone_vm-asm",
    "clone_vm-c",
)
C_PROGRAMS = {"addrspace-c", "addrspace-c-addrspace-child", "clone_vm-c"}
BUILDS = ("addrspace-asm", "addrspace-c", "clone_vm-asm", "clone_vm-c", "shell-busybox")
CASES = ("addrspace-c-nommu", "addrspace-c-mmu", "clone_vm-asm-nommu", "clone_vm-asm-mmu")
PATCH = "sources/patches/musl/0001-riscv64-add-vfork.patch"
SOURCES = [
    {
        "name": "linux",
        "version": "6.12.117",
        "file": "sources/linux-source-6.12.tar.xz",
        "origin": "/usr/src/linux-source-6.12.tar.xz",
        "origin_kind": "local-file",
        "package": "linux-source-6.12",
        "package_version": "6.12.117-1~deb12u1",
        "trust": "pinned",
        "license": "GPL-2.0-only",
        "download_location": "https://cdn.kernel.org/pub/linux/kernel/v6.x/linux-6.12.80.tar.xz",
        "patches": [],
    },
    {
        "name": "busybox",
        "version": "1.35.0",
        "file": "sources/busybox_1.35.0.orig.tar.bz2",
        "origin": "http://mirror.invalid/debian/pool/main/b/busybox/busybox_1.35.0.orig.tar.bz2",
        "origin_kind": "debian-source",
        "package": "busybox",
        "package_version": "",
        "trust": "pinned",
        "license": "GPL-2.0-only",
        "download_location": "https://busybox.net/downloads/busybox-1.35.0.tar.bz2",
        "patches": [],
    },
    {
        "name": "musl",
        "version": "1.2.3",
        "file": "sources/musl-1.2.3.tar.gz",
        "origin": "https://musl.libc.org/releases/musl-1.2.3.tar.gz",
        "origin_kind": "url",
        "package": "",
        "package_version": "",
        "trust": "pinned",
        "license": "MIT",
        "download_location": "NOASSERTION",
        "patches": [{"name": "0001-riscv64-add-vfork.patch", "file": PATCH}],
    },
]


def published_paths() -> list[str]:
    paths = [f"programs/{program}" for program in PROGRAMS]
    for variant in VARIANTS:
        paths += [f"{variant}/{name}" for name in ("Image", "config", "fragment.config", "System.map")]
        paths += [f"{variant}/busybox", f"{variant}/busybox.config"]
        paths += [f"{variant}/initramfs/{build}.cpio" for build in BUILDS]
    paths += ["boots/summary.json", "boots/summary.xml", *(f"boots/{case}.log" for case in CASES)]
    paths += [source["file"] for source in SOURCES] + [PATCH]
    return sorted(paths)


@pytest.fixture
def release(tmp_path: Path) -> tuple[dict[str, Any], Path]:
    """A manifest as the spec defines it, over real small files in a release root."""
    root = tmp_path / "release"
    files = {}
    for path in published_paths():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(f"contents of {path}\n".encode())
        files[path] = hashlib.sha256(target.read_bytes()).hexdigest()
    sources = copy.deepcopy(SOURCES)
    for source in sources:
        source["sha256"] = files[source["file"]]
        for patch in source["patches"]:
            patch["sha256"] = files[patch["file"]]
    tool = {"version": "x 1.0", "package": "x", "package_version": "1.0-1"}
    manifest = {
        "format": "mmulab-release/1",
        "release": "2024.1",
        "project": {
            "name": "mmulab",
            "version": "0.1.0",
            "commit": "a" * 40,
            "describe": "v0.1-3-gaaaa",
            "dirty": False,
        },
        "source_date_epoch": 1700000000,
        "sources": sources,
        "tools": {name: dict(tool) for name in ("gcc", "binutils", "make", "qemu", "opensbi")},
        "configs": {
            f"{kind}-{variant}": {"fragment_sha256": "1" * 64, "config_sha256": "2" * 64}
            for kind in ("kernel", "busybox")
            for variant in VARIANTS
        },
        "boots": [
            {
                "case": case,
                "demo": case.split("-")[0],
                "variant": case.rsplit("-", 1)[1],
                "qemu": "default",
                "expected": "pass",
                "observed": "pass",
                "passed": True,
            }
            for case in CASES
        ],
        "files": files,
    }
    return manifest, root


def sha1_reader(root: Path) -> Callable[[str], str]:
    """What the publisher passes: the SHA1 of a published file, read from the release root."""
    return lambda path: hashlib.sha1((root / path).read_bytes()).hexdigest()


def sbom(manifest: dict[str, Any], root: Path) -> dict[str, Any]:
    return provenance.spdx_document(manifest, manifest["source_date_epoch"], sha1_reader(root))


def spdx_messages(document: dict[str, Any], directory: Path) -> list[str]:
    """What spdx-tools says about the document, read back from its JSON file as a consumer would."""
    path = directory / "sbom.spdx.json"
    path.write_text(json.dumps(document, indent=2, sort_keys=True))
    return [message.validation_message for message in validate_full_spdx_document(parse_file(str(path)))]


def pyspdxtools(path: Path) -> subprocess.CompletedProcess[str]:
    """spdx-tools' CLI, as a user would run it (pyspdxtools -i FILE)."""
    command = "from spdx_tools.spdx.clitools.pyspdxtools import main; main()"
    return subprocess.run([sys.executable, "-c", command, "-i", str(path)], capture_output=True, text=True, check=False)


def validate_statement(statement: dict[str, Any]) -> provenance_pb2.Provenance:
    """in-toto-attestation's own checks: a strict protobuf parse (unknown fields fail) of the Statement and the
    SLSA v1 predicate, Statement.validate(), and the predicate's required fields as the Go bindings' Validate()
    checks them (the Python package ships the predicate's protobuf but no validate wrapper for it)."""
    Statement.copy_from_pb(json_format.ParseDict(statement, statement_pb2.Statement())).validate()
    predicate = json_format.ParseDict(statement["predicate"], provenance_pb2.Provenance())
    definition, run = predicate.build_definition, predicate.run_details
    if not predicate.HasField("build_definition") or not definition.build_type:
        raise ValueError("buildDefinition.buildType required")
    if not definition.HasField("external_parameters"):
        raise ValueError("buildDefinition.externalParameters required")
    if not predicate.HasField("run_details") or not run.builder.id:
        raise ValueError("runDetails.builder.id required")
    for descriptor in [*definition.resolved_dependencies, *run.builder.builder_dependencies]:
        ResourceDescriptor.copy_from_pb(descriptor).validate()
    return predicate


def test_sbom_validates_with_spdx_tools(release: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    manifest, root = release
    document = sbom(manifest, root)
    assert spdx_messages(document, tmp_path) == []
    result = pyspdxtools(tmp_path / "sbom.spdx.json")  # silent when valid
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_sbom_packages_files_and_checksums(release: tuple[dict[str, Any], Path]) -> None:
    manifest, root = release
    document = sbom(manifest, root)
    assert document["spdxVersion"] == "SPDX-2.3"
    assert document["creationInfo"] == {"created": "2023-11-14T22:13:20Z", "creators": ["Tool: mmulab-0.1.0"]}
    packages = {package["name"]: package for package in document["packages"]}
    assert set(packages) == {"linux", "musl", "busybox", "2024.1"}
    for source in manifest["sources"]:
        package = packages[source["name"]]
        assert package["versionInfo"] == source["version"]
        assert package["licenseConcluded"] == package["licenseDeclared"] == source["license"]
        assert package["checksums"] == [{"algorithm": "SHA256", "checksumValue": source["sha256"]}]
        assert package["downloadLocation"] == source["download_location"]
        assert package["filesAnalyzed"] is False
    assert packages["musl"]["downloadLocation"] == "NOASSERTION"

    files = {entry["fileName"]: entry for entry in document["files"]}
    assert set(files) == {f"./{path}" for path in manifest["files"]}
    for path, sha256 in manifest["files"].items():
        sha1 = hashlib.sha1((root / path).read_bytes()).hexdigest()
        assert files[f"./{path}"]["checksums"] == [
            {"algorithm": "SHA1", "checksumValue": sha1},
            {"algorithm": "SHA256", "checksumValue": sha256},
        ]
    ids = [entry["SPDXID"] for entry in document["files"] + document["packages"]]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"SPDXRef-[A-Za-z0-9.-]+", spdx_id) for spdx_id in ids)


def test_sbom_relationships(release: tuple[dict[str, Any], Path]) -> None:
    manifest, root = release
    document = sbom(manifest, root)
    name_of = {entry["SPDXID"]: entry["fileName"][2:] for entry in document["files"]}
    name_of |= {package["SPDXID"]: package["name"] for package in document["packages"]}
    name_of["SPDXRef-DOCUMENT"] = "DOCUMENT"
    relations = {
        (name_of[r["spdxElementId"]], r["relationshipType"], name_of[r["relatedSpdxElement"]])
        for r in document["relationships"]
    }
    assert ("DOCUMENT", "DESCRIBES", "2024.1") in relations
    assert {(a, b) for a, kind, b in relations if kind == "CONTAINS"} == {("2024.1", p) for p in manifest["files"]}
    generated = {(a, b) for a, kind, b in relations if kind == "GENERATED_FROM"}
    expected = set()
    for variant in VARIANTS:
        expected |= {(f"{variant}/{name}", "linux") for name in ("Image", "System.map", "config")}
        expected |= {(f"{variant}/busybox", "busybox"), (f"{variant}/busybox", "musl")}
        expected.add((f"{variant}/busybox.config", "busybox"))
    expected |= {(f"programs/{program}", "musl") for program in C_PROGRAMS}
    assert generated == expected
    assert {(a, b) for a, kind, b in relations if kind == "PATCH_APPLIED"} == {(PATCH, "musl")}


def written(document: str, manifest: str, root: str) -> bytes:
    """sbom.spdx.json or provenance.intoto.json for the manifest in a JSON file, as the release writes it:
    run in new processes."""
    facts = json.loads(Path(manifest).read_text())
    made = sbom(facts, Path(root)) if document == "sbom" else provenance.intoto_statement(facts)
    return release_module.dumps(made).encode()


def in_two_processes(document: str, manifest: dict[str, Any], root: Path, scratch: Path) -> bytes:
    facts = scratch / "manifest.json"
    facts.write_text(json.dumps(manifest))
    return same_bytes_in_two_processes("test_provenance:written", [document, str(facts), str(root)], scratch)


def test_sbom_is_deterministic_and_unique_per_release(release: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    manifest, root = release
    first = in_two_processes("sbom", manifest, root, tmp_path).decode()
    assert first == release_module.dumps(sbom(manifest, root))
    namespace = json.loads(first)["documentNamespace"]
    assert namespace.startswith("urn:uuid:") and uuid.UUID(namespace.removeprefix("urn:uuid:")).version == 5
    other = copy.deepcopy(manifest) | {"release": "2024.2"}
    assert sbom(other, root)["documentNamespace"] != namespace


def test_broken_sbom_is_caught(release: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    manifest, root = release
    document = sbom(manifest, root)
    document["files"][0]["checksums"] = document["files"][0]["checksums"][1:]  # drop the SHA1
    document["relationships"].append(
        {"spdxElementId": "SPDXRef-Release", "relationshipType": "CONTAINS", "relatedSpdxElement": "SPDXRef-Nothing"}
    )
    messages = spdx_messages(document, tmp_path)
    assert any("SHA1" in message for message in messages), messages
    assert any("SPDXRef-Nothing" in message for message in messages), messages
    result = pyspdxtools(tmp_path / "sbom.spdx.json")
    assert result.returncode == 1 and "SHA1" in result.stderr, result.stderr


def test_statement_validates_with_in_toto_attestation(release: tuple[dict[str, Any], Path]) -> None:
    manifest, _root = release
    statement = provenance.intoto_statement(manifest)
    predicate = validate_statement(statement)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    assert [subject["name"] for subject in statement["subject"]] == sorted(manifest["files"])
    assert {s["name"]: s["digest"] for s in statement["subject"]} == {
        path: {"sha256": sha256} for path, sha256 in manifest["files"].items()
    }
    assert predicate.build_definition.external_parameters["release"] == "2024.1"
    # Type and builder URIs name no host.
    for uri in (predicate.build_definition.build_type, predicate.run_details.builder.id):
        assert urlsplit(uri).scheme == "pkg" and urlsplit(uri).netloc == "", uri


def test_statement_resolved_dependencies(release: tuple[dict[str, Any], Path]) -> None:
    manifest, _root = release
    dependencies = provenance.intoto_statement(manifest)["predicate"]["buildDefinition"]["resolvedDependencies"]
    expected = {source["name"]: source["sha256"] for source in manifest["sources"]}
    expected[PATCH] = manifest["files"][PATCH]
    assert {dependency["name"]: dependency["digest"]["sha256"] for dependency in dependencies} == expected
    assert len(dependencies) == len(expected)
    uris = {dependency["name"]: dependency.get("uri") for dependency in dependencies}
    assert uris == {
        "linux": "file:///usr/src/linux-source-6.12.tar.xz",
        "busybox": SOURCES[1]["origin"],
        "musl": SOURCES[2]["origin"],
        PATCH: None,
    }


def test_statement_is_deterministic(release: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    manifest, root = release
    first = in_two_processes("statement", manifest, root, tmp_path).decode()
    assert first == release_module.dumps(provenance.intoto_statement(manifest))


def test_broken_statement_is_caught(release: tuple[dict[str, Any], Path]) -> None:
    manifest, _root = release
    statement = provenance.intoto_statement(manifest)
    no_digest = copy.deepcopy(statement)
    del no_digest["subject"][3]["digest"]
    with pytest.raises(ValueError, match="digest required"):
        validate_statement(no_digest)
    misspelled = copy.deepcopy(statement)
    misspelled["predicate"]["buildDefinition"]["resolvedDependency"] = []
    with pytest.raises(json_format.ParseError, match="resolvedDependency"):
        validate_statement(misspelled)
    no_builder = copy.deepcopy(statement)
    del no_builder["predicate"]["runDetails"]["builder"]["id"]
    with pytest.raises(ValueError, match=r"builder\.id"):
        validate_statement(no_builder)


def test_source_uri_falls_back_to_the_download_location() -> None:
    cached = {"origin": "download cache", "download_location": "https://example.org/x.tar.gz"}
    assert provenance.source_uri(cached) == "https://example.org/x.tar.gz"
    assert provenance.source_uri({"origin": "download cache", "download_location": "NOASSERTION"}) == ""


def test_file_ids_stay_unique_when_sanitizing_collides() -> None:
    ids = provenance.file_ids(["programs/a_b", "programs/a-b", "programs/a.b"])
    assert ids["programs/a-b"] == "SPDXRef-File-programs-a-b"
    assert ids["programs/a.b"] == "SPDXRef-File-programs-a.b"
    assert ids["programs/a_b"].startswith("SPDXRef-File-programs-a-b-") and len(set(ids.values())) == 3


def test_program_language_from_its_name() -> None:
    assert [p for p in PROGRAMS if provenance.is_c_program(p)] == sorted(C_PROGRAMS)
