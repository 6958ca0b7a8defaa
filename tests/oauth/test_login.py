# -*- test-case-name: tests.oauth.test_login -*-
"""
Tests for `fjmcp.oauth.login`: a login at Forgejo started for an approved
request and finished at the callback, over a fake Forgejo.
"""

from __future__ import annotations

from functools import partial
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from attrs import define, evolve, field
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from fjmcp.oauth.browser import BrowserCookies
from fjmcp.oauth.keys import KeyRing
from fjmcp.oauth.login import AuthRequest, ForgejoLogin
from fjmcp.oauth.outcomes import Page, Redirect
from fjmcp.oauth.settings import OAuthSettings
from fjmcp.oauth.upstream_tokens import UpstreamTokens
from fjmcp.store.clients import ClientRecord, insert_client_txn
from fjmcp.store.grants import consent_mode_txn, has_consent_txn
from fjmcp.upstream.errors import ForgejoUnavailable
from fjmcp.upstream.forgejo import ForgejoTokens, ForgejoUser
from tests.oauth.support import MemoryStore, settle

SETTINGS = OAuthSettings(
    "http://127.0.0.1:8080", "http://forgejo.test", forgejo_scopes=("read:user",)
)
REQUEST = AuthRequest(
    client_id="c1",
    redirect_uri="https://app.example/cb",
    state="client-state",
    code_challenge="x" * 43,
    scope="mcp",
    resource=SETTINGS.resource,
)
CLIENT = ClientRecord(
    client_id="c1",
    kind="dcr",
    auth_method="none",
    grant_types=("authorization_code",),
    redirect_uris=(REQUEST.redirect_uri,),
)


@define
class _Forgejo:
    """A Forgejo that logs everybody in as alice, or is down."""

    down: bool = False
    asked: list[tuple[str, str]] = field(factory=list)
    orgs_seen: dict[str, frozenset[str]] = field(factory=dict)

    def authorize_url(
        self,
        redirect_uri: str,
        state: str,
        code_challenge: str,
        scopes: tuple[str, ...] | list[str] = (),
    ) -> str:
        return (
            f"http://forgejo.test/authorize?redirect_uri={redirect_uri}"
            f"&state={state}&scope={'+'.join(scopes)}"
        )

    async def exchange_code(
        self, code: str, redirect_uri: str, code_verifier: str
    ) -> ForgejoTokens:
        self.asked.append((code, redirect_uri))
        if self.down:
            raise ForgejoUnavailable("down")
        return ForgejoTokens("forgejo-access", "bearer", 3600, "forgejo-refresh")

    async def get_user(self, access_token: str) -> ForgejoUser:
        return ForgejoUser(7, "alice")

    async def get_orgs(self, access_token: str) -> frozenset[str]:
        return frozenset({"ops"})


def _login(forgejo: _Forgejo) -> tuple[ForgejoLogin, MemoryStore, BrowserCookies]:
    clock = Clock()
    clock.advance(10_000)
    store = MemoryStore()
    store.sync.run(insert_client_txn, CLIENT)
    keys = KeyRing.generate()
    cookies = BrowserCookies(partial(keys.derive_each, "cookies"), False, clock)
    upstream = UpstreamTokens(store, keys, clock)
    login = ForgejoLogin(
        SETTINGS,
        store,
        clock,
        keys,
        forgejo,
        upstream,
        cookies,
        forgejo.orgs_seen.__setitem__,
    )
    return login, store, cookies


def _query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def _start(login: ForgejoLogin) -> tuple[str, dict[str, str]]:
    redirect = settle(login.start(REQUEST, consent_user=None))
    assert isinstance(redirect, Redirect)
    (flow,) = redirect.cookies
    return _query(redirect.location)["state"], {flow.name: flow.value}


def test_start_sends_the_browser_to_forgejo_with_a_flow_cookie() -> None:
    """The login goes to Forgejo with the broker's callback and scopes, and
    binds the state to this browser by a cookie."""
    login, _, cookies = _login(_Forgejo())
    redirect = settle(login.start(REQUEST, consent_user=None))
    assert isinstance(redirect, Redirect)
    query = _query(redirect.location)
    assert query["redirect_uri"] == SETTINGS.callback_url
    assert query["scope"] == "read:user"
    (flow,) = redirect.cookies
    assert flow.name.startswith("fjmcp-flow-") and flow.max_age == 600


def test_callback_issues_a_code_to_the_client_and_records_consent() -> None:
    """The callback of this browser's login redirects to the client with a code,
    the client's state and iss, sets the user cookie and records consent."""
    forgejo = _Forgejo()
    login, store, cookies = _login(forgejo)
    state, jar = _start(login)
    outcome = settle(login.callback({"state": state, "code": "fj-code"}, jar))
    assert isinstance(outcome, Redirect)
    assert outcome.location.startswith(REQUEST.redirect_uri + "?")
    query = _query(outcome.location)
    assert query["state"] == "client-state" and query["iss"] == SETTINGS.issuer
    assert len(query["code"]) > 20
    assert forgejo.asked == [("fj-code", SETTINGS.callback_url)]
    user_cookie = {c.name: c.value for c in outcome.cookies if c.max_age}
    assert cookies.logged_in_user(user_cookie) == "alice"
    assert store.sync.run(has_consent_txn, "alice", "c1")


def test_callback_reads_the_users_organizations_and_the_consent_mode() -> None:
    """The login tells the policy the user's organizations and stores the mode."""
    forgejo = _Forgejo()
    login, store, _ = _login(forgejo)
    redirect = settle(
        login.start(evolve(REQUEST, scope="mcp mcp:read-only"), consent_user=None)
    )
    assert isinstance(redirect, Redirect)
    (flow,) = redirect.cookies
    state = _query(redirect.location)["state"]
    settle(login.callback({"state": state, "code": "c"}, {flow.name: flow.value}))
    assert forgejo.orgs_seen == {"alice": frozenset({"ops"})}
    assert store.sync.run(consent_mode_txn, "alice", "c1") == "read-only"


