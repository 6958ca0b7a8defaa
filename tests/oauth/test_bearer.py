# -*- test-case-name: tests.oauth.test_bearer -*-
"""
Tests for `fjmcp.oauth.bearer` and `fjmcp.oauth.challenge`: the header
parser, the caches (one store read per token), every refusal, and
invalidation on revocation.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from fjmcp.interfaces import Identity, InvalidToken
from fjmcp.oauth.bearer import BearerAuthenticator, parse_bearer
from fjmcp.oauth.challenge import challenge_header
from fjmcp.oauth.tokens import hash_secret, new_secret
from fjmcp.store import grants
from tests.oauth.support import MCP_URL, HeldStore, MemoryStore, make_config


def _outcome(d: Deferred[Any]) -> Any:
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "not fired"
    return results[0]


def _mint(
    store: MemoryStore,
    *,
    user: str = "alice",
    client_id: str = "admin-cli",
    audience: str = MCP_URL,
    scope: str = "mcp",
    expires_at: float = 3600.0,
) -> str:
    token = new_secret()
    uid = store.sync.run(grants.upsert_user_txn, user, None, 0.0)
    store.sync.run(
        grants.issue_admin_tokens_txn,
        uid,
        client_id,
        (hash_secret(token),),
        audience=audience,
        scope=scope,
        now=0.0,
        expires_at=expires_at,
        family_ids=(new_secret(),),
    )
    return token


def _auth(store: MemoryStore, clock: Clock | None = None) -> BearerAuthenticator:
    return BearerAuthenticator(store, clock or Clock(), MCP_URL)


def _refused(d: Deferred[Any]) -> InvalidToken:
    result = _outcome(d)
    assert isinstance(result, Failure), result
    assert isinstance(result.value, InvalidToken)
    return result.value


@pytest.mark.parametrize(
    ("header", "token_sent"),
    [
        (None, False),
        (b"", False),
        (b"   ", False),
        (b"Basic dXNlcjpwYXNz", False),
        (b"Bearer", True),
        (b"Bearer ", True),
        (b"Bearer a b", True),
        (b"Bearer \xff\xfe", True),
        (b"Bearer " + b"a" * 600, True),
        (b"Bearer to,ken", True),
    ],
)
def test_parse_refusals(header: bytes | None, token_sent: bool) -> None:
    """Missing or foreign credentials are 'not sent'; malformed ones are 'sent'."""
    with pytest.raises(InvalidToken) as info:
        parse_bearer(header)
    assert info.value.token_sent is token_sent


@pytest.mark.parametrize("scheme", [b"Bearer", b"bearer", b"BEARER", b"bEaReR"])
def test_parse_scheme_is_case_insensitive(scheme: bytes) -> None:
    """The scheme matches in any case; the token is returned as is."""
    assert parse_bearer(scheme + b" abc-DEF_123.~+/==") == "abc-DEF_123.~+/=="


@given(st.binary(max_size=300))
def test_parse_any_bytes(header: bytes) -> None:
    """Any header either parses to a token or raises InvalidToken."""
    try:
        token = parse_bearer(header)
    except InvalidToken:
        return
    assert token and " " not in token


def test_valid_token_then_cache_hit_without_store() -> None:
    """A valid token resolves to its identity; the second check is a fired hit."""
    store = MemoryStore()
    token = _mint(store)
    auth = _auth(store)
    identity = _outcome(auth.authenticate(b"Bearer " + token.encode()))
    assert isinstance(identity, Identity)
    assert (identity.user, identity.client_id, identity.scopes) == (
        "alice",
        "admin-cli",
        ("mcp",),
    )
    assert identity.token_id == hash_secret(token)[:12]
    assert token not in repr(identity)
    runs = store.runs
    for _ in range(5):
        d = auth.authenticate(b"bearer " + token.encode())
        assert d.called
        assert _outcome(d) == identity
    assert store.runs == runs
    assert auth.store_reads == 1


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"audience": "http://other.example/mcp"}, "another resource"),
        ({"scope": "other"}, "mcp scope"),
        ({"expires_at": 0.0}, "expired"),
    ],
)
def test_refusals_are_negatively_cached(kwargs: dict[str, Any], reason: str) -> None:
    """Wrong audience, missing scope and expiry are refused; the store is read once."""
    store = MemoryStore()
    token = _mint(store, **kwargs)
    auth = _auth(store)
    refusal = _refused(auth.authenticate(b"Bearer " + token.encode()))
    assert reason in refusal.reason and refusal.token_sent
    runs = store.runs
    assert _refused(auth.authenticate(b"Bearer " + token.encode())).token_sent
    assert store.runs == runs


def test_unknown_token_refused_once_from_store() -> None:
    """An unknown token is refused; asking again does not read the store."""
    store = MemoryStore()
    auth = _auth(store)
    _refused(auth.authenticate(b"Bearer nope"))
    _refused(auth.authenticate(b"Bearer nope"))
    assert auth.store_reads == 1


def test_expiry_after_caching() -> None:
    """A cached token stops working at its expiry, by the injected clock."""
    store = MemoryStore()
    clock = Clock()
    token = _mint(store, expires_at=100.0)
    auth = _auth(store, clock)
    assert isinstance(
        _outcome(auth.authenticate(b"Bearer " + token.encode())), Identity
    )
    clock.advance(100.0)
    assert "expired" in _refused(auth.authenticate(b"Bearer " + token.encode())).reason


def test_concurrent_misses_share_one_read() -> None:
    """Many checks of one uncached token wait on a single store read."""
    store = HeldStore()
    token = _mint(store)
    auth = _auth(store)
    waits = [auth.authenticate(b"Bearer " + token.encode()) for _ in range(10)]
    assert not any(d.called for d in waits)
    assert len(store.held) == 1
    store.release()
    assert all(isinstance(_outcome(d), Identity) for d in waits)
    assert auth.store_reads == 1


def test_revocation_racing_a_read_is_not_cached() -> None:
    """A forget during a store read makes the check read again (and refuse)."""
    store = HeldStore()
    token = _mint(store)
    auth = _auth(store)
    d = auth.authenticate(b"Bearer " + token.encode())
    # The token is revoked while the first read is in flight.
    store.sync.conn.execute("UPDATE tokens SET revoked_at = 1")
    auth.forget_token(hash_secret(token))
    store.release()  # first read (sees revoked now, but epoch moved) ...
    store.release()  # ... and the re-read
    assert "revoked" in _refused(d).reason


@pytest.mark.parametrize("how", ["token", "user_client", "user"])
def test_forget_takes_effect_at_once(how: str) -> None:
    """After revocation in the store, each forget_* refuses the cached token."""
    store = MemoryStore()
    token = _mint(store)
    other = _mint(store, user="bob")
    auth = _auth(store)
    for t in (token, other):
        assert isinstance(
            _outcome(auth.authenticate(b"Bearer " + t.encode())), Identity
        )
    store.sync.conn.execute(
        "UPDATE tokens SET revoked_at = 1 WHERE token_hash = ?", (hash_secret(token),)
    )
    if how == "token":
        auth.forget_token(hash_secret(token))
    elif how == "user_client":
        assert auth.forget_user_client("alice", "admin-cli") == 1
    else:
        assert auth.forget_user("alice") == 1
    _refused(auth.authenticate(b"Bearer " + token.encode()))
    # bob is untouched and still served from memory.
    d = auth.authenticate(b"Bearer " + other.encode())
    assert d.called and isinstance(_outcome(d), Identity)


def test_negative_cache_is_bounded() -> None:
    """The negative cache keeps at most its bound, dropping the oldest."""
    store = MemoryStore()
    auth = BearerAuthenticator(store, Clock(), MCP_URL, max_negative=3)
    for i in range(5):
        _refused(auth.authenticate(b"Bearer t" + str(i).encode()))
    assert auth.store_reads == 5
    _refused(auth.authenticate(b"Bearer t0"))  # evicted: read again
    assert auth.store_reads == 6
    _refused(auth.authenticate(b"Bearer t4"))  # still cached
    assert auth.store_reads == 6


def test_positive_cache_is_bounded() -> None:
    """The positive cache evicts when full; evicted tokens are read again."""
    store = MemoryStore()
    auth = BearerAuthenticator(store, Clock(), MCP_URL, max_positive=2)
    tokens = [_mint(store) for _ in range(3)]
    for t in tokens:
        assert isinstance(
            _outcome(auth.authenticate(b"Bearer " + t.encode())), Identity
        )
    assert auth.cached == 2


def test_store_failure_is_not_cached() -> None:
    """A failing store read fails the check with its error and is retried later."""
    store = MemoryStore()
    token = _mint(store)
    auth = _auth(store)
    store.sync.conn.execute("ALTER TABLE tokens RENAME TO tokens_gone")
    result = _outcome(auth.authenticate(b"Bearer " + token.encode()))
    assert isinstance(result, Failure) and not isinstance(result.value, InvalidToken)
    store.sync.conn.execute("ALTER TABLE tokens_gone RENAME TO tokens")
    assert isinstance(
        _outcome(auth.authenticate(b"Bearer " + token.encode())), Identity
    )


def test_challenge_header() -> None:
    """The challenge names the metadata URL from public_url and the mcp scope."""
    config = make_config(public_url="https://mcp.example.org")
    plain = challenge_header(config, token_sent=False)
    assert plain == (
        b'Bearer resource_metadata="https://mcp.example.org/.well-known/'
        b'oauth-protected-resource/mcp", scope="mcp"'
    )
    sent = challenge_header(config, token_sent=True)
    assert sent == plain + b', error="invalid_token"'
    assert b"offline_access" not in sent


def test_a_revocation_made_elsewhere_is_seen_within_the_trust_window() -> None:
    """
    A token revoked in the store by another node (this cache was not told)
    is still answered from the cache until ``trust_for`` has passed, then
    the store is read again and the token refused.
    """
    store = MemoryStore()
    clock = Clock()
    token = _mint(store)
    auth = BearerAuthenticator(store, clock, MCP_URL, trust_for=5.0)
    header = b"Bearer " + token.encode()
    assert isinstance(_outcome(auth.authenticate(header)), Identity)
    store.sync.execute("UPDATE tokens SET revoked_at = 1")
    clock.advance(4.9)
    assert isinstance(_outcome(auth.authenticate(header)), Identity)
    clock.advance(0.2)
    assert "revoked" in str(_refused(auth.authenticate(header)))
    assert store.runs == 2


def test_flush_forgets_every_cached_answer() -> None:
    """After a flush (notifications were lost) every token is read again."""
    store = MemoryStore()
    token = _mint(store)
    auth = _auth(store)
    header = b"Bearer " + token.encode()
    _outcome(auth.authenticate(header))
    _refused(auth.authenticate(b"Bearer unknown"))
    auth.flush()
    assert auth.cached == 0
    _outcome(auth.authenticate(header))
    _refused(auth.authenticate(b"Bearer unknown"))
    assert auth.store_reads == 4


def test_a_hit_hashes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once a token was found valid, later checks of it compute no digest."""
    import fjmcp.oauth.bearer as bearer

    store = MemoryStore()
    token = _mint(store)
    auth = _auth(store)
    hashed: list[str] = []

    def counting(secret: str) -> str:
        hashed.append(secret)
        return hash_secret(secret)

    monkeypatch.setattr(bearer, "hash_secret", counting)
    for _ in range(5):
        assert isinstance(
            _outcome(auth.authenticate(b"Bearer " + token.encode())), Identity
        )
    assert len(hashed) <= 2


