# -*- test-case-name: tests.web.test_account -*-
"""
The ``/account`` page over HTTP in memory, with the stand-in Forgejo: the
login through Forgejo, the list of granted clients, changing a grant's
consent mode and revoking one or all (tokens refused at once, sessions
ended), CSRF, logout, the session's expiry, and the page headers.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fjmcp.interfaces import Identity
from fjmcp.oauth import registrar
from fjmcp.oauth.account import ACCOUNT_SESSION_TTL
from fjmcp.policy.rules import parse_policy
from fjmcp.web.account import AccountRoutes
from fjmcp.web.root import build_root
from tests.standin.support import BOB
from tests.web.oauth_harness import Broker


def _broker(**config: Any) -> Broker:
    broker = Broker(**config)
    account = AccountRoutes(broker.server.account, broker.server.cookies.secure)
    broker.resource = build_root([broker.routes.app, account.app])
    return broker


@pytest.fixture
def broker() -> Broker:
    return _broker()


def _location(response: Any) -> str:
    value: str = response.headers.getRawHeaders("location")[0]
    return value


def _log_in(broker: Broker, user: Any = None) -> Any:
    start = broker.get("/account/login")
    assert start.code == 302
    callback = (
        broker.forgejo_login(_location(start))
        if user is None
        else broker.forgejo_login(_location(start), user)
    )
    done = broker.get(callback)
    assert done.code == 302 and _location(done) == "/account", broker.text_of(done)
    return broker.get("/account")


def _csrf(broker: Broker, page: Any) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', broker.text_of(page))
    assert found, broker.text_of(page)
    return found.group(1)


def test_login_view_without_a_session_and_page_headers(broker: Broker) -> None:
    """Without a session the page offers the Forgejo login; it cannot be framed."""
    page = broker.get("/account")
    assert page.code == 200
    assert "Log in with Forgejo" in broker.text_of(page)
    assert page.headers.getRawHeaders("x-frame-options") == ["DENY"]
    csp = page.headers.getRawHeaders("content-security-policy")[0]
    assert "frame-ancestors 'none'" in csp
    assert page.headers.getRawHeaders("cache-control") == ["no-store"]


def test_lists_granted_clients_and_revokes_one(broker: Broker) -> None:
    """
    After logging in through Forgejo the user sees each client they granted;
    Revoke ends that client's tokens and sessions at once and forgets the
    consent, leaving the other client alone.
    """
    one = broker.register(client_name="Claude")
    two = broker.register(client_name="Inspector")
    first = broker.tokens_for(one)
    second = broker.tokens_for(two)
    broker.sessions.live[("alice", one["client_id"])] = 2
    page = _log_in(broker)
    text = broker.text_of(page)
    assert "Claude" in text and "Inspector" in text and "alice" in text
    assert '<dd class="sessions">2</dd>' in text
    csrf = _csrf(broker, page)
    revoked = broker.post_form(
        "/account/revoke", {"csrf": csrf, "client_id": one["client_id"]}
    )
    assert revoked.code == 303 and _location(revoked) == "/account"
    assert not broker.bearer_ok(first["access_token"])
    assert broker.bearer_ok(second["access_token"])
    assert ("alice", one["client_id"], "revoked by the user") in broker.sessions.ended
    refresh = broker.token(
        {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}, one
    )
    assert broker.json_of(refresh)["error"] == "invalid_grant"
    after = broker.text_of(broker.get("/account"))
    assert "Inspector" in after and "Claude" not in after


def _consent_of(broker: Broker, access_token: str) -> str:
    results: list[Any] = []
    broker.bearer.authenticate(b"Bearer " + access_token.encode()).addBoth(
        results.append
    )
    (identity,) = results
    assert isinstance(identity, Identity), identity
    return identity.consent


def test_shows_and_changes_a_grants_consent_mode(broker: Broker) -> None:
    """
    Each grant shows its consent mode; switching it stores the new mode,
    ends that grant's tokens and live sessions at once (no child keeps the
    wider view) and leaves other grants alone; the application's next
    authorization is carried out under the new mode.
    """
    one = broker.register(client_name="Claude")
    two = broker.register(client_name="Inspector")
    first = broker.tokens_for(one)
    second = broker.tokens_for(two)
    assert _consent_of(broker, first["access_token"]) == "full"
    broker.sessions.live[("alice", one["client_id"])] = 1
    page = _log_in(broker)
    text = broker.text_of(page)
    assert text.count('<dd class="mode">Full access</dd>') == 2
    assert text.count('value="full" checked') == 2  # the stored mode, preselected
    assert 'value="read-only" checked' not in text
    changed = broker.post_form(
        "/account/mode",
        {
            "csrf": _csrf(broker, page),
            "client_id": one["client_id"],
            "mode": "read-only",
        },
    )
    assert changed.code == 303 and _location(changed) == "/account"
    assert not broker.bearer_ok(first["access_token"])
    assert broker.bearer_ok(second["access_token"])
    ((user, client_id, reason),) = broker.sessions.ended
    assert (user, client_id) == ("alice", one["client_id"])
    assert "read-only" in reason
    after = broker.text_of(broker.get("/account"))
    assert '<dd class="mode">Read-only</dd>' in after
    assert after.count('value="read-only" checked') == 1
    assert after.count('value="full" checked') == 1
    again = broker.tokens_for(one)
    assert _consent_of(broker, again["access_token"]) == "read-only"
    back = broker.post_form(
        "/account/mode",
        {"csrf": _csrf(broker, page), "client_id": one["client_id"], "mode": "full"},
    )
    assert back.code == 303 and not broker.bearer_ok(again["access_token"])
    assert _consent_of(broker, broker.tokens_for(one)["access_token"]) == "full"


def test_full_access_the_operator_forbids_is_not_offered_nor_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """
    For a client the operator holds to read-only, the page offers no switch
    and a forged switch is refused (403) with the grant untouched. (A
    registered client's self-declared name is no known-client name: the
    operator names it by its id.)
    """
    monkeypatch.setattr(registrar, "new_client_id", lambda: "fjc_held")
    broker = _broker(
        policy=parse_policy(
            {"default_mode": "read-only", "full_access_forbidden": ["fjc_held"]}
        )
    )
    client = broker.register(client_name="Claude")
    tokens = broker.tokens_for(client)
    page = _log_in(broker)
    text = broker.text_of(page)
    assert '<dd class="mode">Read-only</dd>' in text
    assert 'value="read-only" checked' in text
    assert 'value="full" disabled' in text and "read-only access only" in text
    refused = broker.post_form(
        "/account/mode",
        {"csrf": _csrf(broker, page), "client_id": client["client_id"], "mode": "full"},
    )
    assert refused.code == 403 and "read-only" in broker.text_of(refused)
    assert broker.bearer_ok(tokens["access_token"])
    assert broker.sessions.ended == []


def test_a_mode_change_needs_a_known_mode_and_a_granted_client(
    broker: Broker,
) -> None:
    """
    An unknown mode is a 400 page; a client never granted, or the mode it
    has already, changes nothing.
    """
    client = broker.register()
    tokens = broker.tokens_for(client)
    page = _log_in(broker)
    csrf = _csrf(broker, page)
    odd = broker.post_form(
        "/account/mode",
        {"csrf": csrf, "client_id": client["client_id"], "mode": "admin"},
    )
    assert odd.code == 400
    unknown = broker.post_form(
        "/account/mode", {"csrf": csrf, "client_id": "nope", "mode": "read-only"}
    )
    assert unknown.code == 303
    form = {"csrf": csrf, "client_id": client["client_id"], "mode": "full"}
    same = broker.post_form("/account/mode", form)
    assert same.code == 303  # the stored mode again: nothing ends
    assert broker.bearer_ok(tokens["access_token"])
    assert broker.sessions.ended == []
    assert broker.sessions.ended == []


def test_revoke_all(broker: Broker) -> None:
    """Revoke all ends every grant of the user, and only theirs."""
    client = broker.register()
    mine = broker.tokens_for(client)
    code, verifier, _ = broker.login(client, BOB, prompt="consent")
    bobs = broker.json_of(broker.exchange(client, code, verifier))
    broker.cookies.clear()
    page = _log_in(broker)
    done = broker.post_form("/account/revoke-all", {"csrf": _csrf(broker, page)})
    assert done.code == 303
    assert not broker.bearer_ok(mine["access_token"])
    assert broker.bearer_ok(bobs["access_token"])
    assert 'id="none"' in broker.text_of(broker.get("/account"))


@pytest.mark.parametrize(
    "path", ["/account/revoke", "/account/revoke-all", "/account/mode"]
)
def test_state_changes_need_the_csrf_token(broker: Broker, path: str) -> None:
    """A form without this session's CSRF token changes nothing (403)."""
    client = broker.register()
    tokens = broker.tokens_for(client)
    _log_in(broker)
    for csrf in ("", "forged"):
        answer = broker.post_form(
            path,
            {"csrf": csrf, "client_id": client["client_id"], "mode": "read-only"},
        )
        assert answer.code == 403
    assert broker.bearer_ok(tokens["access_token"])
    assert broker.sessions.ended == []


