"""Signed provenance: the release's in-toto Statement as a DSSE envelope signed with an Ed25519 key, and its check.

A signature says who published a release; SHA256SUMS and the documents only say that it agrees with itself.
securesystemslib (the in-toto project's own library) does the cryptography: DSSE's pre-authentication encoding,
Ed25519 through pyca/cryptography. This module reads keys from files, telling each mistake in one line, and
judges an envelope against the keys a user trusts.

Keys are PEM files: a private key is PKCS8 (`-----BEGIN PRIVATE KEY-----`, what `mmulab keygen` and
`openssl genpkey -algorithm ed25519` write), a public key is SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`).
A trusted-keys file is several public keys one after the other; text between them (a comment naming the owner)
is ignored. A key's id is securesystemslib's (and in-toto's) default keyid: the sha256 of the key's canonical
JSON, `{"keytype": "ed25519", "keyval": {"public": "<hex of its 32 bytes>"}, "scheme": "ed25519"}`.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmulab.core.errors import UserError
from mmulab.release.format import PROVENANCE, SUMS

if TYPE_CHECKING:
    from securesystemslib.signer import CryptoSigner, SSlibKey

PAYLOAD_TYPE = "application/vnd.in-toto+json"  # DSSE's payloadType of an in-toto Statement
# A signed statement covers every file of the release but these: itself, and the sums made after it.
NOT_SUBJECTS = (PROVENANCE, SUMS)
PRIVATE_MODE = 0o600
KEY_FILE_BYTES = 64 << 10  # a PEM key is ~120 bytes; a trusted-keys file holds many
MAKE_ONE = "make one with mmulab keygen KEY (or openssl genpkey -algorithm ed25519 -out KEY)"
_PEM_LABEL = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")
_PUBLIC_BLOCK = re.compile(rb"-----BEGIN PUBLIC KEY-----.*?-----END PUBLIC KEY-----", re.DOTALL)
_SHOWN_KEYID = re.compile(r"[0-9A-Za-z._:/+=-]{1,128}")
MAX_SIGNATURES = 8  # signatures of one envelope: publish writes one; each is tried against every trusted key
_ENVELOPE_KEYS = {"payload", "payloadType", "signatures"}  # exactly these: DSSE's envelope, nothing beside it
_SIGNATURE_KEYS = {"keyid", "sig"}


class BadEnvelope(ValueError):
    """A provenance document that is a DSSE envelope but not a well-formed one: the message says what is wrong."""


@dataclass(frozen=True)
class SigningKey:
    """A private key read from `path`, ready to sign; `keyid` names its public half."""

    path: Path
    keyid: str
    signer: CryptoSigner


@dataclass(frozen=True)
class PublicKey:
    """A public key a user trusts: its keyid, where it was read (file, and which key of a trusted-keys file), and
    its 32 raw bytes."""

    keyid: str
    origin: str
    raw: bytes


@dataclass(frozen=True)
class Opened:
    """A DSSE envelope's parts, decoded: the statement its payload holds and each signature by keyid."""

    statement: dict[str, Any]
    payload: bytes
    payload_type: str
    signatures: tuple[tuple[str, bytes], ...]  # (keyid, signature), in the envelope's order

    @property
    def keyids(self) -> tuple[str, ...]:
        return tuple(keyid for keyid, _ in self.signatures)


@dataclass(frozen=True)
class Judgement:
    """What the signature of a release says: a problem (verify fails) or a note (verify passes and prints it)."""

    problem: str = ""
    note: str = ""


# ---------------------------------------------------------------------------------------------------------------
# Keys


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(KEY_FILE_BYTES + 1)
    except FileNotFoundError:
        raise UserError(f"{path}: no such {what}; {MAKE_ONE}") from None
    except IsADirectoryError:
        raise UserError(f"{path}: a folder, not a {what}; {MAKE_ONE}") from None
    except OSError as error:
        raise UserError(f"{path}: cannot read the {what} ({error.strerror or error}); check its permissions") from None
    if len(data) > KEY_FILE_BYTES:
        raise UserError(f"{path}: over {KEY_FILE_BYTES} bytes, too big for a {what}; {MAKE_ONE}")
    return data


