# -*- test-case-name: tests.oauth.test_fanout -*-
"""Tests for `fjmcp.oauth.fanout`: revocations reach the cache and the sessions."""

from __future__ import annotations

from typing import cast

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher

from fjmcp.oauth.fanout import RevocationFanout
from fjmcp.store.grants import Grant

GRANT = Grant(
    user_id=1,
    user="alice",
    client_id="c1",
    scope="mcp",
    audience="http://127.0.0.1:8080/mcp",
    family_id="f1",
)


class _Bearer:
    def __init__(self) -> None:
        self.forgotten: list[tuple[str, ...]] = []

    def forget_tokens(self, token_hashes: tuple[str, ...] | list[str]) -> None:
        self.forgotten.append(tuple(token_hashes))


class _Sessions:
    def __init__(self, broken: bool = False) -> None:
        self.ended: list[tuple[str, str, str]] = []
        self.broken = broken

    def end_user_client(self, user: str, client_id: str, reason: str) -> Deferred[None]:
        self.ended.append((user, client_id, reason))
        if self.broken:
            return fail(RuntimeError("sessions are broken"))
        return succeed(None)


def test_revoked_tokens_are_forgotten_and_sessions_ended() -> None:
    """The cache forgets the hashes and the grant's sessions end with the reason."""
    bearer, sessions = _Bearer(), _Sessions()
    RevocationFanout(bearer, sessions).revoked(GRANT, ("h1", "h2"), "reused")
    assert bearer.forgotten == [("h1", "h2")]
    assert sessions.ended == [("alice", "c1", "reused")]


def test_no_grant_only_forgets() -> None:
    """Without a grant (nothing matched), only the cache hears of the hashes."""
    bearer, sessions = _Bearer(), _Sessions()
    RevocationFanout(bearer, sessions).revoked(None, ("h1",), "x")
    assert bearer.forgotten == [("h1",)]
    assert sessions.ended == []


def test_no_hashes_leave_the_cache_alone() -> None:
    """A grant with no live token still ends its sessions; the cache is untouched."""
    bearer, sessions = _Bearer(), _Sessions()
    RevocationFanout(bearer, sessions).revoked(GRANT, (), "x")
    assert bearer.forgotten == []
    assert sessions.ended == [("alice", "c1", "x")]


def test_a_failure_to_end_sessions_is_logged_not_raised() -> None:
    """A session layer that fails is logged; the revocation itself stands."""
    events: list[LogEvent] = []
    observer = cast(ILogObserver, events.append)
    globalLogPublisher.addObserver(observer)
    try:
        RevocationFanout(_Bearer(), _Sessions(broken=True)).revoked(GRANT, (), "x")
    finally:
        globalLogPublisher.removeObserver(observer)
    failures = [e for e in events if e.get("log_format") == "ending sessions failed"]
    assert len(failures) == 1
    failures[0]["log_failure"].trap(RuntimeError)
