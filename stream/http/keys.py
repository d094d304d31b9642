"""API keys, stored only as SHA-256 hashes.

A key is 32 random bytes (``fsk_`` + URL-safe base64), shown once when it is made. The
keys file holds one ``name:sha256hex`` line per key, ``name:sha256hex:revoked`` for a
revoked one; blank lines and ``#`` comments are ignored. A presented key is hashed and
compared with every stored hash in constant time. SHA-256 without a salt is enough here:
the keys are random, so there is nothing to guess from the hash, unlike passwords.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fraudstream.errors import ConfigError

KEY_PREFIX = "fsk_"
REVOKED = "revoked"
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_HEX = re.compile(r"^[0-9a-f]{64}$")
RELOAD_EVERY_S = 1.0

Verdict = Literal["valid", "revoked", "unknown"]


class KeyFileError(ConfigError):
    """The keys file cannot be read or a line of it is malformed."""


@dataclass(frozen=True)
class StoredKey:
    name: str
    digest: bytes  # sha256 of the key
    revoked: bool = False

    def line(self) -> str:
        return f"{self.name}:{self.digest.hex()}" + (f":{REVOKED}" if self.revoked else "")


def hash_key(key: str) -> bytes:
    """The SHA-256 of a key: all that is ever stored of it."""
    return hashlib.sha256(key.encode("utf-8")).digest()


def new_key() -> str:
    """A fresh random API key (never stored: only its hash is)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def check_name(name: str) -> str:
    """``name`` if it may name a key, else KeyFileError."""
    if not _NAME.match(name):
        raise KeyFileError(f"key name {name!r} must be 1 to 64 letters, digits, '.', '_' "
                           "or '-'")
    return name


def parse_keys(text: str, source: str = "keys file") -> list[StoredKey]:
    """The keys of a keys file; a malformed line is an error naming its line number."""
    keys: list[StoredKey] = []
    names: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != REVOKED):
            raise KeyFileError(f"{source} line {number}: expected name:sha256hex or "
                               f"name:sha256hex:{REVOKED}")
        name, digest = parts[0], parts[1].lower()
        try:
            check_name(name)
        except KeyFileError as exc:
            raise KeyFileError(f"{source} line {number}: {exc}") from None
        if not _HEX.match(digest):
            raise KeyFileError(f"{source} line {number}: the hash must be 64 hex digits "
                               "(sha256)")
        if name in names:
            raise KeyFileError(f"{source} line {number}: key name {name!r} appears twice")
        names.add(name)
        keys.append(StoredKey(name, bytes.fromhex(digest), len(parts) == 3))
    return keys


def find_key(keys: Iterable[StoredKey], presented: str) -> StoredKey | None:
    """The stored key whose hash matches ``presented``. Every hash is compared, in
    constant time, whatever matches: the time taken says nothing about the keys."""
    digest = hash_key(presented)
    found: StoredKey | None = None
    for key in keys:
        if hmac.compare_digest(digest, key.digest):
            found = key
    return found


class KeyStore:
    """The keys of one file, re-read when the file changes (checked at most once a
    second), so a key revoked in a mounted Secret takes effect without a restart. A
    file that turns unreadable or malformed keeps the last good keys (and says so)."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic,
                 on_error: Callable[[str], None] | None = None) -> None:
        self.path = path
        self._clock = clock
        self._on_error = on_error
        self._stamp: tuple[int, int, int] | None = None
        self._checked_at = clock()
        self.keys = self._load()  # the first read must work: no keys, no service

    def _file_stamp(self) -> tuple[int, int, int]:
        stat = os.stat(self.path)  # follows the symlinks a Kubernetes Secret mount swaps
        return stat.st_ino, stat.st_size, stat.st_mtime_ns

    def _load(self) -> list[StoredKey]:
        try:
            stamp = self._file_stamp()
            text = self.path.read_text()
        except OSError as exc:
            raise KeyFileError(f"cannot read the API keys file {self.path}: "
                               f"{exc.strerror or exc}") from None
        keys = parse_keys(text, str(self.path))
        self._stamp = stamp
        return keys

    def refresh(self) -> None:
        """Re-read the file if it changed, at most once a second."""
        now = self._clock()
        if now - self._checked_at < RELOAD_EVERY_S:
            return
        self._checked_at = now
        try:
            if self._file_stamp() == self._stamp:
                return
            self.keys = self._load()
        except (OSError, KeyFileError) as exc:
            if self._on_error is not None:
                self._on_error(f"keeping the previous API keys: {exc}")

    def verify(self, presented: str | None) -> tuple[Verdict, StoredKey | None]:
        """("valid", key), ("revoked", key) or ("unknown", None)."""
        self.refresh()
        if not presented:
            return "unknown", None
        key = find_key(self.keys, presented)
        if key is None:
            return "unknown", None
        return ("revoked" if key.revoked else "valid"), key


def create_key(name: str, keys_file: Path | None = None) -> tuple[str, StoredKey]:
    """A new key and its stored form, added to ``keys_file`` when one is given. The
    raw key is returned to be shown once; nothing keeps it."""
    key = new_key()
    stored = StoredKey(check_name(name), hash_key(key))
    if keys_file is not None:
        append_to_file(keys_file, stored)
    return key, stored


def revoke_in_file(path: Path, name: str) -> StoredKey:
    """Mark the key ``name`` revoked in the keys file, keeping every other line."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise KeyFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    keys = {k.name: k for k in parse_keys("\n".join(lines), str(path))}
    if name not in keys:
        raise KeyFileError(f"no key named {name!r} in {path}")
    revoked = StoredKey(name, keys[name].digest, True)
    out = [revoked.line() if line.strip().split(":")[0] == name else line for line in lines]
    _write_atomically(path, "\n".join(out) + "\n")
    return revoked


def append_to_file(path: Path, key: StoredKey) -> None:
    """Add ``key`` to the keys file (created if absent); its name must be new."""
    try:
        text = path.read_text() if path.exists() else ""
    except OSError as exc:
        raise KeyFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    if any(k.name == key.name for k in parse_keys(text, str(path))):
        raise KeyFileError(f"a key named {key.name!r} is already in {path}")
    if text and not text.endswith("\n"):
        text += "\n"
    _write_atomically(path, text + key.line() + "\n")


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        tmp.write_text(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except OSError as exc:
        raise KeyFileError(f"cannot write {path}: {exc.strerror or exc}") from None