def _labels(data: bytes) -> list[str]:
    return [label.decode() for label in _PEM_LABEL.findall(data)]


def key_id(raw: bytes) -> str:
    """securesystemslib's default keyid of the Ed25519 public key with these 32 bytes."""
    return _sslib_key(raw).keyid


def _sslib_key(raw: bytes) -> SSlibKey:
    """securesystemslib's public key of these 32 bytes, under its default keyid."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from securesystemslib.signer import SSlibKey

    return SSlibKey.from_crypto(Ed25519PublicKey.from_public_bytes(raw))


def _raw_public(key: Any) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw: bytes = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return raw


def _kind(key: object) -> str:
    """'an RSA key' for a key object of pyca/cryptography (the class name without Private/Public/Key)."""
    name = re.sub(r"(Private|Public)Key$", "", type(key).__name__.lstrip("_")) or "unknown"
    return f"an {name} key" if name[0] in "AEIOUR" else f"a {name} key"


def load_signing_key(path: Path) -> SigningKey:
    """The Ed25519 private key in PEM (PKCS8) file `path`; UserError naming the file and the fix otherwise."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from securesystemslib.signer import CryptoSigner

    what = "signing key"
    data = _read_key_file(path, what)
    labels = _labels(data)
    if not labels:
        raise UserError(f"{path}: not a PEM key file (no -----BEGIN line); {MAKE_ONE}")
    label = labels[0]
    if label == "ENCRYPTED PRIVATE KEY":
        raise UserError(
            f"{path}: the key is encrypted; signing needs it unencrypted: openssl pkey -in {path} -out PLAIN "
            "(keep PLAIN mode 0600)"
        )
    if label == "PUBLIC KEY":
        raise UserError(f"{path}: a public key; --sign takes the private key: {MAKE_ONE}")
    if label == "OPENSSH PRIVATE KEY":
        raise UserError(f"{path}: an OpenSSH key; signing needs a PEM (PKCS8) Ed25519 key: {MAKE_ONE}")
    try:
        key = load_pem_private_key(data, password=None)
    except TypeError:  # pyca's answer to an encrypted key in another PEM form
        raise UserError(f"{path}: the key is encrypted; signing needs it unencrypted: {MAKE_ONE}") from None
    except ValueError:
        raise UserError(f"{path}: not a readable PEM private key ({label}); {MAKE_ONE}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UserError(f"{path}: {_kind(key)}, not Ed25519; {MAKE_ONE}")
    signer = CryptoSigner(key)
    return SigningKey(path, signer.public_key.keyid, signer)


def _public_key(block: bytes, origin: str) -> PublicKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(block)
    except ValueError:
        raise UserError(f"{origin}: not a readable PEM public key; make one with mmulab keygen (KEY.pub)") from None
    if not isinstance(key, Ed25519PublicKey):
        raise UserError(f"{origin}: {_kind(key)}, not Ed25519; releases are signed with Ed25519 keys")
    raw = _raw_public(key)
    return PublicKey(key_id(raw), origin, raw)


def load_public_keys(path: Path, several: bool = False) -> tuple[PublicKey, ...]:
    """The Ed25519 public key in PEM file `path` (`several`: the one or more keys of a trusted-keys file)."""
    what = "trusted-keys file" if several else "public key file"
    data = _read_key_file(path, what)
    blocks = _PUBLIC_BLOCK.findall(data)
    if not blocks:
        labels = _labels(data)
        if any("PRIVATE KEY" in label for label in labels):
            raise UserError(
                f"{path}: a private key; give its public half (KEY.pub from mmulab keygen, or openssl pkey -in KEY "
                "-pubout), and keep the private key to yourself"
            )
        raise UserError(f"{path}: no PEM public key (-----BEGIN PUBLIC KEY-----) in this {what}")
    if len(blocks) > 1 and not several:
        raise UserError(f"{path}: holds {len(blocks)} public keys; give a file of several with --trusted-keys")
    keys = [
        _public_key(block, f"{path} (key {number})" if several else str(path)) for number, block in enumerate(blocks, 1)
    ]
    return tuple({key.keyid: key for key in keys}.values())


def _create(path: Path, data: bytes, mode: int) -> None:
    """Write a new file `path`, whole or not at all, never over an existing one (a hard link is made or fails)."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), mode)
        try:
            os.link(name, path)
        except FileExistsError:
            raise UserError(f"{path}: already exists; keygen never overwrites a key: give another path") from None
    finally:
        os.unlink(name)


def keygen(private: Path) -> str:
    """A new Ed25519 key pair: `private` (PKCS8 PEM, mode 0600) and `private`.pub; the keyid. Never overwrites;
    a missing folder is made (mode 0700)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    from securesystemslib.signer import CryptoSigner

    public = public_path(private)
    for path in (private, public):
        if path.exists() or path.is_symlink():
            raise UserError(f"{path}: already exists; keygen never overwrites a key: give another path")
    private.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # where keys are kept: the owner's only
    key = Ed25519PrivateKey.generate()
    signer = CryptoSigner(key)
    _create(private, signer.private_bytes, PRIVATE_MODE)
    try:
        _create(public, key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo), 0o644)
    except BaseException:
        private.unlink()
        raise
    return signer.public_key.keyid


