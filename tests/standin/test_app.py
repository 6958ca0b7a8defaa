# -*- test-case-name: tests.standin.test_app -*-
"""
The stand-in Forgejo behaves as Forgejo does where fjmcp depends on it:
authorize checks and login form, token endpoint shapes and errors, both
refresh-token modes, expiring tokens, the API, and the test hooks.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from treq.testing import StubTreq
from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.task import Clock
from twisted.web.test.requesthelper import DummyRequest

from fjmcp.standin.app import (
    StandinClient,
    StandinConfig,
    StandinForgejo,
    StandinUser,
    _is_loopback_peer,
    loopback_bind_address,
)
from tests.standin.support import (
    ALICE,
    BOB,
    CLIENT_ID,
    CLIENT_SECRET,
    ISSUER,
    PUBLIC_CLIENT_ID,
    PUBLIC_REDIRECT_URI,
    REDIRECT_URI,
    api_user,
    authorize_params,
    csrf_of,
    exchange,
    get_code,
    log_in,
    make_standin,
    pkce_pair,
    query_of,
    refresh,
    result_of,
    token_request,
)

AUTHORIZE = f"{ISSUER}/login/oauth/authorize"


def stub_for(standin: StandinForgejo) -> Any:
    return StubTreq(standin.app.resource())  # type: ignore[no-untyped-call, unused-ignore]


def location(response: Any) -> str:
    values = response.headers.getRawHeaders("location")
    assert values, "no Location header"
    return str(values[0])


def tokens_for(stub: Any, user: StandinUser = ALICE) -> dict[str, Any]:
    code, verifier = get_code(stub, user)
    status, body = exchange(stub, code, verifier)
    assert status == 200, body
    return dict(body)


# --- /login/oauth/authorize ---------------------------------------------------------


def test_authorize_shows_a_login_form_that_says_it_is_a_stand_in() -> None:
    """A valid authorize request gets a login form carrying the request and a CSRF
    nonce, marked as a stand-in, and not frameable."""
    stub = stub_for(make_standin())
    _, challenge = pkce_pair()
    response = result_of(stub.get(AUTHORIZE, params=authorize_params(challenge)))
    page = result_of(response.text())
    assert response.code == 200
    assert "Stand-in Forgejo" in page
    assert 'name="user_name"' in page and 'name="password"' in page
    assert f'value="{challenge}"' in page
    assert csrf_of(page)
    assert response.headers.getRawHeaders("x-frame-options") == ["DENY"]
    assert (
        "frame-ancestors 'none'"
        in response.headers.getRawHeaders("content-security-policy")[0]
    )


@pytest.mark.parametrize(
    ("override", "title"),
    [
        ({"client_id": "nobody"}, "Client ID not registered"),
        ({"client_id": ""}, "Client ID not registered"),
        ({"redirect_uri": "http://127.0.0.1:8080/oauth/callback/x"}, "Unregistered"),
        ({"redirect_uri": "https://evil.example/cb"}, "Unregistered"),
        ({"redirect_uri": ""}, "Unregistered"),
    ],
)
def test_authorize_client_and_redirect_errors_are_pages_never_redirects(
    override: dict[str, str], title: str
) -> None:
    """An unknown client or an unregistered redirect URI gets a 400 error page and
    no Location header (an untrusted redirect URI is never followed)."""
    stub = stub_for(make_standin())
    params = {**authorize_params(pkce_pair()[1]), **override}
    response = result_of(stub.get(AUTHORIZE, params=params, allow_redirects=False))
    assert response.code == 400
    assert response.headers.getRawHeaders("location") is None
    assert title in result_of(response.text())


@pytest.mark.parametrize(
    ("client_id", "redirect_uri", "override", "error"),
    [
        (
            CLIENT_ID,
            REDIRECT_URI,
            {"response_type": "token"},
            "unsupported_response_type",
        ),
        (CLIENT_ID, REDIRECT_URI, {"code_challenge_method": "S512"}, "invalid_request"),
        (CLIENT_ID, REDIRECT_URI, {"code_challenge": "short"}, "invalid_request"),
        (CLIENT_ID, REDIRECT_URI, {"code_challenge": "!" * 43}, "invalid_request"),
        (
            CLIENT_ID,
            REDIRECT_URI,
            {"code_challenge": "", "code_challenge_method": "S256"},
            "invalid_request",
        ),
        (
            PUBLIC_CLIENT_ID,
            PUBLIC_REDIRECT_URI,
            {"code_challenge": "", "code_challenge_method": ""},
            "invalid_request",
        ),
    ],
)
def test_authorize_later_errors_redirect_with_error_and_state(
    client_id: str, redirect_uri: str, override: dict[str, str], error: str
) -> None:
    """Once client and redirect URI are valid, errors go back by 303 redirect with
    ``error`` and the ``state`` (PKCE is required for a public client)."""
    stub = stub_for(make_standin())
    params = {
        **authorize_params(
            pkce_pair()[1], client_id=client_id, redirect_uri=redirect_uri
        ),
        **override,
    }
    response = result_of(stub.get(AUTHORIZE, params=params, allow_redirects=False))
    assert response.code == 303
    query = query_of(location(response))
    assert query["error"] == error
    assert query["state"] == "state-1"
    assert "code" not in query


def test_login_with_correct_password_redirects_with_code_and_state() -> None:
    """The right password gets a 303 to the redirect URI with a code and the
    state; a redirect URI's own query is kept."""
    stub = stub_for(make_standin())
    verifier, challenge = pkce_pair()
    params = authorize_params(
        challenge, client_id=PUBLIC_CLIENT_ID, redirect_uri=PUBLIC_REDIRECT_URI
    )
    response = log_in(stub, params)
    assert response.code == 303
    where = location(response)
    assert where.startswith("http://127.0.0.1:9999/cb?keep=1&")
    query = query_of(where)
    assert query["state"] == "state-1" and query["code"]