def test_logout_and_expiry_end_the_session(broker: Broker) -> None:
    """Logout deletes the session cookie; an old session cookie expires."""
    page = _log_in(broker)
    out = broker.post_form("/account/logout", {"csrf": _csrf(broker, page)})
    assert out.code == 303
    assert "Log in with Forgejo" in broker.text_of(broker.get("/account"))
    _log_in(broker)
    broker.clock.advance(ACCOUNT_SESSION_TTL + 1)
    assert "Log in with Forgejo" in broker.text_of(broker.get("/account"))


def test_session_cookie_attributes(broker: Broker) -> None:
    """The session cookie is HttpOnly, SameSite and expires."""
    start = broker.get("/account/login")
    callback = broker.forgejo_login(_location(start))
    done = broker.get(callback)
    cookies = [c for c in done.headers.getRawHeaders("set-cookie") if "account" in c]
    assert cookies and "HttpOnly" in cookies[0] and "SameSite=lax" in cookies[0]
    assert f"Max-Age={int(ACCOUNT_SESSION_TTL)}" in cookies[0]


def test_account_login_from_another_browser_is_refused(broker: Broker) -> None:
    """
    The account login is bound to the browser that started it; a stranger's
    callback is refused without spending it, and a reload goes to the page.
    """
    start = broker.get("/account/login")
    callback = broker.forgejo_login(_location(start))
    mine = dict(broker.cookies)
    broker.cookies = {}
    stranger = broker.get(callback)
    assert stranger.code == 400 and "another browser" in broker.text_of(stranger)
    broker.cookies = mine
    assert _location(broker.get(callback)) == "/account"
    assert _location(broker.get(callback)) == "/account"


def test_revoking_an_unknown_client_changes_nothing(broker: Broker) -> None:
    """A client id the user never granted is answered like any other."""
    page = _log_in(broker)
    answer = broker.post_form(
        "/account/revoke", {"csrf": _csrf(broker, page), "client_id": "nope"}
    )
    assert answer.code == 303


_SHARED: list[Broker] = []


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(
        ["/account/revoke", "/account/revoke-all", "/account/mode", "/account/logout"]
    ),
    st.dictionaries(
        st.sampled_from(["csrf", "client_id", "mode"]) | st.text(max_size=5),
        st.text(max_size=40),
        max_size=3,
    ),
    st.booleans(),
)
def test_account_forms_never_500(
    path: str, form: dict[str, str], logged_in: bool
) -> None:
    """Any form on any account POST, logged in or not: a redirect or a page."""
    if not _SHARED:
        _SHARED.append(_broker())
    broker = _SHARED[0]
    broker.cookies.clear()
    if logged_in:
        _log_in(broker)
    response = broker.post_form(path, form)
    assert response.code in (303, 400, 403)