def public_path(private: Path) -> Path:
    """Where keygen writes the public half of `private`: beside it, `.pub` appended."""
    return private.with_name(private.name + ".pub")


# ---------------------------------------------------------------------------------------------------------------
# Envelopes


def sign_payload(payload: bytes, key: SigningKey) -> dict[str, Any]:
    """A DSSE envelope of the in-toto statement `payload`, signed with `key`. Ed25519 is deterministic: the same
    payload and key give the same envelope."""
    from securesystemslib.dsse import Envelope

    envelope = Envelope(payload, PAYLOAD_TYPE, {})
    envelope.sign(key.signer)
    document: dict[str, Any] = envelope.to_dict()
    return document


def is_envelope(document: Mapping[str, Any]) -> bool:
    """A DSSE envelope rather than a bare in-toto Statement (which has `_type` and none of these)."""
    return any(key in document for key in ("payload", "payloadType", "signatures"))


def _base64(text: Any, what: str) -> bytes:
    """Canonical base64 only (standard or URL-safe, as DSSE allows): text that decodes and encodes back to
    itself; other pad bits or padding would let one signature be written many ways."""
    if not isinstance(text, str):
        raise BadEnvelope(f"{what}: not a base64 string")
    for altchars in (None, b"-_"):
        try:
            data = base64.b64decode(text, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
        if base64.b64encode(data, altchars=altchars).decode() == text:
            return data
    raise BadEnvelope(f"{what}: not canonical base64")


def open_envelope(document: Mapping[str, Any]) -> Opened:
    """The parts of the DSSE envelope `document`, decoded; BadEnvelope says what is wrong with it."""
    if set(document) != _ENVELOPE_KEYS:
        names = ", ".join(repr(key)[:40] for key in sorted(set(document) ^ _ENVELOPE_KEYS)[:3])
        raise BadEnvelope(f"DSSE envelope: keys other than payload, payloadType and signatures ({names})")
    payload_type = document.get("payloadType")
    if payload_type != PAYLOAD_TYPE:
        raise BadEnvelope(f"DSSE payloadType {payload_type!r}, expected {PAYLOAD_TYPE!r}")
    payload = _base64(document.get("payload"), "DSSE payload")
    try:
        statement = json.loads(payload)
    except (ValueError, RecursionError):
        raise BadEnvelope("DSSE payload: not a JSON in-toto statement") from None
    if not isinstance(statement, dict):
        raise BadEnvelope("DSSE payload: not a JSON object")
    entries = document.get("signatures")
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise BadEnvelope("DSSE signatures: not a list of objects")
    if len(entries) > MAX_SIGNATURES:
        raise BadEnvelope(f"DSSE signatures: {len(entries)}, more than {MAX_SIGNATURES}")
    signatures: dict[str, bytes] = {}
    for number, entry in enumerate(entries, 1):
        if set(entry) != _SIGNATURE_KEYS:
            raise BadEnvelope(f"DSSE signature {number}: keys other than keyid and sig")
        keyid = entry.get("keyid")
        if not isinstance(keyid, str) or not keyid:
            raise BadEnvelope(f"DSSE signature {number}: no keyid")
        if keyid in signatures:
            raise BadEnvelope(f"DSSE signature {number}: a second signature by key {shown(keyid)}")
        signatures[keyid] = _base64(entry.get("sig"), f"DSSE signature {number}")
    return Opened(statement, payload, payload_type, tuple(signatures.items()))


def shown(keyid: str) -> str:
    """A keyid as a line may show it: as it is when it looks like one, else quoted and cut (it is untrusted text)."""
    return keyid if _SHOWN_KEYID.fullmatch(keyid) else repr(keyid[:80])


def verified_by(opened: Opened, keys: Sequence[PublicKey]) -> tuple[str, ...]:
    """The keyids of `keys` whose signature in the envelope verifies (securesystemslib checks it)."""
    from securesystemslib.dsse import Envelope
    from securesystemslib.exceptions import VerificationError
    from securesystemslib.signer import Signature

    if not keys or not opened.signatures:
        return ()
    signatures = {keyid: Signature(keyid, signature.hex()) for keyid, signature in opened.signatures}
    envelope = Envelope(opened.payload, opened.payload_type, signatures)
    accepted: list[str] = []
    for key in keys:  # each key on its own: verify() stops at its threshold
        try:
            accepted += envelope.verify([_sslib_key(key.raw)], 1)
        except VerificationError:
            continue
    return tuple(accepted)


def judge(document: Mapping[str, Any], keys: Sequence[PublicKey]) -> Judgement:
    """What the provenance `document` (as the release check read it, bounded) proves about who published the
    release, given the trusted `keys`."""
    if not is_envelope(document):
        if keys:
            return Judgement(problem="unsigned, but --key was given (a signed release's provenance is a DSSE envelope)")
        return Judgement(note="unsigned: proves integrity, not who published it (a signed release needs --key PUB)")
    try:
        opened = open_envelope(document)
    except BadEnvelope as error:
        return Judgement(problem=str(error))  # the release check names it too: verify prints it once
    if not opened.signatures:
        if keys:
            return Judgement(problem="unsigned (a DSSE envelope without signatures), but --key was given")
        return Judgement(note="unsigned (an envelope without signatures): proves integrity, not who published it")
    signers = ", ".join(shown(keyid) for keyid in opened.keyids)
    if not keys:
        return Judgement(
            note=f"claims a signature by key {signers}, not checked (no --key PUB to trust): proves integrity "
            "only, not who published it"
        )
    accepted = verified_by(opened, keys)
    if accepted:
        origin = next(key.origin for key in keys if key.keyid == accepted[0])
        return Judgement(note=f"signed by trusted key {accepted[0]} ({origin})")
    known = [key for key in keys if key.keyid in opened.keyids]
    if known:
        return Judgement(
            problem=f"the signature under trusted key {known[0].keyid} does not verify with that key: another key "
            "made it, or the statement was changed after it was signed"
        )
    trusted = ", ".join(key.keyid for key in keys)
    return Judgement(problem=f"signed by key {signers}, not by a trusted key ({trusted})")
