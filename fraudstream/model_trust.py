"""Which model signatures this process trusts, and which key it signs with, from the
settings: the one place that decides between production keys and development keys.

Production (``FRAUDSTREAM_DEV_KEYS`` off, the default): a model is loaded or promoted only
if its manifest verifies with one of ``FRAUDSTREAM_MODEL_PUBLIC_KEYS``; without them every
command that loads a model refuses to start, in one line. Development (the demo, the
tests): with neither key setting, a key pair is generated once in ``dev_keys_dir`` and
used for both, and a log line says so.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from fraudstream.models import signing
from fraudstream.models.signing import KeyRing, Signer, Trust

if TYPE_CHECKING:
    from fraudstream.settings import Settings

log = logging.getLogger(__name__)

DEV_PRIVATE = "model-signing.pem"
DEV_PUBLIC = "model-signing.pub.pem"
NO_KEYS = ("no trusted model keys: set FRAUDSTREAM_MODEL_PUBLIC_KEYS to the public key(s) "
           "models are signed with (FRAUDSTREAM_DEV_KEYS=1 for a local demo only)")


def public_key_paths(settings: Settings) -> list[Path]:
    """The key files named, a directory standing for every ``*.pem`` in it (a mounted
    ConfigMap or Secret holding one key, or two during a rotation)."""
    paths: list[Path] = []
    for part in (settings.model_public_keys or "").split(","):
        if part.strip():
            path = Path(part.strip()).expanduser()
            paths.extend(sorted(path.glob("*.pem")) if path.is_dir() else [path])
    return paths


def trust_from_settings(settings: Settings) -> Trust:
    """The keys ``settings`` name; key files are read here, so a bad one fails at start."""
    paths = public_key_paths(settings)
    signer = (signing.load_signer(Path(settings.model_signing_key).expanduser())
              if settings.model_signing_key else None)
    if paths:
        return Trust(signing.load_public_keys(paths), signer)
    if settings.dev_keys:
        dev = signer or _dev_signer(Path(settings.dev_keys_dir).expanduser())
        return Trust(KeyRing.of([dev.private.public_key()]), dev)
    return Trust(None, signer, NO_KEYS)


def configure(settings: Settings) -> Trust:
    """Set this process's trust from ``settings`` (the command line, each HTTP worker)."""
    trust = trust_from_settings(settings)
    signing.configure(trust)
    return trust


def require_keys() -> None:
    """Refuse to start a command that loads models without a trusted key, in one line."""
    signing.trusted()


def _dev_signer(directory: Path) -> Signer:
    private, public = directory / DEV_PRIVATE, directory / DEV_PUBLIC
    with contextlib.suppress(FileExistsError):
        signing.generate(private, public)
        log.warning("development keys: generated the model signing key pair %s; never use "
                    "FRAUDSTREAM_DEV_KEYS in production", private)
    signer = signing.load_signer(private)
    log.warning("development keys: models are signed and verified with %s "
                "(FRAUDSTREAM_DEV_KEYS=1); production needs FRAUDSTREAM_MODEL_PUBLIC_KEYS",
                private)
    return signer
