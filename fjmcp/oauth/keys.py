# -*- test-case-name: tests.oauth.test_keys -*-
"""
The key ring that seals Forgejo tokens at rest (AES-256-GCM).

The key file (``token_keys_file``, default ``token-keys`` beside the store)
has one ``KID BASE64KEY`` line per key; blank lines and ``#`` comments are
allowed. The first key is the active one: it seals everything new; the
others only open what they sealed before, so a new key can be prepended
(``fjmcp admin gen-key``) without breaking a single row. The file must be
private to the service user (no group or other permission bits): a key
readable by others is refused with a message saying what to run.

Each sealed value carries the associated data of its row (for example
``fjmcp/upstream_tokens/42/access``), so a blob moved to another row or
column does not open. The key ring also derives keys for other purposes
(cookie signing, requestState sealing) with HKDF, one per key, so the
broker has one secret to guard and a rotation voids no cookie in flight.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import stat
import time
from pathlib import Path
from typing import Final, Protocol

from attrs import define, field, frozen
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "KEY_BYTES",
    "KeyFileError",
    "KeyRing",
    "LiveKeyRing",
    "SealingKeys",
    "SealError",
    "generate_key_line",
    "load_keyring",
    "parse_key_file",
    "prepend_new_key",
]

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
_KID: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")
#: Largest key file read (a few hundred keys at most).
_MAX_FILE_BYTES: Final = 64 * 1024


class KeyFileError(Exception):
    """The key file is missing, unreadable, too open or malformed."""


class SealError(Exception):
    """A sealed value does not open: unknown key id, tampered, wrong row."""


def parse_key_file(
    text: str, *, source: str = "key file"
) -> tuple[tuple[str, bytes], ...]:
    """
    The ``(kid, key)`` pairs of a key file's text, active key first.

    Raises `KeyFileError` naming the line for a malformed line, a key that
    is not 32 bytes of base64, a duplicate id, or a file without keys.
    """
    keys: list[tuple[str, bytes]] = []
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or not _KID.fullmatch(parts[0]):
            raise KeyFileError(f"{source}, line {number}: expected 'KID BASE64KEY'")
        kid, encoded = parts
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise KeyFileError(
                f"{source}, line {number}: key {kid!r} is not base64"
            ) from None
        if len(key) != KEY_BYTES:
            raise KeyFileError(
                f"{source}, line {number}: key {kid!r} must be {KEY_BYTES} bytes"
            )
        if kid in seen:
            raise KeyFileError(f"{source}, line {number}: key id {kid!r} is repeated")
        seen.add(kid)
        keys.append((kid, key))
    if not keys:
        raise KeyFileError(
            f"{source} holds no key; create one with `fjmcp admin gen-key`"
        )
    return tuple(keys)


def _check_private(path: Path, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"token key file {path} is not a regular file")
    if st.st_mode & 0o077:
        raise KeyFileError(
            f"token key file {path} has mode {stat.S_IMODE(st.st_mode):04o}; it "
            f"must be private to the service user: chmod 600 {path}"
        )


@frozen
class KeyRing:
    """AES-GCM keys by id; the first one seals, all of them open."""

    _keys: tuple[tuple[str, bytes], ...] = field(repr=False)
    source: str = "memory"
    _derived: dict[str, tuple[bytes, ...]] = field(
        factory=dict, init=False, repr=False, eq=False
    )

    def __attrs_post_init__(self) -> None:
        if not self._keys:
            raise KeyFileError("a key ring needs at least one key")

    @classmethod
    def generate(cls) -> KeyRing:
        """A ring with one fresh random key (tests and the demo)."""
        return cls(((_new_kid(), AESGCM.generate_key(bit_length=256)),))

    @property
    def active_id(self) -> str:
        """The id of the key that seals."""
        return self._keys[0][0]

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every key id, active first."""
        return tuple(kid for kid, _ in self._keys)

    def _key(self, kid: str) -> bytes:
        for candidate, key in self._keys:
            if candidate == kid:
                return key
        raise SealError(f"no key {kid!r} in {self.source}")

    def seal(self, plaintext: bytes, aad: bytes) -> tuple[str, bytes]:
        """
        Encrypt ``plaintext`` with the active key, bound to ``aad``.

        Returns ``(key_id, nonce || ciphertext)``.
        """
        kid, key = self._keys[0]
        nonce = os.urandom(NONCE_BYTES)
        return kid, nonce + AESGCM(key).encrypt(nonce, plaintext, aad)

    def open(self, kid: str, blob: bytes, aad: bytes) -> bytes:
        """Decrypt what `seal` gave; `SealError` if it does not open."""
        key = self._key(kid)
        if len(blob) < NONCE_BYTES + 16:
            raise SealError("sealed value is truncated")
        try:
            return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except InvalidTag:
            raise SealError(
                "sealed value does not open (tampered or wrong row)"
            ) from None

    def reseal(self, kid: str, blob: bytes, aad: bytes) -> tuple[str, bytes]:
        """Open a value sealed by ``kid`` and seal it with the active key."""
        return self.seal(self.open(kid, blob, aad), aad)

    def derive_each(self, purpose: str) -> tuple[bytes, ...]:
        """
        32-byte keys for ``purpose`` (e.g. cookie signing), one derived from
        each key of the ring with HKDF-SHA256, active first: distinct per
        purpose, never a sealing key itself. New values are made with the
        first and accepted under any, so prepending a key voids nothing in
        flight, on this node or on another reading the same key file.
        """
        derived = self._derived.get(purpose)
        if derived is None:
            info = b"fjmcp/" + purpose.encode("utf-8")
            derived = tuple(
                HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
                    key
                )
                for _, key in self._keys
            )
            self._derived[purpose] = derived
        return derived


