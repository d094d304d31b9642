"""Ed25519 signatures over model manifests, and the keys this process trusts.

Whoever can write the registry can rewrite ``manifest.json`` and its hashes; nobody
without the private key can sign it. The signature (``manifest.sig``) covers the exact
bytes of ``manifest.json``, and a reader verifies those bytes before it parses them or
opens any other file of the artifact.

The process's keys are set once at start (``configure``, from the settings, by the
command line, the HTTP app and the tests) like its logging; until then nothing verifies.
Several public keys may be trusted at once: rotating a key is trusting the new one,
re-signing every version with it (``fraudstream models sign``), then dropping the old.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

SIGNATURE_FILE = "manifest.sig"


class SigningError(ValueError):
    """No usable key, or a signature that does not verify."""


def key_id(public: Ed25519PublicKey) -> str:
    """A short, stable name of a public key: the start of the sha256 of its raw bytes."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class Signer:
    private: Ed25519PrivateKey

    @property
    def key_id(self) -> str:
        return key_id(self.private.public_key())

    def sign(self, manifest: bytes) -> bytes:
        """The contents of ``manifest.sig`` for these manifest bytes."""
        signature = base64.b64encode(self.private.sign(manifest)).decode()
        return json.dumps({"key_id": self.key_id, "signature": signature}).encode()


@dataclass(frozen=True)
class KeyRing:
    """The public keys signatures are checked against, by key id."""

    keys: dict[str, Ed25519PublicKey]

    @classmethod
    def of(cls, keys: Iterable[Ed25519PublicKey]) -> KeyRing:
        return cls({key_id(k): k for k in keys})

    def verify(self, manifest: bytes, signature: bytes | None) -> str:
        """The id of the trusted key that signed ``manifest``; SigningError otherwise."""
        if signature is None:
            raise SigningError("is not signed")
        try:
            envelope = json.loads(signature)
            claimed = str(envelope["key_id"])
            raw = base64.b64decode(envelope["signature"], validate=True)
        except (ValueError, KeyError, TypeError):
            raise SigningError("has an unreadable signature") from None
        public = self.keys.get(claimed)
        if public is None:
            raise SigningError(f"is signed by key {claimed[:16]!r}, which is not trusted "
                               f"(trusted: {', '.join(self.keys) or 'none'})")
        try:
            public.verify(raw, manifest)
        except InvalidSignature:
            raise SigningError("has a signature that does not verify (manifest changed "
                               "after signing)") from None
        return claimed


@dataclass(frozen=True)
class Trust:
    """What this process verifies with and (if it may) signs with."""

    ring: KeyRing | None
    signer: Signer | None = None
    unconfigured: str = "no trusted model keys are configured"


_trust = Trust(None)


def configure(trust: Trust) -> None:
    global _trust
    _trust = trust


def current() -> Trust:
    return _trust


def trusted() -> KeyRing:
    """The process's key ring; refuses (SigningError) when none is configured."""
    if _trust.ring is None or not _trust.ring.keys:
        raise SigningError(_trust.unconfigured)
    return _trust.ring


def signer() -> Signer:
    if _trust.signer is None:
        raise SigningError("no model signing key is configured (FRAUDSTREAM_MODEL_SIGNING_KEY)")
    return _trust.signer


# -- key files -------------------------------------------------------------------------


def generate(private_path: Path, public_path: Path) -> Signer:
    """A new key pair: the private key written 0600, never over an existing one
    (FileExistsError), and complete before its name appears (another process may be
    reading it at the same moment)."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    private_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = private_path.with_name(f".{private_path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    try:
        os.link(tmp, private_path)
    finally:
        tmp.unlink()
    public_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.write_bytes(private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return Signer(private)


def load_signer(path: Path) -> Signer:
    try:
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SigningError(f"cannot read the model signing key {path}: {exc}") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise SigningError(f"the model signing key {path} is not an Ed25519 key")
    return Signer(private)


def load_public_keys(paths: Sequence[Path]) -> KeyRing:
    keys = []
    for path in paths:
        try:
            public = serialization.load_pem_public_key(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise SigningError(f"cannot read the trusted model key {path}: {exc}") from None
        if not isinstance(public, Ed25519PublicKey):
            raise SigningError(f"the trusted model key {path} is not an Ed25519 key")
        keys.append(public)
    return KeyRing.of(keys)