def test_login_with_wrong_password_shows_the_form_again_without_a_code() -> None:
    """A wrong password re-renders the form with an error and a fresh nonce."""
    stub = stub_for(make_standin())
    params = authorize_params(pkce_pair()[1])
    response = log_in(stub, params, password="wrong")
    page = result_of(response.text())
    assert response.code == 200
    assert response.headers.getRawHeaders("location") is None
    assert "Username or password is incorrect." in page
    assert csrf_of(page)


def test_login_of_unknown_user_is_refused() -> None:
    """An unknown user name is refused like a wrong password."""
    stub = stub_for(make_standin())
    ghost = StandinUser("ghost", "ghost-password")
    response = log_in(stub, authorize_params(pkce_pair()[1]), ghost)
    assert response.code == 200
    assert "incorrect" in result_of(response.text())


def test_login_form_nonce_is_single_use_and_required() -> None:
    """Replaying a submitted form, or posting without its nonce, gets the form
    again with 400 instead of a code."""
    stub = stub_for(make_standin())
    params = authorize_params(pkce_pair()[1])
    page = result_of(result_of(stub.get(AUTHORIZE, params=params)).text())
    form = {**params, "_csrf": csrf_of(page), "user_name": "alice"}
    form["password"] = ALICE.password
    first = result_of(stub.post(AUTHORIZE, data=form, allow_redirects=False))
    again = result_of(stub.post(AUTHORIZE, data=form, allow_redirects=False))
    del form["_csrf"]
    without = result_of(stub.post(AUTHORIZE, data=form, allow_redirects=False))
    assert first.code == 303
    assert again.code == 400 and without.code == 400
    assert "expired" in result_of(again.text())


def test_auto_approve_skips_the_form() -> None:
    """With auto-approve, the authorize GET redirects with a code for that user."""
    standin = make_standin(auto_approve="bob")
    stub = stub_for(standin)
    verifier, challenge = pkce_pair()
    response = result_of(
        stub.get(AUTHORIZE, params=authorize_params(challenge), allow_redirects=False)
    )
    assert response.code == 303
    status, body = exchange(stub, query_of(location(response))["code"], verifier)
    assert status == 200
    assert api_user(stub, f"token {body['access_token']}")[1]["login"] == "bob"