@pytest.mark.parametrize("how", ["token", "user_client", "user"])
def test_remembered_digest_still_refused_after_forget(how: str) -> None:
    """A token checked often (its digest remembered) is refused once forgotten."""
    store = MemoryStore()
    token = _mint(store)
    auth = _auth(store)
    for _ in range(3):
        assert isinstance(
            _outcome(auth.authenticate(b"Bearer " + token.encode())), Identity
        )
    if how == "token":
        auth.forget_token(hash_secret(token))
    elif how == "user_client":
        auth.forget_user_client("alice", "admin-cli")
    else:
        auth.forget_user("alice")
    assert auth.cached_identity(b"Bearer " + token.encode()) is None
    _refused(auth.authenticate(b"Bearer " + token.encode()))


def test_cached_identity_only_for_a_header_seen_valid_and_still_trusted() -> None:
    """Nothing before a check, the identity after one, nothing once expired."""
    store = MemoryStore()
    token = _mint(store)
    clock = Clock()
    clock.advance(1000.0)
    auth = BearerAuthenticator(store, clock, MCP_URL, trust_for=60.0)
    header = b"Bearer " + token.encode()
    assert auth.cached_identity(header) is None
    assert auth.cached_identity(None) is None
    for _ in range(2):
        identity = _outcome(auth.authenticate(header))
    assert auth.cached_identity(header) == identity
    assert auth.cached_identity(b"bearer " + token.encode()) is None  # not seen yet
    clock.advance(61.0)
    assert auth.cached_identity(header) is None


