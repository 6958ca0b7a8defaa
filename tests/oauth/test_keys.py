# -*- test-case-name: tests.oauth.test_keys -*-
"""Tests for `fjmcp.oauth.keys`: the key file, sealing and derivation."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from fjmcp.oauth.keys import (
    KeyFileError,
    KeyRing,
    LiveKeyRing,
    SealError,
    generate_key_line,
    load_keyring,
    parse_key_file,
    prepend_new_key,
)

KEY = base64.b64encode(b"k" * 32).decode()


def _write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "holds no key"),
        ("# only a comment\n\n", "holds no key"),
        ("k1\n", "expected 'KID BASE64KEY'"),
        (f"k1 {KEY} extra\n", "expected 'KID BASE64KEY'"),
        (f"bad/id {KEY}\n", "expected 'KID BASE64KEY'"),
        ("k1 not*base64\n", "is not base64"),
        (f"k1 {base64.b64encode(b'short').decode()}\n", "must be 32 bytes"),
        (f"k1 {KEY}\nk1 {KEY}\n", "is repeated"),
    ],
)
def test_malformed_key_files(text: str, message: str) -> None:
    """Every malformed key file is refused with a message naming the problem."""
    with pytest.raises(KeyFileError, match=message):
        parse_key_file(text)


def test_parse_keeps_order_and_skips_comments() -> None:
    """The first key line is the active key; comments and blanks are skipped."""
    other = base64.b64encode(b"o" * 32).decode()
    keys = parse_key_file(f"# keys\n\nnew {KEY}\nold {other}\n")
    assert [kid for kid, _ in keys] == ["new", "old"]


def test_load_refuses_open_modes(tmp_path: Path) -> None:
    """A key file readable by group or others is refused, naming chmod 600."""
    path = _write(tmp_path / "keys", f"k1 {KEY}\n", 0o640)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_keyring(path)
    path.chmod(0o600)
    assert load_keyring(path).active_id == "k1"


def test_load_missing_file_says_what_to_run(tmp_path: Path) -> None:
    """A missing key file is refused with the command that creates one."""
    with pytest.raises(KeyFileError, match="gen-key"):
        load_keyring(tmp_path / "absent")


def test_load_refuses_directory_and_symlink(tmp_path: Path) -> None:
    """A directory or a symlink is not accepted as the key file."""
    (tmp_path / "dir").mkdir(mode=0o700)
    with pytest.raises(KeyFileError):
        load_keyring(tmp_path / "dir")
    target = _write(tmp_path / "real", f"k1 {KEY}\n")
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(KeyFileError):
        load_keyring(tmp_path / "link")


def test_seal_and_open_with_associated_data() -> None:
    """A sealed value opens with the same associated data, and only with it."""
    ring = KeyRing.generate()
    kid, blob = ring.seal(b"forgejo-token", b"row/1/access")
    assert kid == ring.active_id
    assert b"forgejo-token" not in blob
    assert ring.open(kid, blob, b"row/1/access") == b"forgejo-token"
    with pytest.raises(SealError):
        ring.open(kid, blob, b"row/2/access")
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(SealError):
        ring.open(kid, tampered, b"row/1/access")
    with pytest.raises(SealError):
        ring.open("unknown", blob, b"row/1/access")
    with pytest.raises(SealError):
        ring.open(kid, blob[:10], b"row/1/access")


def test_prepend_keeps_old_keys_able_to_open(tmp_path: Path) -> None:
    """After gen-key prepends a key, new seals use it and old blobs still open."""
    path = tmp_path / "state" / "token-keys"
    first = prepend_new_key(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    ring = load_keyring(path)
    kid, blob = ring.seal(b"secret", b"aad")
    assert kid == first
    second = prepend_new_key(path)
    ring2 = load_keyring(path)
    assert ring2.key_ids == (second, first)
    assert ring2.open(kid, blob, b"aad") == b"secret"
    assert ring2.seal(b"x", b"aad")[0] == second
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_prepend_refuses_open_existing_file(tmp_path: Path) -> None:
    """gen-key does not touch an existing key file that is open to others."""
    path = _write(tmp_path / "keys", f"k1 {KEY}\n", 0o644)
    with pytest.raises(KeyFileError):
        prepend_new_key(path)
    assert path.read_text() == f"k1 {KEY}\n"


def test_derive_is_per_purpose_and_not_the_key() -> None:
    """Derived keys differ by purpose, are stable, and are not the sealing key."""
    ring = KeyRing(((("k1", b"k" * 32)),))
    (a,), (b,) = ring.derive_each("cookies"), ring.derive_each("other")
    assert a != b and len(a) == 32 and a != b"k" * 32
    assert ring.derive_each("cookies") == (a,)


def test_derive_gives_one_key_per_ring_key_active_first() -> None:
    """
    A prepended key's derived key comes first and the old one follows, the
    same as the old ring derived: what the old key signed still verifies.
    """
    old = KeyRing((("k1", b"k" * 32),))
    new = KeyRing((("k2", b"n" * 32), ("k1", b"k" * 32)))
    assert new.derive_each("cookies")[1:] == old.derive_each("cookies")
    assert new.derive_each("cookies")[0] not in old.derive_each("cookies")


def test_a_live_ring_derives_from_the_ring_in_use() -> None:
    """After `LiveKeyRing.use`, derived keys follow the new ring."""
    old = KeyRing((("k1", b"k" * 32),))
    new = KeyRing((("k2", b"n" * 32), ("k1", b"k" * 32)))
    live = LiveKeyRing(old)
    assert live.derive_each("cookies") == old.derive_each("cookies")
    live.use(new)
    assert live.derive_each("cookies") == new.derive_each("cookies")


def test_repr_hides_keys() -> None:
    """A key ring's repr shows no key material."""
    line = generate_key_line()[1]
    ring = KeyRing(parse_key_file(line))
    assert line.split()[1] not in repr(ring)