def test_auto_approve_still_checks_client_and_redirect_uri() -> None:
    """Auto-approve never issues a code to an unregistered redirect URI."""
    stub = stub_for(make_standin(auto_approve="alice"))
    params = {**authorize_params(pkce_pair()[1]), "redirect_uri": "https://evil.test/"}
    response = result_of(stub.get(AUTHORIZE, params=params, allow_redirects=False))
    assert response.code == 400
    assert response.headers.getRawHeaders("location") is None


# --- /login/oauth/access_token ------------------------------------------------------


def test_code_exchange_answers_forgejos_token_shape() -> None:
    """The code exchange answers exactly Forgejo's fields, ``token_type: bearer``
    and ``expires_in`` the configured lifetime, and ``Cache-Control: no-store``."""
    standin = make_standin(token_lifetime=900)
    stub = stub_for(standin)
    code, verifier = get_code(stub)
    response = result_of(
        stub.post(
            f"{ISSUER}/login/oauth/access_token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
            },
        )
    )
    body = result_of(response.json())
    assert response.code == 200
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert body["access_token"] != body["refresh_token"]
    assert response.headers.getRawHeaders("content-type")[0].startswith(
        "application/json"
    )
    assert standin.exchange_count("alice") == 1


def test_code_is_single_use() -> None:
    """A code works once; the second exchange gets 400 ``unauthorized_client``."""
    stub = stub_for(make_standin())
    code, verifier = get_code(stub)
    assert exchange(stub, code, verifier)[0] == 200
    status, body = exchange(stub, code, verifier)
    assert status == 400
    assert body["error"] == "unauthorized_client"


def test_code_expires() -> None:
    """A code older than its lifetime is refused."""
    clock = Clock()
    stub = stub_for(make_standin(clock))
    code, verifier = get_code(stub)
    clock.advance(601)
    assert exchange(stub, code, verifier) == (
        400,
        {
            "error": "unauthorized_client",
            "error_description": "client is not authorized",
        },
    )


@pytest.mark.parametrize(
    ("extra", "status_error"),
    [
        ({"code_verifier": "x" * 50}, "unauthorized_client"),
        ({"code_verifier": ""}, "unauthorized_client"),
        ({"client_secret": "wrong"}, "unauthorized_client"),
        ({"client_id": "nobody"}, "invalid_client"),
        ({"redirect_uri": "http://127.0.0.1:1/other"}, "unauthorized_client"),
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"grant_type": ""}, "unsupported_grant_type"),
    ],
)
def test_code_exchange_errors_are_forgejo_json_400(
    extra: dict[str, str], status_error: str
) -> None:
    """Each refusal is a 400 with Forgejo's ``error`` and ``error_description``."""
    stub = stub_for(make_standin())
    code, verifier = get_code(stub)
    status, body = exchange(stub, code, verifier, **extra)
    assert status == 400
    assert body["error"] == status_error
    assert isinstance(body["error_description"], str) and body["error_description"]


def test_empty_client_secret_is_named_in_the_error() -> None:
    """A confidential client without a secret gets Forgejo's 'invalid empty client
    secret' text."""
    stub = stub_for(make_standin())
    code, verifier = get_code(stub)
    status, body = exchange(stub, code, verifier, client_secret="")
    assert (status, body["error_description"]) == (400, "invalid empty client secret")


def test_code_of_one_client_cannot_be_redeemed_by_another() -> None:
    """A code minted for the public client is refused to the confidential one."""
    stub = stub_for(make_standin())
    verifier, challenge = pkce_pair()
    params = authorize_params(
        challenge, client_id=PUBLIC_CLIENT_ID, redirect_uri=PUBLIC_REDIRECT_URI
    )
    code = query_of(location(log_in(stub, params)))["code"]
    status, body = exchange(stub, code, verifier, redirect_uri="")
    assert (status, body["error"]) == (400, "invalid_grant")


