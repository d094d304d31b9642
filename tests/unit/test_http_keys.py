"""API keys: only hashes are stored, lookups compare every hash, the file is re-read."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from fraudstream.stream.http.keys import (
    KEY_PREFIX,
    KeyFileError,
    KeyStore,
    StoredKey,
    append_to_file,
    create_key,
    find_key,
    hash_key,
    parse_keys,
    revoke_in_file,
)


def test_a_new_key_is_random_and_only_its_sha256_is_kept(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    first, stored = create_key("alice", keys)
    second, _ = create_key("bob", keys)
    assert first.startswith(KEY_PREFIX) and len(first) > 40 and first != second
    assert stored.digest == hashlib.sha256(first.encode()).digest()
    text = keys.read_text()
    assert first not in text and second not in text
    assert text.splitlines()[0] == f"alice:{hashlib.sha256(first.encode()).hexdigest()}"
    assert os.stat(keys).st_mode & 0o077 == 0, "the keys file is readable by its owner only"


def test_parse_reads_names_hashes_and_revocations() -> None:
    a, b = hash_key("a").hex(), hash_key("b").hex()
    keys = parse_keys(f"# comment\n\nalice:{a}\n  bob:{b.upper()}:revoked  \n")
    assert keys == [StoredKey("alice", hash_key("a")), StoredKey("bob", hash_key("b"), True)]


@pytest.mark.parametrize("line, fragment", [
    ("alice", "expected name:sha256hex"),
    (f"alice:{'0' * 64}:disabled", "expected name:sha256hex"),
    (f"al ice:{'0' * 64}", "must be 1 to 64 letters"),
    ("alice:abc", "must be 64 hex digits"),
    (f"alice:{'g' * 64}", "must be 64 hex digits"),
])
def test_a_malformed_line_is_refused_with_its_number(line: str, fragment: str) -> None:
    with pytest.raises(KeyFileError) as caught:
        parse_keys(f"# keys\n{line}\n", "keys")
    assert str(caught.value).startswith("keys line 2: ")
    assert fragment in str(caught.value)


def test_a_name_may_appear_only_once() -> None:
    with pytest.raises(KeyFileError, match="appears twice"):
        parse_keys(f"a:{'0' * 64}\na:{'1' * 64}\n")


def test_find_key_matches_the_hash_of_the_presented_key() -> None:
    keys = [StoredKey("alice", hash_key("k1")), StoredKey("bob", hash_key("k2"), True)]
    assert find_key(keys, "k1") == keys[0]
    assert find_key(keys, "k2") == keys[1]
    assert find_key(keys, "k3") is None
    assert find_key(keys, hash_key("k1").hex()) is None, "the hash itself is not a key"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_store_verifies_and_picks_up_a_revocation_within_a_second(
        tmp_path: Path) -> None:
    path = tmp_path / "keys"
    key, _ = create_key("alice", path)
    clock = Clock()
    store = KeyStore(path, clock)
    assert store.verify(key)[0] == "valid"
    assert store.verify("fsk_wrong") == ("unknown", None)
    assert store.verify(None) == ("unknown", None)
    revoke_in_file(path, "alice")
    assert store.verify(key)[0] == "valid", "re-read at most once a second"
    clock.now += 1.5
    verdict, found = store.verify(key)
    assert verdict == "revoked" and found is not None and found.name == "alice"


def test_a_broken_file_keeps_the_last_good_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    key, _ = create_key("alice", path)
    errors: list[str] = []
    clock = Clock()
    store = KeyStore(path, clock, on_error=errors.append)
    path.write_text("garbage\n")
    clock.now += 2
    assert store.verify(key)[0] == "valid"
    assert errors and "line 1" in errors[0]
    path.unlink()
    clock.now += 2
    assert store.verify(key)[0] == "valid"
    assert "No such file" in errors[-1]


def test_a_missing_or_unreadable_file_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read the API keys file"):
        KeyStore(tmp_path / "absent")


def test_revoke_keeps_other_lines_and_names_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("# team keys\n")
    create_key("alice", path)
    create_key("bob", path)
    revoke_in_file(path, "bob")
    lines = path.read_text().splitlines()
    assert lines[0] == "# team keys"
    assert lines[1].startswith("alice:") and not lines[1].endswith(":revoked")
    assert lines[2].startswith("bob:") and lines[2].endswith(":revoked")
    with pytest.raises(KeyFileError, match="no key named 'carol'"):
        revoke_in_file(path, "carol")


def test_a_name_cannot_be_added_twice(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    create_key("alice", path)
    with pytest.raises(KeyFileError, match="already in"):
        append_to_file(path, StoredKey("alice", hash_key("other")))