def test_callback_in_another_browser_is_refused_and_not_used_up() -> None:
    """
    Without the flow cookie the login is refused before it is taken: whoever
    learns a state value cannot cancel the login of the browser that started
    it, which then finishes; a reload afterwards is a clear page.
    """
    login, _, _ = _login(_Forgejo())
    state, jar = _start(login)
    outcome = settle(login.callback({"state": state, "code": "c"}, {}))
    assert isinstance(outcome, Page) and outcome.status == 400
    assert "another browser" in outcome.fields["message"]
    forged = dict.fromkeys(jar, "x")
    wrong = settle(login.callback({"state": state, "code": "c"}, forged))
    assert isinstance(wrong, Page) and "another browser" in wrong.fields["message"]
    done = settle(login.callback({"state": state, "code": "c"}, jar))
    assert isinstance(done, Redirect) and "code" in _query(done.location)
    again = settle(login.callback({"state": state, "code": "c"}, jar))
    assert isinstance(again, Page) and again.status == 409
    assert "already finished" in again.fields["message"]


def test_callback_when_forgejo_is_down_tells_the_client() -> None:
    """Forgejo unavailable at the exchange is temporarily_unavailable to the client."""
    login, _, _ = _login(_Forgejo(down=True))
    state, jar = _start(login)
    outcome = settle(login.callback({"state": state, "code": "c"}, jar))
    assert isinstance(outcome, Redirect)
    assert _query(outcome.location)["error"] == "temporarily_unavailable"


def test_callback_without_state_is_an_error_page() -> None:
    """A callback without state is an error page, nothing consumed."""
    login, _, _ = _login(_Forgejo())
    outcome = settle(login.callback({"code": "c"}, {}))
    assert isinstance(outcome, Page) and outcome.status == 400


RO_SCOPES = ("read:organization", "read:repository", "read:user")


def _fired(d: Deferred[Any]) -> Any:
    """What an already-fired Deferred holds (a result or a Failure)."""
    out: list[Any] = []
    d.addBoth(out.append)
    return out[0]


def _two_apps() -> tuple[ForgejoLogin, _Forgejo, _Forgejo, UpstreamTokens]:
    settings = evolve(SETTINGS, forgejo_scopes=(), forgejo_scopes_read_only=RO_SCOPES)
    full, read_only = _Forgejo(), _Forgejo()
    clock = Clock()
    clock.advance(10_000)
    store = MemoryStore()
    store.sync.run(insert_client_txn, CLIENT)
    keys = KeyRing.generate()
    upstream = UpstreamTokens(store, keys, clock, settings.grants)
    login = ForgejoLogin(
        settings,
        store,
        clock,
        keys,
        full,
        upstream,
        BrowserCookies(partial(keys.derive_each, "cookies"), False, clock),
        full.orgs_seen.__setitem__,
        read_only_forgejo=read_only,
    )
    return login, full, read_only, upstream


def test_a_read_only_consent_logs_in_for_the_read_only_grant() -> None:
    """
    With read-only scopes of their own, a read-only consent goes to Forgejo
    through the read-only application with those scopes, the code is
    exchanged there, and the tokens are stored as the read-only grant's.
    """
    login, full, read_only, upstream = _two_apps()
    request = evolve(REQUEST, scope="mcp mcp:read-only")
    redirect = settle(login.start(request, consent_user=None))
    assert isinstance(redirect, Redirect)
    state = _query(redirect.location)["state"]
    assert _query(redirect.location)["scope"] == " ".join(RO_SCOPES)
    (flow,) = redirect.cookies
    done = settle(
        login.callback({"state": state, "code": "c"}, {flow.name: flow.value})
    )
    assert isinstance(done, Redirect) and "code=" in done.location
    assert read_only.asked and not full.asked
    grant = upstream.grant("alice", "read-only")
    assert grant.scopes == RO_SCOPES
    assert _fired(upstream.current(grant)).access_token == "forgejo-access"
    failure = _fired(upstream.current(upstream.grant("alice")))
    assert isinstance(failure, Failure)


def test_a_full_consent_logs_in_for_the_full_grant() -> None:
    """Full access goes through the full application with forgejo_scopes."""
    login, full, read_only, upstream = _two_apps()
    redirect = settle(login.start(REQUEST, consent_user=None))
    assert isinstance(redirect, Redirect)
    assert _query(redirect.location).get("scope", "") == ""
    (flow,) = redirect.cookies
    state = _query(redirect.location)["state"]
    settle(login.callback({"state": state, "code": "c"}, {flow.name: flow.value}))
    assert full.asked and not read_only.asked
    assert _fired(upstream.current(upstream.grant("alice"))).generation == 1


def test_read_only_scopes_without_their_application_are_refused() -> None:
    """No login asks for one grant's scopes through the other grant's application."""
    settings = evolve(SETTINGS, forgejo_scopes_read_only=RO_SCOPES)
    clock, store, keys = Clock(), MemoryStore(), KeyRing.generate()
    with pytest.raises(ValueError, match="no OAuth2 application"):
        ForgejoLogin(
            settings,
            store,
            clock,
            keys,
            _Forgejo(),
            UpstreamTokens(store, keys, clock, settings.grants),
            BrowserCookies(partial(keys.derive_each, "cookies"), False, clock),
            lambda user, orgs: None,
        )