def test_public_client_exchanges_without_secret() -> None:
    """A public client authenticates with its id alone (PKCE protects the code)."""
    stub = stub_for(make_standin())
    verifier, challenge = pkce_pair()
    params = authorize_params(
        challenge, client_id=PUBLIC_CLIENT_ID, redirect_uri=PUBLIC_REDIRECT_URI
    )
    code = query_of(location(log_in(stub, params)))["code"]
    status, body = token_request(
        stub,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": PUBLIC_REDIRECT_URI,
            "code_verifier": verifier,
            "client_id": PUBLIC_CLIENT_ID,
        },
    )
    assert status == 200 and body["token_type"] == "bearer"


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def test_client_may_authenticate_with_http_basic() -> None:
    """Client credentials in an HTTP Basic header are accepted, as by Forgejo."""
    stub = stub_for(make_standin())
    code, verifier = get_code(stub)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }
    status, body = token_request(
        stub, form, headers={"Authorization": basic(CLIENT_ID, CLIENT_SECRET)}
    )
    assert status == 200, body


@pytest.mark.parametrize(
    ("authorization", "form_extra", "error"),
    [
        (basic(CLIENT_ID, "wrong"), {}, "unauthorized_client"),
        ("Basic !!!notbase64", {}, "invalid_request"),
        ("Basic " + base64.b64encode(b"no-colon").decode(), {}, "invalid_request"),
        (basic(CLIENT_ID, CLIENT_SECRET), {"client_id": "other"}, "invalid_request"),
    ],
)
def test_bad_basic_credentials_are_refused(
    authorization: str, form_extra: dict[str, str], error: str
) -> None:
    """Wrong, unparsable or inconsistent Basic credentials get 400 and Forgejo's
    error code."""
    stub = stub_for(make_standin())
    code, verifier = get_code(stub)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
        **form_extra,
    }
    status, body = token_request(stub, form, headers={"Authorization": authorization})
    assert (status, body["error"]) == (400, error)


# --- refresh tokens -----------------------------------------------------------------


def test_reusable_refresh_tokens_work_again_by_default() -> None:
    """In Forgejo's default mode a refresh token may be used more than once; each
    use issues a new pair and is counted."""
    standin = make_standin()
    stub = stub_for(standin)
    first = tokens_for(stub)
    status1, second = refresh(stub, first["refresh_token"])
    status2, third = refresh(stub, first["refresh_token"])
    assert (status1, status2) == (200, 200)
    assert (
        len({first["access_token"], second["access_token"], third["access_token"]}) == 3
    )
    assert standin.refresh_count("alice") == 2
    assert standin.refresh_count() == 2
    assert standin.refresh_count("bob") == 0


def test_invalidated_refresh_token_reuse_is_unauthorized_client() -> None:
    """With invalidate_refresh_tokens, a spent refresh token gets 400
    ``unauthorized_client`` while the newest one still works."""
    standin = make_standin(invalidate_refresh_tokens=True)
    stub = stub_for(standin)
    first = tokens_for(stub)
    status, second = refresh(stub, first["refresh_token"])
    assert status == 200
    assert refresh(stub, first["refresh_token"]) == (
        400,
        {"error": "unauthorized_client", "error_description": "token was already used"},
    )
    assert refresh(stub, second["refresh_token"])[0] == 200
    assert standin.refresh_count("alice") == 2


def test_second_login_shares_the_grant_as_in_forgejo() -> None:
    """One grant per user and application: in invalidate mode, a new login of the
    same user spends the refresh token of the previous login."""
    stub = stub_for(make_standin(invalidate_refresh_tokens=True))
    first = tokens_for(stub)
    tokens_for(stub)
    status, body = refresh(stub, first["refresh_token"])
    assert (status, body["error"]) == (400, "unauthorized_client")


@pytest.mark.parametrize(
    ("token", "extra", "error"),
    [
        ("unknown-token", {}, "unauthorized_client"),
        (None, {"client_secret": "wrong"}, "unauthorized_client"),
        (None, {"client_id": PUBLIC_CLIENT_ID, "client_secret": ""}, "invalid_grant"),
    ],
)
def test_refresh_errors(token: str | None, extra: dict[str, str], error: str) -> None:
    """An unknown refresh token, a wrong secret, or another client's refresh token
    get 400 with Forgejo's error codes."""
    stub = stub_for(make_standin())
    real = tokens_for(stub)["refresh_token"]
    status, body = refresh(stub, token or real, **extra)
    assert (status, body["error"]) == (400, error)


