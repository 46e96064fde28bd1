"""Signed provenance: `doit publish --sign KEY` writes the in-toto statement as a DSSE envelope signed with an
Ed25519 key (securesystemslib), `mmulab verify --key PUB` / `--trusted-keys FILE` checks who published a
release, `mmulab keygen` makes a key pair. Releases are published for real from the synthetic build directory of
tests/test_release.py (small fake files), then tampered with as an attacker who can rewrite every file would."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import test_release
from cryptography.exceptions import InvalidSignature
from test_provenance import validate_statement
from test_release import TOOLS, Synthetic
from test_verify import write_release, write_sums

from mmulab import cli
from mmulab.core.errors import EnvError, UserError
from mmulab.core.settings import Settings
from mmulab.pipeline import actions
from mmulab.release import check, documents, provenance, signing
from mmulab.release import publish as release

PROVENANCE = "provenance.intoto.json"
synthetic = test_release.synthetic  # the fixture: a build directory of small fakes that publish takes


# --- helpers ---


def keypair(folder: Path, name: str) -> tuple[Path, Path, str]:
    """A new key pair made as a user makes it (`mmulab keygen`): private path, public path, keyid."""
    folder.mkdir(parents=True, exist_ok=True)
    private = folder / name
    keyid = signing.keygen(private)
    return private, signing.public_path(private), keyid


@pytest.fixture
def alice(tmp_path: Path) -> tuple[Path, Path, str]:
    return keypair(tmp_path / "keys", "alice")


@pytest.fixture
def mallory(tmp_path: Path) -> tuple[Path, Path, str]:
    return keypair(tmp_path / "keys", "mallory")


def publish(synthetic: Synthetic, key: Path | None, name: str = "r1") -> Path:
    return release.publish(synthetic.project, name, False, synthetic.checkout, TOOLS, sign=key)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], list[str]]:
    """`mmulab ARGS`: exit code, stdout and stderr lines (what was printed before, by publish, is dropped)."""
    capsys.readouterr()
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err.splitlines()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def dumps(document: object) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def envelope_of(root: Path) -> dict[str, object]:
    document = json.loads((root / PROVENANCE).read_text())
    assert set(document) == {"payload", "payloadType", "signatures"}, "not a DSSE envelope"
    return dict(document)


def statement_of(root: Path) -> dict[str, object]:
    return dict(json.loads(base64.b64decode(str(envelope_of(root)["payload"]))))


def subjects(statement: dict[str, object]) -> dict[str, str]:
    return {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}  # type: ignore[attr-defined]


def with_payload(envelope: dict[str, object], statement: dict[str, object]) -> dict[str, object]:
    return {**envelope, "payload": base64.b64encode(dumps(statement).encode()).decode()}


def regenerate(root: Path, changed: str) -> None:
    """What an attacker does after changing `changed`, with mmulab's own code: the manifest states its new sha256,
    the SBOM and the page are made again from it, then the sums (the provenance is left as it is)."""
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["files"][changed] = sha(root / changed)
    (root / "manifest.json").write_text(dumps(manifest))
    for name, text in documents.made_from_manifest(root, manifest).items():
        (root / name).write_text(text)
    write_sums(root)


# --- publishing signed ---


def test_a_signed_statement_covers_every_file_but_itself_and_the_sums(
    synthetic: Synthetic, alice: tuple[Path, Path, str]
) -> None:
    root = publish(synthetic, alice[0])
    envelope = envelope_of(root)
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert [s["keyid"] for s in envelope["signatures"]] == [alice[2]]  # type: ignore[attr-defined]
    statement = statement_of(root)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    covered = subjects(statement)
    assert set(covered) == files - {PROVENANCE, "SHA256SUMS"}
    assert {"manifest.json", "sbom.spdx.json", "index.html", "run.json"} <= set(covered)
    assert all(covered[path] == sha(root / path) for path in covered)
    manifest = json.loads((root / "manifest.json").read_text())
    assert statement["predicate"] == provenance.intoto_statement(manifest)["predicate"]
    validate_statement(statement)  # in-toto-attestation's own checks, as for the unsigned statement


def test_the_envelope_is_standard_DSSE_checked_without_securesystemslib(
    synthetic: Synthetic, alice: tuple[Path, Path, str]
) -> None:
    """Any DSSE verifier must accept it: the signature is Ed25519 over DSSE v1's pre-authentication encoding,
    checked here with pyca/cryptography alone, from the .pub file."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    root = publish(synthetic, alice[0])
    envelope = envelope_of(root)
    payload, kind = base64.b64decode(str(envelope["payload"])), str(envelope["payloadType"]).encode()
    pae = b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)
    (signature,) = envelope["signatures"]  # type: ignore[misc]
    public = load_pem_public_key(alice[1].read_bytes())
    public.verify(base64.b64decode(signature["sig"]), pae)  # type: ignore[union-attr, call-arg]
    with pytest.raises(InvalidSignature):
        public.verify(base64.b64decode(signature["sig"]), pae.replace(b"run.json", b"run.jsom"))  # type: ignore[union-attr, call-arg]


