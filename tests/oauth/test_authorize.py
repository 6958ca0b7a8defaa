# -*- test-case-name: tests.oauth.test_authorize -*-
"""
Tests for `fjmcp.oauth.authorize`: when the consent page shows, when it is
skipped, and what is handed to the login (a recording `LoginStarter`).
"""

from __future__ import annotations

import re
from typing import Any

from attrs import define, field
from twisted.internet.task import Clock

from fjmcp.oauth.authorize import AuthorizeEndpoint
from fjmcp.oauth.browser import BrowserCookies
from fjmcp.oauth.clients import ClientDirectory
from fjmcp.oauth.login import AuthRequest
from fjmcp.oauth.outcomes import Page, Redirect
from fjmcp.oauth.settings import OAuthSettings
from fjmcp.store.clients import ClientRecord, insert_client_txn
from fjmcp.store.grants import record_consent_txn, upsert_user_txn
from tests.oauth.support import MemoryStore, settle

SETTINGS = OAuthSettings("https://mcp.example.org", "https://git.example.org")
WEB = "https://app.example/cb"
NATIVE = "http://127.0.0.1:4711/cb"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


@define
class _Login:
    """Records the logins the endpoint starts."""

    started: list[tuple[AuthRequest, str | None]] = field(factory=list)

    async def start(
        self,
        request: AuthRequest,
        *,
        consent_user: str | None,
        seed: str | None = None,
    ) -> Redirect:
        self.started.append((request, consent_user))
        return Redirect("https://git.example.org/login")


@define
class _Setup:
    endpoint: AuthorizeEndpoint
    login: _Login
    cookies: BrowserCookies
    store: MemoryStore


def _setup() -> _Setup:
    clock = Clock()
    clock.advance(50_000)
    store = MemoryStore()
    store.sync.run(
        insert_client_txn,
        ClientRecord(
            client_id="c1",
            kind="dcr",
            auth_method="none",
            grant_types=("authorization_code",),
            redirect_uris=(WEB, NATIVE),
            client_name="App",
        ),
    )
    cookies = BrowserCookies(lambda: (b"k" * 32,), True, clock)
    login = _Login()
    endpoint = AuthorizeEndpoint(
        SETTINGS, store, clock, ClientDirectory(store, clock), cookies, login
    )
    return _Setup(endpoint, login, cookies, store)


def _params(**overrides: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": "c1",
        "redirect_uri": WEB,
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
        "state": "s1",
        "resource": "https://MCP.example.org:443/mcp",
    }
    params.update(overrides)
    return params


def _approved_by_alice(setup: _Setup) -> dict[str, str]:
    user_id = setup.store.sync.run(upsert_user_txn, "alice", 7, 1.0)
    setup.store.sync.run(record_consent_txn, user_id, "c1", 1.0)
    cookie = setup.cookies.user_cookie("alice")
    return {cookie.name: cookie.value}


def test_a_new_browser_sees_the_consent_page() -> None:
    """Without a known user the consent page shows, with a CSRF cookie."""
    setup = _setup()
    page = settle(setup.endpoint.authorize(_params(), {}))
    assert isinstance(page, Page) and page.template == "consent.html"
    assert page.fields["client_name"] == "App"
    assert page.fields["forgejo_host"] == "git.example.org"
    assert [c.name for c in page.cookies] == ["__Host-fjmcp-csrf"]
    assert setup.login.started == []


def test_allow_starts_the_login_with_the_canonical_request() -> None:
    """Allow on an intact consent form starts the login, resource made canonical."""
    setup = _setup()
    page = settle(setup.endpoint.authorize(_params(), {}))
    assert isinstance(page, Page)
    jar = {c.name: c.value for c in page.cookies}
    form = {"request": page.fields["request"], "csrf": page.fields["csrf"]}
    outcome = settle(setup.endpoint.consent({**form, "decision": "allow"}, jar))
    assert isinstance(outcome, Redirect)
    ((request, consent_user),) = setup.login.started
    assert consent_user is None
    assert request == AuthRequest(
        "c1", WEB, "s1", CHALLENGE, "mcp", "https://mcp.example.org/mcp"
    )


def test_consent_with_another_browsers_csrf_is_refused() -> None:
    """A consent form posted without this browser's CSRF cookie is a 403 page."""
    setup = _setup()
    page = settle(setup.endpoint.authorize(_params(), {}))
    assert isinstance(page, Page)
    form = {"request": page.fields["request"], "csrf": page.fields["csrf"]}
    outcome = settle(setup.endpoint.consent({**form, "decision": "allow"}, {"x": "y"}))
    assert isinstance(outcome, Page) and outcome.status == 403
    assert setup.login.started == []


def test_a_user_who_approved_skips_the_page() -> None:
    """The signed cookie of a user who approved this client goes straight to login."""
    setup = _setup()
    outcome = settle(setup.endpoint.authorize(_params(), _approved_by_alice(setup)))
    assert isinstance(outcome, Redirect)
    assert [user for _, user in setup.login.started] == ["alice"]


def test_prompt_consent_and_native_redirects_always_ask() -> None:
    """prompt=consent, or a loopback redirect, show the page even to a known user."""
    for params in (_params(prompt="consent"), _params(redirect_uri=NATIVE)):
        setup = _setup()
        outcome = settle(setup.endpoint.authorize(params, _approved_by_alice(setup)))
        assert isinstance(outcome, Page) and outcome.template == "consent.html"
        assert setup.login.started == []


def test_unknown_client_or_redirect_is_a_page_never_a_redirect() -> None:
    """Until client and redirect URI are known, errors are pages (no open redirect)."""
    setup = _setup()
    for params in (_params(client_id="c2"), _params(redirect_uri="https://evil/")):
        outcome: Any = settle(setup.endpoint.authorize(params, {}))
        assert isinstance(outcome, Page) and outcome.template == "error.html"


def test_errors_after_the_client_is_known_are_redirects_with_iss() -> None:
    """A bad PKCE method goes back to the client with state and iss."""
    setup = _setup()
    outcome = settle(
        setup.endpoint.authorize(_params(code_challenge_method="plain"), {})
    )
    assert isinstance(outcome, Redirect)
    assert outcome.location.startswith(WEB + "?error=invalid_request")
    assert re.search(
        r"&state=s1&iss=https%3A%2F%2Fmcp\.example\.org$", outcome.location
    )