def test_refresh_tokens_expire() -> None:
    """A refresh token past its lifetime is refused."""
    clock = Clock()
    stub = stub_for(make_standin(clock, refresh_token_lifetime=100))
    first = tokens_for(stub)
    clock.advance(101)
    status, body = refresh(stub, first["refresh_token"])
    assert (status, body["error"]) == (400, "unauthorized_client")


# --- /api/v1/user and /api/v1/version -----------------------------------------------


@pytest.mark.parametrize("scheme", ["token", "Bearer", "bearer", "TOKEN"])
def test_api_user_accepts_token_and_bearer_schemes(scheme: str) -> None:
    """``Authorization: token X`` and ``Bearer X`` (any case) name the user, in
    Forgejo's User JSON."""
    stub = stub_for(make_standin())
    access = tokens_for(stub)["access_token"]
    status, body = api_user(stub, f"{scheme} {access}")
    assert status == 200
    assert body["login"] == "alice" and body["username"] == "alice"
    assert body["id"] == 1 and body["full_name"] == "Alice A."
    assert body["email"] == "alice@noreply.localhost"
    assert body["avatar_url"].startswith(ISSUER + "/avatars/")


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Basic abc", "Bearer not-a-token", "token \xe9"],
)
def test_api_user_without_a_valid_token_is_401(authorization: str | None) -> None:
    """No, malformed or unknown tokens get 401 with Forgejo's message JSON."""
    stub = stub_for(make_standin())
    status, body = api_user(stub, authorization)
    assert status == 401
    assert body == {"message": "token is required", "url": f"{ISSUER}/api/swagger"}


def test_access_tokens_expire_with_the_clock() -> None:
    """An access token works until its lifetime has passed, then gets 401; the
    refresh token then gets a working one."""
    clock = Clock()
    stub = stub_for(make_standin(clock, token_lifetime=60))
    tokens = tokens_for(stub)
    clock.advance(59)
    assert api_user(stub, f"Bearer {tokens['access_token']}")[0] == 200
    clock.advance(1)
    assert api_user(stub, f"Bearer {tokens['access_token']}")[0] == 401
    _, fresh = refresh(stub, tokens["refresh_token"])
    assert api_user(stub, f"Bearer {fresh['access_token']}")[0] == 200


def test_old_access_token_keeps_working_after_a_refresh() -> None:
    """As with Forgejo's JWTs, a refresh does not end the previous access token."""
    stub = stub_for(make_standin())
    tokens = tokens_for(stub)
    refresh(stub, tokens["refresh_token"])
    assert api_user(stub, f"Bearer {tokens['access_token']}")[0] == 200


def test_version_is_public() -> None:
    """``/api/v1/version`` needs no token and answers Forgejo's shape."""
    stub = stub_for(make_standin(version="9.9.9+test"))
    response = result_of(stub.get(f"{ISSUER}/api/v1/version"))
    assert response.code == 200
    assert result_of(response.json()) == {"version": "9.9.9+test"}


# --- test hooks ---------------------------------------------------------------------


def test_expire_hook_expires_access_tokens_but_not_refresh_tokens() -> None:
    """``expire_user_tokens`` makes the user's access tokens 401 now; their
    refresh token still works; other users are untouched."""
    standin = make_standin()
    stub = stub_for(standin)
    alice, bob = tokens_for(stub, ALICE), tokens_for(stub, BOB)
    assert standin.expire_user_tokens("alice") == 1
    assert api_user(stub, f"Bearer {alice['access_token']}")[0] == 401
    assert api_user(stub, f"Bearer {bob['access_token']}")[0] == 200
    assert refresh(stub, alice["refresh_token"])[0] == 200
    assert standin.live_access_tokens("alice") == 1