def test_unsigned_publishing_writes_the_bare_statement_of_the_manifest(synthetic: Synthetic) -> None:
    root = publish(synthetic, None)
    manifest = json.loads((root / "manifest.json").read_text())
    text = (root / PROVENANCE).read_text()
    assert text == release.dumps(provenance.intoto_statement(manifest))  # as before signing existed
    assert set(subjects(json.loads(text))) == set(manifest["files"])


def test_the_same_build_signed_twice_gives_the_same_bytes(
    synthetic: Synthetic, alice: tuple[Path, Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ed25519 signatures are deterministic: with the same run.json, two publishes are byte-identical."""
    facts = {"published_at": "2026-01-01T00:00:00Z", "host": "h", "boot_seconds": {}}
    monkeypatch.setattr(release, "_run_facts", lambda verdicts: facts)
    first = publish(synthetic, alice[0])
    elsewhere = tmp_path / "second"
    project = replace(synthetic.project, settings=replace(synthetic.project.settings, artifacts_dir=elsewhere))
    second = release.publish(project, "r1", False, synthetic.checkout, TOOLS, sign=alice[0])
    assert (first / PROVENANCE).read_bytes() == (second / PROVENANCE).read_bytes()
    assert (synthetic.artifacts / "r1.tar.xz").read_bytes() == (elsewhere / "r1.tar.xz").read_bytes()
    key = signing.load_signing_key(alice[0])
    assert signing.sign_payload(b"{}", key) == signing.sign_payload(b"{}", key)


def test_a_signed_release_republishes_as_a_no_op_though_run_json_changed(
    synthetic: Synthetic,
    alice: tuple[Path, Path, str],
    mallory: tuple[Path, Path, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = publish(synthetic, alice[0])
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    monkeypatch.setattr(release, "_run_facts", lambda verdicts: {"published_at": "later", "host": "elsewhere"})
    capsys.readouterr()
    assert publish(synthetic, alice[0]) == root
    assert "already published with identical bytes" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    for other in (mallory[0], None):  # signed by someone else, or not at all: another release
        with pytest.raises(UserError, match=f"different bytes in: {PROVENANCE};"):
            publish(synthetic, other)
    assert sorted(p.name for p in synthetic.artifacts.iterdir()) == ["r1", "r1.tar.xz"]


def test_doit_publish_takes_sign_then_MMULAB_SIGNING_KEY(
    synthetic: Synthetic, alice: tuple[Path, Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given: list[Path | None] = []
    monkeypatch.setattr(release, "publish", lambda project, name, dirty, sign: given.append(sign))
    project = synthetic.project
    with_env = replace(project, settings=replace(project.settings, signing_key=tmp_path / "env-key"))
    for target, sign in ((project, str(alice[0])), (with_env, ""), (with_env, str(alice[0])), (project, "")):
        assert actions.publish(target, "r1", False, sign) is True
    assert given == [alice[0], tmp_path / "env-key", alice[0], None]
    assert Settings.from_environment({"MMULAB_SIGNING_KEY": str(alice[0])}).signing_key == alice[0]
    for value, problem in ((tmp_path / "nope", "no such file"), (tmp_path, "not a file")):
        with pytest.raises(EnvError, match=f"MMULAB_SIGNING_KEY=.*: {problem}; it accepts an Ed25519 private key"):
            Settings.from_environment({"MMULAB_SIGNING_KEY": str(value)})


# --- verify: the outcomes ---


def test_a_signed_release_verifies_with_its_key_naming_it(
    synthetic: Synthetic,
    alice: tuple[Path, Path, str],
    mallory: tuple[Path, Path, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = publish(synthetic, alice[0])
    code, out, err = run(capsys, "verify", str(root), "--key", str(alice[1]))
    assert (code, err) == (0, [])
    assert out[-1] == f"mmulab: verify: {root}: signed by trusted key {alice[2]} ({alice[1]})"
    code, out, _ = run(capsys, "verify", str(root), "--key", str(mallory[1]), "--key", str(alice[1]))
    assert code == 0 and out[-1].endswith(f"signed by trusted key {alice[2]} ({alice[1]})")
    tarball = synthetic.artifacts / "r1.tar.xz"
    code, out, _ = run(capsys, "verify", str(tarball), "--key", str(alice[1]))
    assert code == 0 and f"signed by trusted key {alice[2]}" in out[-1]


def test_a_signed_release_verifies_with_a_trusted_keys_file(
    synthetic: Synthetic,
    alice: tuple[Path, Path, str],
    mallory: tuple[Path, Path, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = publish(synthetic, alice[0])
    trusted = tmp_path / "trusted.pem"
    trusted.write_text(f"# mallory\n{mallory[1].read_text()}\n# alice, lecturer\n{alice[1].read_text()}")
    code, out, _ = run(capsys, "verify", str(root), "--trusted-keys", str(trusted))
    assert code == 0 and out[-1] == f"mmulab: verify: {root}: signed by trusted key {alice[2]} ({trusted} (key 2))"
    trusted.write_text(mallory[1].read_text())
    code, out, _ = run(capsys, "verify", str(root), "--trusted-keys", str(trusted))
    assert code == 1 and f"mismatch: {PROVENANCE}: signed by key {alice[2]}, not by a trusted key" in out[0]


def test_a_signed_release_without_key_proves_integrity_only(
    synthetic: Synthetic, alice: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    root = publish(synthetic, alice[0])
    code, out, _ = run(capsys, "verify", str(root))
    assert code == 0
    assert out[-1] == (
        f"mmulab: verify: {root}: claims a signature by key {alice[2]}, not checked (no --key PUB to trust): "
        "proves integrity only, not who published it"
    )


def test_a_wrong_key_fails_naming_both_keys(
    synthetic: Synthetic,
    alice: tuple[Path, Path, str],
    mallory: tuple[Path, Path, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = publish(synthetic, mallory[0])
    code, out, _ = run(capsys, "verify", str(root), "--key", str(alice[1]))
    assert code == 1
    assert out == [
        f"mismatch: {PROVENANCE}: signed by key {mallory[2]}, not by a trusted key ({alice[2]})",
        f"mmulab: verify: {root}: 1 problem(s) in {_count(root)} files",
    ]


def _count(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file())


def test_an_unsigned_release_passes_without_key_and_fails_with_one(
    synthetic: Synthetic, alice: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    root = publish(synthetic, None)
    code, out, _ = run(capsys, "verify", str(root))
    assert code == 0
    assert out[-1] == (
        f"mmulab: verify: {root}: unsigned: proves integrity, not who published it (a signed release needs --key PUB)"
    )
    code, out, _ = run(capsys, "verify", str(root), "--key", str(alice[1]))
    assert code == 1
    assert out[0] == (
        f"mismatch: {PROVENANCE}: unsigned, but --key was given (a signed release's provenance is a DSSE envelope)"
    )


def test_the_small_fake_release_of_test_verify_is_unsigned(
    tmp_path: Path, alice: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_release(tmp_path / "r1")
    note = "unsigned: proves integrity, not who published it (a signed release needs --key PUB)"
    assert run(capsys, "verify", str(root))[1][-1] == f"mmulab: verify: {root}: {note}"
    assert run(capsys, "verify", str(root), "--key", str(alice[1]))[0] == 1


# --- verify: tampering ---


def test_a_tampered_signed_release_with_manifest_sbom_and_sums_regenerated_fails(
    synthetic: Synthetic,
    alice: tuple[Path, Path, str],
    mallory: tuple[Path, Path, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every way to make the documents agree again after changing a kernel: keep the envelope (its subjects name
    the old bytes), rewrite its statement (the signature breaks), re-sign it (another key), drop the signature."""
    root = publish(synthetic, alice[0])
    envelope, statement = envelope_of(root), statement_of(root)
    (root / "nommu/Image").write_bytes(b"a kernel with a back door\n")
    regenerate(root, "nommu/Image")
    code, out, _ = run(capsys, "verify", str(root), "--key", str(alice[1]))
    assert code == 1 and any(line.startswith("mismatch: nommu/Image: sha256 ") and PROVENANCE in line for line in out)

    forged = dict(statement)
    forged["subject"] = [{"name": path, "digest": {"sha256": sha(root / path)}} for path in sorted(subjects(statement))]
    (root / PROVENANCE).write_text(dumps(with_payload(envelope, forged)))
    write_sums(root)
    code, out, _ = run(capsys, "verify", str(root), "--key", str(alice[1]))
    assert code == 1
    assert out[0] == (
        f"mismatch: {PROVENANCE}: the signature under trusted key {alice[2]} does not verify with that key: "
        "another key made it, or the statement was changed after it was signed"
    )
    assert len(out) == 2  # the files agree with every document: only the signature tells

    resigned = signing.sign_payload(dumps(forged).encode(), signing.load_signing_key(mallory[0]))
    (root / PROVENANCE).write_text(dumps(resigned))
    write_sums(root)
    code, out, _ = run(capsys, "verify", str(root), "--key", str(alice[1]))
    assert (
        code == 1 and out[0] == f"mismatch: {PROVENANCE}: signed by key {mallory[2]}, not by a trusted key ({alice[2]})"
    )

    unsigned = documents.made_statement(json.loads((root / "manifest.json").read_text()))  # as publish would
    (root / PROVENANCE).write_text(dumps(unsigned))
    write_sums(root)
    code, out, _ = run(capsys, "verify", str(root), "--key", str(alice[1]))
    assert code == 1 and out[0].startswith(f"mismatch: {PROVENANCE}: unsigned, but --key was given")
    assert run(capsys, "verify", str(root))[0] == 0  # without a key, unsigned is all it can say


def test_a_file_the_signed_statement_does_not_cover_is_a_problem(
    synthetic: Synthetic, alice: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Signed by the trusted key itself, a statement that leaves out index.html does not vouch for the page."""
    root = publish(synthetic, alice[0])
    statement = statement_of(root)
    statement["subject"] = [s for s in statement["subject"] if s["name"] != "index.html"]  # type: ignore[attr-defined]
    (root / PROVENANCE).write_text(
        dumps(signing.sign_payload(dumps(statement).encode(), signing.load_signing_key(alice[0])))
    )
    write_sums(root)
    code, out, _ = run(capsys, "verify", str(root), "--key", str(alice[1]))
    assert code == 1
    assert out[0] == f"unexpected: index.html: not covered by the signed {PROVENANCE}"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"payloadType": "text/plain"}, "DSSE payloadType 'text/plain', expected 'application/vnd.in-toto+json'"),
        ({"payload": "not base64!"}, "DSSE payload: not canonical base64"),
        ({"payload": base64.b64encode(b"[1]").decode()}, "DSSE payload: not a JSON object"),
        ({"signatures": [{"keyid": "", "sig": "AAAA"}]}, "DSSE signature 1: no keyid"),
        ({"signatures": "none"}, "DSSE signatures: not a list of objects"),
    ],
)
def test_a_malformed_envelope_is_one_line(
    synthetic: Synthetic,
    alice: tuple[Path, Path, str],
    capsys: pytest.CaptureFixture[str],
    change: dict[str, object],
    problem: str,
) -> None:
    root = publish(synthetic, alice[0])
    (root / PROVENANCE).write_text(dumps({**envelope_of(root), **change}))
    write_sums(root)
    for args in ((), ("--key", str(alice[1]))):
        code, out, err = run(capsys, "verify", str(root), *args)
        assert (code, err) == (1, [])
        assert out == [
            f"mismatch: {PROVENANCE}: {problem}",
            f"mmulab: verify: {root}: 1 problem(s) in {_count(root)} files",
        ]


def test_a_provenance_too_big_to_read_for_its_signature_is_one_line(
    synthetic: Synthetic,
    alice: tuple[Path, Path, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The signature is checked on the provenance as the release check read it: at most check.MAX_DOCUMENT_BYTES
    (here lowered below its size), one line, and no second line claiming it unsigned."""
    root = publish(synthetic, alice[0])
    size, bound = (root / PROVENANCE).stat().st_size, check.MAX_DOCUMENT_BYTES
    monkeypatch.setattr(check, "MAX_DOCUMENT_BYTES", size - 1)
    code, out, _ = run(capsys, "verify", str(root), "--key", str(alice[1]))
    assert code == 1 and f"mismatch: {PROVENANCE}: larger than {size - 1} bytes; not read" in out
    assert not any("unsigned" in line or "signature" in line for line in out), out
    monkeypatch.setattr(check, "MAX_DOCUMENT_BYTES", bound)
    assert run(capsys, "verify", str(root), "--key", str(alice[1]))[0] == 0


# --- keys ---


def test_keygen_writes_a_0600_key_and_its_pub_prints_the_keyid_and_never_overwrites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private = tmp_path / "release-key"
    old_umask = os.umask(0)  # a lax umask must not widen the private key's mode
    try:
        code, out, err = run(capsys, "keygen", str(private))
    finally:
        os.umask(old_umask)
    assert (code, err) == (0, [])
    public = tmp_path / "release-key.pub"
    assert private.stat().st_mode & 0o777 == 0o600 and public.stat().st_mode & 0o777 == 0o644
    assert private.read_text().startswith("-----BEGIN PRIVATE KEY-----\n")
    (key,) = signing.load_public_keys(public)
    assert signing.load_signing_key(private).keyid == key.keyid
    assert f"mmulab: keygen: keyid {key.keyid}" in out
    before = (private.read_bytes(), public.read_bytes())
    code, out, err = run(capsys, "keygen", str(private))
    assert code == 1 and err == [
        f"mmulab: error: {private}: already exists; keygen never overwrites a key: give another path"
    ]
    assert (private.read_bytes(), public.read_bytes()) == before
    lone = tmp_path / "other"
    (tmp_path / "other.pub").write_text("someone's key\n")
    assert run(capsys, "keygen", str(lone))[0] == 1 and not lone.exists()  # nothing half made
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.pub", "release-key", "release-key.pub"]
    nested = tmp_path / "config" / "mmulab" / "key"
    assert run(capsys, "keygen", str(nested))[0] == 0  # a missing folder is made, for the owner only
    assert nested.is_file() and (nested.parent.stat().st_mode & 0o777, nested.stat().st_mode & 0o777) == (0o700, 0o600)


def test_keygen_never_writes_over_a_key_that_appears_meanwhile_nor_leaves_half_a_pair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The existence check comes first, but another process may write the same path a moment later: the file is
    linked into place, never renamed over, and a private key whose .pub could not be written is removed."""
    real_create = signing._create

    def racing(path: Path, data: bytes, mode: int) -> None:
        path.write_text("written meanwhile by someone else\n")
        real_create(path, data, mode)

    monkeypatch.setattr(signing, "_create", racing)
    with pytest.raises(UserError, match="already exists; keygen never overwrites a key"):
        signing.keygen(tmp_path / "first")
    assert (tmp_path / "first").read_text() == "written meanwhile by someone else\n"
    calls: list[Path] = []

    def public_races(path: Path, data: bytes, mode: int) -> None:
        calls.append(path)
        if path.name.endswith(".pub"):
            path.write_text("someone else's public key\n")
        real_create(path, data, mode)

    monkeypatch.setattr(signing, "_create", public_races)
    with pytest.raises(UserError, match=r"second\.pub: already exists"):
        signing.keygen(tmp_path / "second")
    assert calls == [tmp_path / "second", tmp_path / "second.pub"]
    assert not (tmp_path / "second").exists()  # no private key without its public half
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first", "second.pub"]  # no temporary left


def test_the_keyid_is_securesystemslibs_default(alice: tuple[Path, Path, str]) -> None:
    from securesystemslib.formats import encode_canonical

    (key,) = signing.load_public_keys(alice[1])
    canonical = encode_canonical({"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": key.raw.hex()}})
    assert key.keyid == hashlib.sha256(str(canonical).encode()).hexdigest() == alice[2]


@pytest.mark.needs("openssl")
def test_an_openssl_key_pair_signs_and_verifies(
    synthetic: Synthetic, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/releases.md's openssl steps make a key pair that publishes and verifies."""
    private, public = tmp_path / "ossl.pem", tmp_path / "ossl.pub"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(private)], check=True)
    subprocess.run(["openssl", "pkey", "-in", str(private), "-pubout", "-out", str(public)], check=True)
    root = publish(synthetic, private)
    code, out, _ = run(capsys, "verify", str(root), "--key", str(public))
    assert code == 0 and f"signed by trusted key {signing.load_signing_key(private).keyid}" in out[-1]


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.mark.needs("openssl")
@pytest.mark.parametrize(
    ("make", "message"),
    [
        ("missing", "{key}: no such signing key; make one with mmulab keygen KEY"),
        ("folder", "{key}: a folder, not a signing key; make one with mmulab keygen KEY"),
        ("junk", "{key}: not a PEM key file (no -----BEGIN line); make one with mmulab keygen KEY"),
        ("encrypted", "{key}: the key is encrypted; signing needs it unencrypted: openssl pkey -in {key} -out PLAIN"),
        ("public", "{key}: a public key; --sign takes the private key: make one with mmulab keygen KEY"),
        ("rsa", "{key}: an RSA key, not Ed25519; make one with mmulab keygen KEY"),
        ("openssh", "{key}: an OpenSSH key; signing needs a PEM (PKCS8) Ed25519 key: make one with mmulab keygen"),
        ("broken", "{key}: not a readable PEM private key (PRIVATE KEY); make one with mmulab keygen KEY"),
    ],
)
def test_a_bad_signing_key_is_one_line_and_nothing_is_published(
    synthetic: Synthetic, tmp_path: Path, make: str, message: str
) -> None:
    key = tmp_path / f"{make}.pem"
    if make == "folder":
        key.mkdir()
    elif make == "junk":
        key.write_bytes(b"\x00\xffnot a key\n")
    elif make == "encrypted":
        _openssl("genpkey", "-algorithm", "ed25519", "-aes-256-cbc", "-pass", "pass:x", "-out", str(key))
    elif make == "public":
        _, public, _ = keypair(tmp_path / "k", "k")
        shutil.copyfile(public, key)
    elif make == "rsa":
        _openssl("genpkey", "-algorithm", "rsa", "-pkeyopt", "rsa_keygen_bits:1024", "-out", str(key))
    elif make == "openssh":
        key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE=\n-----END OPENSSH PRIVATE KEY-----\n")
    elif make == "broken":
        key.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(UserError) as error:
        publish(synthetic, key)
    assert str(error.value).startswith(message.format(key=key)) and "\n" not in str(error.value)
    assert not synthetic.artifacts.exists() or not list(synthetic.artifacts.iterdir())


@pytest.mark.needs("openssl")
def test_a_bad_public_key_is_one_line(
    tmp_path: Path, alice: tuple[Path, Path, str], mallory: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_release(tmp_path / "r1")
    rsa, rsa_pub, empty, both = (tmp_path / name for name in ("rsa.pem", "rsa.pub", "empty.pem", "both.pem"))
    _openssl("genpkey", "-algorithm", "rsa", "-pkeyopt", "rsa_keygen_bits:1024", "-out", str(rsa))
    _openssl("pkey", "-in", str(rsa), "-pubout", "-out", str(rsa_pub))
    empty.write_text("# nobody yet\n")
    both.write_text(alice[1].read_text() + mallory[1].read_text())
    cases = [
        (("--key", str(tmp_path / "nope.pub")), f"{tmp_path / 'nope.pub'}: no such public key file; make one with"),
        (("--key", str(alice[0])), f"{alice[0]}: a private key; give its public half (KEY.pub from mmulab keygen"),
        (("--key", str(rsa_pub)), f"{rsa_pub}: an RSA key, not Ed25519; releases are signed with Ed25519 keys"),
        (("--key", str(both)), f"{both}: holds 2 public keys; give a file of several with --trusted-keys"),
        (
            ("--trusted-keys", str(empty)),
            f"{empty}: no PEM public key (-----BEGIN PUBLIC KEY-----) in this trusted-keys",
        ),
    ]
    for args, message in cases:
        code, out, err = run(capsys, "verify", str(root), *args)
        assert (code, out) == (1, []), args
        assert len(err) == 1 and err[0].startswith(f"mmulab: error: {message}"), err