def test_remembered_digests_are_bounded() -> None:
    """The token-to-digest memory keeps no more than the positive cache's bound."""
    store = MemoryStore()
    auth = BearerAuthenticator(store, Clock(), MCP_URL, max_positive=2)
    tokens = [_mint(store) for _ in range(5)]
    for t in tokens:
        for _ in range(2):
            assert isinstance(
                _outcome(auth.authenticate(b"Bearer " + t.encode())), Identity
            )
    assert len(auth._digests) <= 2


def test_remembered_tokens_never_shown() -> None:
    """The token-to-digest memory is not part of the authenticator's repr."""
    store = MemoryStore()
    token = _mint(store)
    auth = _auth(store)
    for _ in range(2):
        _outcome(auth.authenticate(b"Bearer " + token.encode()))
    assert auth._digests and token not in repr(auth)


def test_a_read_only_token_carries_its_consent_mode() -> None:
    """A token whose scope has mcp:read-only resolves to a read-only identity."""
    store = MemoryStore()
    full = _mint(store)
    read_only = _mint(store, scope="mcp mcp:read-only")
    auth = _auth(store)
    assert _outcome(auth.authenticate(b"Bearer " + full.encode())).consent == "full"
    ro = _outcome(auth.authenticate(b"Bearer " + read_only.encode()))
    assert ro.consent == "read-only"