def test_revoke_hook_ends_access_and_refresh_tokens() -> None:
    """``revoke_user`` deletes the user's grants: access tokens get 401 and
    refresh tokens ``invalid_grant``; a new login works again."""
    standin = make_standin()
    stub = stub_for(standin)
    tokens = tokens_for(stub)
    assert standin.revoke_user("alice") == 1
    assert api_user(stub, f"Bearer {tokens['access_token']}")[0] == 401
    status, body = refresh(stub, tokens["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")
    again = tokens_for(stub)
    assert api_user(stub, f"Bearer {again['access_token']}")[0] == 200


def hook(stub: Any, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    response = result_of(stub.request(method, f"{ISSUER}/_standin{path}", **kwargs))
    return response.code, result_of(response.json())


def test_http_hooks_expire_revoke_and_count() -> None:
    """The ``/_standin/`` endpoints do what the Python hooks do, for tests in
    other processes."""
    standin = make_standin()
    stub = stub_for(standin)
    tokens = tokens_for(stub)
    refresh(stub, tokens["refresh_token"])
    assert hook(stub, "GET", "/users/alice") == (
        200,
        {"login": "alice", "refreshes": 1, "exchanges": 1, "live_access_tokens": 2},
    )
    assert hook(stub, "POST", "/users/alice/expire") == (
        200,
        {"login": "alice", "expired": 2},
    )
    assert api_user(stub, f"Bearer {tokens['access_token']}")[0] == 401
    assert hook(stub, "POST", "/users/alice/revoke") == (
        200,
        {"login": "alice", "revoked": 1},
    )
    assert refresh(stub, tokens["refresh_token"])[1]["error"] == "invalid_grant"
    status, stats = hook(stub, "GET", "/stats")
    assert status == 200
    assert stats["refreshes"] == 1 and stats["users"]["alice"]["exchanges"] == 1


def test_http_hook_for_unknown_user_is_404() -> None:
    """A hook naming an unknown user answers 404."""
    stub = stub_for(make_standin())
    response = result_of(stub.post(f"{ISSUER}/_standin/users/nobody/expire"))
    assert response.code == 404


def test_token_lifetime_hook_changes_new_tokens_only() -> None:
    """``/_standin/token-lifetime`` sets ``expires_in`` of tokens issued after it;
    a bad value is a 400."""
    clock = Clock()
    standin = make_standin(clock)
    stub = stub_for(standin)
    before = tokens_for(stub)
    assert hook(stub, "POST", "/token-lifetime", data={"seconds": "5"}) == (
        200,
        {"token_lifetime": 5},
    )
    assert hook(stub, "POST", "/token-lifetime", data={"seconds": "-1"})[0] == 400
    assert hook(stub, "POST", "/token-lifetime", data={"seconds": "x"})[0] == 400
    after = tokens_for(stub)
    assert after["expires_in"] == 5
    clock.advance(5)
    assert api_user(stub, f"Bearer {after['access_token']}")[0] == 401
    assert api_user(stub, f"Bearer {before['access_token']}")[0] == 200


@pytest.mark.parametrize(
    ("peer", "allowed"),
    [
        (IPv4Address("TCP", "127.0.0.1", 1), True),
        (IPv4Address("TCP", "127.3.4.5", 1), True),
        (IPv4Address("TCP", "10.0.0.1", 1), False),
        (IPv4Address("TCP", "192.0.2.1", 1), False),
        (UNIXAddress(b"/tmp/x"), False),
    ],
)
def test_hooks_are_for_loopback_peers_only(peer: Any, allowed: bool) -> None:
    """Only a loopback TCP peer may call the ``/_standin/`` hooks."""
    request = DummyRequest([b""])
    request.client = peer
    assert _is_loopback_peer(request) is allowed  # type: ignore[arg-type]


# --- configuration and binding ------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"auto_approve": "nobody"},
        {"users": (ALICE, ALICE)},
        {"clients": (StandinClient("c", "s", ()),)},
        {"token_lifetime": -1},
    ],
)
def test_invalid_configurations_are_refused(overrides: dict[str, Any]) -> None:
    """An auto-approve user that does not exist, duplicate users, a client without
    a redirect URI, or a negative lifetime raise ValueError."""
    values: dict[str, Any] = {"users": (ALICE,), "clients": ()}
    values.update(overrides)
    with pytest.raises(ValueError):
        StandinConfig(**values)