class SealingKeys(Protocol):
    """What the components that seal and open values need of the keys."""

    @property
    def active_id(self) -> str:
        """The id of the key that seals."""

    def seal(self, plaintext: bytes, aad: bytes) -> tuple[str, bytes]:
        """Encrypt with the active key; ``(key_id, blob)``."""

    def open(self, kid: str, blob: bytes, aad: bytes) -> bytes:
        """Decrypt what `seal` gave."""

    def derive_each(self, purpose: str) -> tuple[bytes, ...]:
        """Keys for ``purpose`` derived from every key, active first."""


@define(eq=False)
class LiveKeyRing:
    """
    The daemon's keys: a `KeyRing` replaced whole when the key file is read
    again (``fjmcp admin rotate-key``), so every component holding this sees
    the new active key at once. Values sealed before stay readable as long
    as the file still holds their key.
    """

    ring: KeyRing
    path: Path | None = None
    """The key file (None: keys made in memory, which cannot be re-read)."""

    @property
    def active_id(self) -> str:
        """The id of the key that seals."""
        return self.ring.active_id

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every key id, active first."""
        return self.ring.key_ids

    def seal(self, plaintext: bytes, aad: bytes) -> tuple[str, bytes]:
        """Encrypt with the current ring's active key."""
        return self.ring.seal(plaintext, aad)

    def open(self, kid: str, blob: bytes, aad: bytes) -> bytes:
        """Decrypt with the current ring."""
        return self.ring.open(kid, blob, aad)

    def derive_each(self, purpose: str) -> tuple[bytes, ...]:
        """Keys derived from the current ring's keys, active first."""
        return self.ring.derive_each(purpose)

    def read(self) -> KeyRing:
        """The key file as it is now (not yet in use); `KeyFileError` if bad."""
        if self.path is None:
            raise KeyFileError("these keys were not read from a file")
        return load_keyring(self.path)

    def use(self, ring: KeyRing) -> None:
        """Seal with ``ring`` from now on."""
        self.ring = ring


def load_keyring(path: str | os.PathLike[str]) -> KeyRing:
    """
    Read the key file at ``path``, refusing one that others may read.

    Every problem is a `KeyFileError` whose message says what to do; the
    broker refuses to start with it.
    """
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise KeyFileError(
            f"token key file {p} does not exist; create it with "
            f"`fjmcp admin gen-key --config FILE` (as the service user)"
        ) from None
    except OSError as e:
        raise KeyFileError(f"cannot read token key file {p}: {e.strerror}") from None
    try:
        _check_private(p, os.fstat(fd))
        data = os.read(fd, _MAX_FILE_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > _MAX_FILE_BYTES:
        raise KeyFileError(f"token key file {p} is too large")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise KeyFileError(f"token key file {p} is not ASCII text") from None
    return KeyRing(parse_key_file(text, source=f"token key file {p}"), source=str(p))


def _new_kid() -> str:
    return time.strftime("k%Y%m%d", time.gmtime()) + "-" + secrets.token_hex(3)


def generate_key_line() -> tuple[str, str]:
    """A fresh ``(kid, "KID BASE64KEY")`` line for the key file."""
    kid = _new_kid()
    key = base64.b64encode(AESGCM.generate_key(bit_length=256)).decode("ascii")
    return kid, f"{kid} {key}"


def prepend_new_key(path: str | os.PathLike[str]) -> str:
    """
    Create the key file with one new key, or put a new key first in it.

    The file is written beside itself and renamed into place, mode 0600,
    so a reader never sees half a file. An existing file must itself be
    valid and private. Returns the new key's id.
    """
    p = Path(path)
    existing = ""
    if p.exists() or p.is_symlink():
        load_keyring(p)  # refuses a file that is open to others or malformed
        existing = p.read_text(encoding="ascii")
    kid, line = generate_key_line()
    text = line + "\n" + existing
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = p.with_name(f".{p.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, p)
    return kid
