# -*- test-case-name: tests.policy.test_book -*-
"""
The broker's policy book: the operator's rules and what the broker knows of
each user's Forgejo organizations, turned into a `ToolGate` when an owner
starts (its grant's consent mode comes with its `Identity`).

Organizations are read from Forgejo at login and with each user check and
kept here in memory, so starting a session never waits on Forgejo or the
database.
"""

from __future__ import annotations

from collections.abc import Iterable

from attrs import define, field

from fjmcp.interfaces import Identity
from fjmcp.policy.effective import EffectivePolicy, Subject, effective_policy
from fjmcp.policy.gate import ToolGate
from fjmcp.policy.rules import ClientNames, Mode, PolicyConfig

__all__ = ["PolicyBook", "consent_mode"]


def consent_mode(value: str) -> Mode:
    """The mode an `Identity` carries; anything unknown is read-only (narrowest)."""
    try:
        return Mode(value)
    except ValueError:
        return Mode.READ_ONLY


@define
class PolicyBook:
    """The rules, each user's organizations, and the gate of each new owner."""

    config: PolicyConfig
    client_names: ClientNames = ClientNames()
    """The known-client names rules may name clients by."""
    _orgs: dict[str, frozenset[str]] = field(factory=dict)

    def set_orgs(self, user: str, orgs: Iterable[str]) -> None:
        """Remember ``user``'s organizations (read from Forgejo)."""
        self._orgs[user] = frozenset(orgs)

    def orgs(self, user: str) -> frozenset[str]:
        """``user``'s organizations as last read (none if never read)."""
        return self._orgs.get(user, frozenset())

    def policy_for(self, identity: Identity) -> EffectivePolicy:
        """The effective policy of a grant, computed once per owner."""
        subject = Subject(
            user=identity.user,
            client_id=identity.client_id,
            mode=consent_mode(identity.consent),
            orgs=self.orgs(identity.user),
            known_name=self.client_names.name_of(identity.client_id),
        )
        return effective_policy(self.config, subject)

    def gate_for(self, identity: Identity) -> ToolGate:
        """A fresh gate for an owner bound to ``identity``."""
        return ToolGate(self.policy_for(identity))
