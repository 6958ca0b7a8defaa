# -*- test-case-name: tests.oauth.test_rotation -*-
"""
Key rotation: after ``fjmcp admin gen-key`` put a new key first in the key
file, read the file again and re-seal every sealed row with the new key.

Online (``fjmcp admin rotate-key`` through the admin socket) the daemon's
`LiveKeyRing` switches to the new ring at once, so every value sealed from
then on uses the new key, and the rows sealed before are re-sealed in small
transactions while the broker serves. Offline the same runs on the store.
A key retires when no row uses it any more: the result names such keys, and
the operator removes them from the file (on every node sharing it) once no
node still seals with them.

The file must still hold every key some row uses; otherwise nothing
changes (a key removed too early would leave rows nobody can open).
"""

from __future__ import annotations

from typing import Any, Final

from attrs import define, frozen

from fjmcp.oauth.account import account_login_aad
from fjmcp.oauth.keys import KeyRing, LiveKeyRing
from fjmcp.oauth.login import pending_aad
from fjmcp.oauth.refresh_replay import replay_aad
from fjmcp.store.runner import TxnRunner
from fjmcp.store.sealed import key_usage_txn, reseal_batch_txn

__all__ = ["KeyRotation", "KeyRotationError", "RotationResult"]

#: Batches of re-sealing before giving up on rows that keep changing.
MAX_ROUNDS: Final = 10_000


#: The associated data of each keyed table's sealed column (`fjmcp.store.sealed`).
_AADS: Final = {
    "pending_authorizations": pending_aad,
    "refresh_replays": replay_aad,
    "account_logins": account_login_aad,
}


class KeyRotationError(Exception):
    """The key file cannot be used as it is; nothing was changed."""


@frozen
class RotationResult:
    """What a rotation did."""

    active: str
    resealed: int
    usage: dict[str, int]
    """Rows per key id after the rotation."""
    unused: tuple[str, ...]
    """Older keys of the file that no row uses: they may be removed."""

    def as_json(self) -> dict[str, Any]:
        """For the admin channel and ``--json``."""
        return {
            "active_key": self.active,
            "resealed": self.resealed,
            "rows_by_key": dict(self.usage),
            "unused_keys": list(self.unused),
        }


@define
class KeyRotation:
    """Re-reads the key file into ``keys`` and re-seals ``store``'s rows."""

    _store: TxnRunner
    _keys: LiveKeyRing

    async def rotate(self) -> RotationResult:
        """Read the file, switch to its active key, re-seal every older row."""
        ring = self._keys.read()
        usage = await self._store.run(key_usage_txn)
        missing = sorted(k for k in usage if k not in ring.key_ids)
        if missing:
            raise KeyRotationError(
                f"the key file lacks key(s) {', '.join(missing)} that sealed "
                f"{sum(usage[k] for k in missing)} row(s); put them back"
            )
        self._keys.use(ring)
        resealed = await self.reseal(ring)
        usage = await self._store.run(key_usage_txn)
        unused = tuple(k for k in ring.key_ids[1:] if not usage.get(k))
        return RotationResult(ring.active_id, resealed, usage, unused)

    async def reseal(self, ring: KeyRing) -> int:
        """Re-seal, batch by batch, every row not sealed by ``ring``'s active key."""
        total = 0
        for _ in range(MAX_ROUNDS):
            done: int = await self._store.run(
                reseal_batch_txn, ring.active_id, ring.reseal, _AADS
            )
            if not done:
                break
            total += done
        return total
