# -*- test-case-name: tests.oauth.test_consent_modes -*-
"""
Changing the consent mode of a grant after the fact (the account page's
"read-only" / "full access" switch).

The store changes the mode and revokes the grant's tokens in one
transaction (each token carries the mode it was minted with); then the
revocation fan-out forgets them in the bearer cache and ends the grant's
live sessions, so that no child keeps a wider view than the new mode.
"""

from __future__ import annotations

from attrs import field, frozen
from twisted.internet.interfaces import IReactorTime

from fjmcp.oauth.fanout import RevocationListener
from fjmcp.policy.rules import ClientNames, Mode, PolicyConfig
from fjmcp.store.grants import change_consent_mode_txn
from fjmcp.store.runner import TxnRunner

__all__ = ["ConsentModeForbidden", "ConsentModes"]


class ConsentModeForbidden(Exception):
    """The operator allows this client read-only access only."""


@frozen
class ConsentModes:
    """Changes the consent mode of one user's grant to one client."""

    _store: TxnRunner
    _clock: IReactorTime
    _fanout: RevocationListener
    _policy: PolicyConfig
    _client_names: ClientNames = field(default=ClientNames(), kw_only=True)

    async def change(self, user: str, client_id: str, mode: Mode) -> bool:
        """
        Set ``mode``; False if ``user`` never approved ``client_id``.
        Raises `ConsentModeForbidden` for full access the operator forbids.
        """
        if mode is Mode.FULL and not self._policy.full_access_allowed(
            client_id, self._client_names.name_of(client_id)
        ):
            raise ConsentModeForbidden(client_id)
        grant, hashes = await self._store.run(
            change_consent_mode_txn,
            user,
            client_id,
            mode.value,
            self._clock.seconds(),
        )
        if grant is None:
            return False
        self._fanout.revoked(grant, hashes, f"consent mode changed to {mode.value}")
        return True