@pytest.mark.parametrize(
    ("host", "bound"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("localhost", "127.0.0.1"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("127.0.0.2", "127.0.0.2"),
    ],
)
def test_loopback_hosts_are_accepted(host: str, bound: str) -> None:
    """Loopback addresses (and ``localhost``) are the only places to bind."""
    assert loopback_bind_address(host) == bound


NOT_LOOPBACK = ["0.0.0.0", "::", "192.168.1.10", "example.com", "", "10.0.0.1"]  # noqa: S104


@pytest.mark.parametrize("host", NOT_LOOPBACK)
def test_non_loopback_hosts_are_refused(host: str) -> None:
    """Any non-loopback address or name is refused with a clear message."""
    with pytest.raises(ValueError, match="loopback"):
        loopback_bind_address(host)


# --- no 500 for any input -----------------------------------------------------------

_param_names = st.sampled_from(
    [
        "client_id",
        "redirect_uri",
        "response_type",
        "state",
        "scope",
        "code_challenge",
        "code_challenge_method",
        "_csrf",
        "user_name",
        "password",
        "grant_type",
        "code",
        "code_verifier",
        "client_secret",
        "refresh_token",
        "seconds",
    ]
)
_values = st.one_of(
    st.text(max_size=60),
    st.sampled_from([CLIENT_ID, REDIRECT_URI, "code", "S256", "plain", "alice", ""]),
)
_forms = st.lists(st.tuples(_param_names, _values), max_size=8)


@given(query=_forms)
def test_authorize_get_never_fails_with_500(query: list[tuple[str, str]]) -> None:
    """Any query to the authorize endpoint gets a page or a redirect, never 500."""
    stub = stub_for(make_standin())
    response = result_of(stub.get(AUTHORIZE, params=query, allow_redirects=False))
    assert response.code in (200, 303, 400)


@given(form=_forms, raw=st.binary(max_size=200), use_raw=st.booleans())
def test_form_posts_never_fail_with_500(
    form: list[tuple[str, str]], raw: bytes, use_raw: bool
) -> None:
    """Any form (or raw bytes posted as a form) to the login form, the token
    endpoint or the lifetime hook gets a 2xx/3xx/4xx answer, never 500."""
    stub = stub_for(make_standin())
    for path in (
        "/login/oauth/authorize",
        "/login/oauth/access_token",
        "/_standin/token-lifetime",
    ):
        if use_raw:
            response = result_of(
                stub.post(
                    ISSUER + path,
                    data=raw,
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                    allow_redirects=False,
                )
            )
        else:
            response = result_of(
                stub.post(ISSUER + path, data=form, allow_redirects=False)
            )
        assert response.code < 500, (path, response.code)


@given(header=st.binary(max_size=100))
def test_authorization_header_parsing_never_fails_with_500(header: bytes) -> None:
    """Any Authorization header to ``/api/v1/user`` and the token endpoint is
    answered without a 500."""
    header = header.replace(b"\r", b"").replace(b"\n", b"")
    stub = stub_for(make_standin())
    for method, path in (
        ("GET", "/api/v1/user"),
        ("POST", "/login/oauth/access_token"),
    ):
        response = result_of(
            stub.request(method, ISSUER + path, headers={b"Authorization": [header]})
        )
        assert response.code < 500, (path, response.code)


def test_plain_pkce_is_supported_as_in_forgejo() -> None:
    """Forgejo also accepts ``plain`` challenges: the verifier must equal the
    challenge."""
    stub = stub_for(make_standin())
    verifier = "v" * 50
    code, _ = get_code(stub, code_challenge=verifier, code_challenge_method="plain")
    assert exchange(stub, code, "w" * 50)[0] == 400
    code, _ = get_code(stub, code_challenge=verifier, code_challenge_method="plain")
    assert exchange(stub, code, verifier)[0] == 200
