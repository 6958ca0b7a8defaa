# -*- test-case-name: tests.web.test_oauth_routes -*-
"""
The OAuth endpoints over HTTP, in memory (``StubTreq``), with the stand-in
Forgejo: every endpoint's success and error branches, and one test per
attack class (PKCE, code replay, refresh reuse, foreign tokens, redirect
URIs, state, Host spoofing, CSRF, framing, secrets in logs and rows).
"""

from __future__ import annotations

import base64
import json
from typing import Any, cast
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher

from fjmcp.interfaces import UpstreamGrant
from fjmcp.oauth.authorize import CONSENT_TTL
from tests.standin.support import BOB, ISSUER, pkce_pair, result_of
from tests.web.oauth_harness import Broker, query_of

CONFIDENTIAL = {
    "redirect_uris": ["https://app.example/callback"],
    "token_endpoint_auth_method": "client_secret_basic",
    "grant_types": ["authorization_code", "refresh_token"],
}
LOOPBACK = {"redirect_uris": ["http://127.0.0.1:33418/callback"]}


@pytest.fixture
def broker() -> Broker:
    return Broker()


def _location(response: Any) -> str:
    value: str = response.headers.getRawHeaders("location")[0]
    return value


def _error(broker: Broker, response: Any) -> str:
    body: dict[str, str] = broker.json_of(response)
    return body["error"]


# --- discovery ----------------------------------------------------------------


SPOOF = {
    "Host": "evil.example",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Proto": "https",
    "Forwarded": "host=evil.example;proto=https",
}


def test_authorization_server_metadata(broker: Broker) -> None:
    """RFC 8414 document: issuer is public_url; S256; iss parameter advertised."""
    response = broker.get("/.well-known/oauth-authorization-server", headers=SPOOF)
    assert response.code == 200
    doc = broker.json_of(response)
    base = broker.config.public_url
    assert doc["issuer"] == base
    assert doc["authorization_endpoint"] == base + "/oauth/authorize"
    assert doc["token_endpoint"] == base + "/oauth/token"
    assert doc["registration_endpoint"] == base + "/oauth/register"
    assert doc["revocation_endpoint"] == base + "/oauth/revoke"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert doc["scopes_supported"] == ["mcp", "offline_access"]
    assert "none" in doc["token_endpoint_auth_methods_supported"]
    assert b"evil" not in json.dumps(doc).encode()


@pytest.mark.parametrize(
    "path",
    [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ],
)
def test_protected_resource_metadata_ignores_host(broker: Broker, path: str) -> None:
    """RFC 9728 document from public_url only, whatever Host says."""
    response = broker.get(path, headers=SPOOF)
    doc = broker.json_of(response)
    assert doc["resource"] == broker.config.public_url + "/mcp"
    assert doc["authorization_servers"] == [broker.config.public_url]
    assert doc["scopes_supported"] == ["mcp"]
    assert doc["bearer_methods_supported"] == ["header"]
    assert "evil" not in json.dumps(doc)


def test_metadata_follows_public_url() -> None:
    """An https public_url is what the documents name."""
    broker = Broker(public_url="https://mcp.example.org")
    doc = broker.json_of(broker.get("/.well-known/oauth-authorization-server"))
    assert doc["issuer"] == "https://mcp.example.org"


# --- CORS (browser-based clients such as MCP Inspector) ------------------------


ORIGIN = {"Origin": "http://localhost:6274"}
METADATA_PATHS = [
    "/.well-known/oauth-authorization-server",
    "/.well-known/oauth-protected-resource",
    "/.well-known/oauth-protected-resource/mcp",
]


def _header(response: Any, name: str) -> str | None:
    values = response.headers.getRawHeaders(name)
    return None if not values else str(values[0])


@pytest.mark.parametrize("path", METADATA_PATHS)
def test_metadata_is_readable_cross_origin(broker: Broker, path: str) -> None:
    """
    A page on another origin can read the metadata, after a preflight for
    the MCP-Protocol-Version header the TypeScript SDK sends on discovery.
    """
    preflight = broker.request(
        "OPTIONS",
        path,
        headers={
            **ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "mcp-protocol-version",
        },
    )
    assert preflight.code == 204
    assert _header(preflight, "access-control-allow-origin") == "*"
    assert "GET" in (_header(preflight, "access-control-allow-methods") or "")
    allowed = (_header(preflight, "access-control-allow-headers") or "").lower()
    assert "mcp-protocol-version" in allowed
    response = broker.get(path, headers={**ORIGIN, **SPOOF})
    assert response.code == 200
    assert _header(response, "access-control-allow-origin") == "*"
    assert _header(response, "access-control-allow-credentials") is None


@pytest.mark.parametrize("path", ["/oauth/register", "/oauth/token", "/oauth/revoke"])
def test_fetch_endpoints_answer_preflight(broker: Broker, path: str) -> None:
    """Register, token and revoke allow a cross-origin POST with its headers."""
    preflight = broker.request(
        "OPTIONS",
        path,
        headers={
            **ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.code == 204
    assert _header(preflight, "access-control-allow-origin") == "*"
    assert "POST" in (_header(preflight, "access-control-allow-methods") or "")
    allowed = (_header(preflight, "access-control-allow-headers") or "").lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert _header(preflight, "access-control-allow-credentials") is None


def test_fetch_endpoints_answers_and_errors_are_readable_cross_origin(
    broker: Broker,
) -> None:
    """
    A browser client can read the registration, the tokens and the OAuth
    errors (a 401 invalid_client with its WWW-Authenticate included).
    """
    response = broker.request(
        "POST",
        "/oauth/register",
        json={"redirect_uris": ["http://localhost:6274/oauth/callback"]},
        headers=ORIGIN,
    )
    assert response.code == 201
    assert _header(response, "access-control-allow-origin") == "*"
    basic = base64.b64encode(b"nobody:wrong").decode()
    response = broker.post_form(
        "/oauth/token",
        {"grant_type": "refresh_token", "refresh_token": "x"},
        headers={**ORIGIN, "Authorization": f"Basic {basic}"},
    )
    assert response.code == 401
    assert _header(response, "access-control-allow-origin") == "*"
    exposed = (_header(response, "access-control-expose-headers") or "").lower()
    assert "www-authenticate" in exposed
    response = broker.post_form("/oauth/revoke", {"token": "x"}, headers=ORIGIN)
    assert response.code == 401
    assert _header(response, "access-control-allow-origin") == "*"


def test_browser_endpoints_have_no_cors(broker: Broker) -> None:
    """The authorization endpoint is a navigation: no CORS headers at all."""
    response = broker.get("/oauth/authorize", headers=ORIGIN)
    assert _header(response, "access-control-allow-origin") is None


# --- registration -------------------------------------------------------------


def test_register_public_and_confidential(broker: Broker) -> None:
    """Public clients get no secret; confidential ones get one (basic by default)."""
    public = broker.register()
    assert public["token_endpoint_auth_method"] == "none"
    assert "client_secret" not in public
    confidential = broker.register(token_endpoint_auth_method=None)
    assert confidential["token_endpoint_auth_method"] == "client_secret_basic"
    assert len(confidential["client_secret"]) >= 43
    assert confidential["client_secret_expires_at"] == 0
    default = broker.register(grant_types=None)
    assert default["grant_types"] == ["authorization_code"]


def _register_raw(
    broker: Broker, body: Any, content_type: str = "application/json"
) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return broker.request(
        "POST", "/oauth/register", data=data, headers={"Content-Type": content_type}
    )


@pytest.mark.parametrize(
    "uris",
    [
        ["http://app.example/cb"],
        ["https://app.example/cb#frag"],
        ["javascript:alert(1)"],
        ["data:text/html,hi"],
        ["ftp://app.example/cb"],
        ["myapp:/cb"],
        ["https://user:pw@app.example/cb"],
        ["https:///nohost"],
        ["https://app.example/a b"],
        [""],
        [5],
        [],
        "https://app.example/cb",
        ["https://app.example/" + "a" * 3000],
    ],
)
def test_register_refuses_bad_redirect_uris(broker: Broker, uris: Any) -> None:
    """Redirect URIs must be https, loopback http or private-use; else refused."""
    response = _register_raw(broker, {"redirect_uris": uris})
    assert response.code == 400
    assert _error(broker, response) == "invalid_redirect_uri"


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:5555/cb",
        "http://[::1]/cb",
        "http://localhost:6274/oauth/callback",
        "com.example.app:/oauth2redirect",
        "https://claude.ai/api/mcp/auth_callback",
    ],
)
def test_register_accepts_allowed_redirect_uris(broker: Broker, uri: str) -> None:
    """Loopback http, private-use schemes and https are accepted."""
    assert broker.register(redirect_uris=[uri])["redirect_uris"] == [uri]


@pytest.mark.parametrize(
    "body",
    [
        {"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "x"},
        {"redirect_uris": ["https://a.example/cb"], "grant_types": ["implicit"]},
        {"redirect_uris": ["https://a.example/cb"], "grant_types": ["refresh_token"]},
        {"redirect_uris": ["https://a.example/cb"], "response_types": ["token"]},
        {"redirect_uris": ["https://a.example/cb"], "client_name": "x" * 300},
        {"redirect_uris": ["https://a.example/cb"], "client_name": 7},
        {"redirect_uris": ["https://a.example/cb"], "logo_uri": "javascript:x"},
        {"redirect_uris": ["https://a.example/cb"], "contacts": "a@b"},
        {"redirect_uris": ["https://a.example/cb"], "application_type": "tv"},
        ["not", "an", "object"],
    ],
)
def test_register_refuses_bad_metadata(broker: Broker, body: Any) -> None:
    """Invalid metadata gets invalid_client_metadata (400)."""
    response = _register_raw(broker, body)
    assert response.code == 400
    assert _error(broker, response) == "invalid_client_metadata"


def test_register_refuses_non_json(broker: Broker) -> None:
    """A body that is not JSON, or not declared as JSON, is refused."""
    assert _register_raw(broker, b"{not json").code == 400
    assert _register_raw(broker, b"\xff\xfe").code == 400
    response = _register_raw(broker, {"redirect_uris": ["https://a/cb"]}, "text/plain")
    assert response.code == 400
    assert _register_raw(broker, b"[" * 100_000).code == 400


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=30),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    ["redirect_uris", "grant_types", "client_name", "scope", "x"]
                )
                | st.text(max_size=10),
                inner,
                max_size=5,
            )
        ),
        max_leaves=12,
    )
)
def test_register_any_json_is_never_a_server_error(body: Any) -> None:
    """Any JSON document gets 201 or a 400 OAuth error, never a 500."""
    broker = _shared_broker()
    response = _register_raw(broker, body)
    assert response.code in (201, 400)


_BROKER: list[Broker] = []


def _shared_broker() -> Broker:
    if not _BROKER:
        _BROKER.append(Broker())
    return _BROKER[0]


# --- authorize: errors before the redirect URI is trusted -----------------------


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"client_id": None}, "names no client"),
        ({"client_id": "fjc_unknown"}, "not registered"),
        ({"redirect_uri": None}, "no redirect_uri"),
        ({"redirect_uri": "https://evil.example/steal"}, "not one this application"),
        ({"redirect_uri": "https://app.example/callback/"}, "not one this application"),
        ({"state": "s" * 3000}, "too long"),
    ],
)
def test_authorize_errors_never_redirect(
    broker: Broker, change: dict[str, Any], needle: str
) -> None:
    """Until client and redirect URI check out, errors are a page, not a redirect."""
    client = broker.register()
    response = broker.authorize(client, pkce_pair()[1], **change)
    assert response.code == 400
    assert not response.headers.hasHeader(b"location")
    assert needle in broker.text_of(response)
    assert response.headers.getRawHeaders(b"x-frame-options") == [b"DENY"]


def test_authorize_repeated_parameter_is_an_error_page(broker: Broker) -> None:
    """A repeated parameter is refused on a page (RFC 6749 §3.1)."""
    client = broker.register()
    params = broker.authorize_params(client, pkce_pair()[1])
    query = "&".join(f"{k}={v}" for k, v in params.items()) + "&state=again"
    response = broker.get("/oauth/authorize?" + query)
    assert response.code == 400 and not response.headers.hasHeader(b"location")


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "tooshort"}, "invalid_request"),
        ({"code_challenge": None}, "invalid_request"),
        ({"resource": "https://other.example/mcp"}, "invalid_target"),
        ({"prompt": "none"}, "login_required"),
        ({"prompt": "none consent"}, "invalid_request"),
        ({"prompt": "bogus"}, "invalid_request"),
    ],
)
def test_authorize_errors_redirect_with_state_and_iss(
    broker: Broker, change: dict[str, Any], error: str
) -> None:
    """Later errors go back to the client with error, state and iss."""
    client = broker.register()
    response = broker.authorize(client, pkce_pair()[1], **change)
    assert response.code == 302
    location = _location(response)
    assert location.startswith("https://app.example/callback?")
    query = query_of(location)
    assert query["error"] == error
    assert query["state"] == "client-state-1"
    assert query["iss"] == broker.config.public_url


def test_client_without_code_grant_is_unauthorized(broker: Broker) -> None:
    """The built-in admin client has no redirect URI: an error page."""
    response = broker.get(
        "/oauth/authorize",
        params={"client_id": "admin-cli", "redirect_uri": "https://app.example/cb"},
    )
    assert response.code == 400


# --- consent ------------------------------------------------------------------


def test_consent_page_names_client_and_host_and_forbids_framing(broker: Broker) -> None:
    """The page names the client and its redirect host; no framing; CSRF cookie."""
    client = broker.register(client_name="<b>Evil</b> & Co")
    response = broker.authorize(
        client, pkce_pair()[1], scope="mcp bogus offline_access"
    )
    assert response.code == 200
    text = broker.text_of(response)
    assert "app.example" in text
    assert client["client_id"] in text
    assert "&lt;b&gt;Evil&lt;/b&gt; &amp; Co" in text and "<b>Evil" not in text
    assert response.headers.getRawHeaders(b"x-frame-options") == [b"DENY"]
    csp = response.headers.getRawHeaders(b"content-security-policy")[0]
    assert b"frame-ancestors 'none'" in csp
    assert response.headers.getRawHeaders(b"cache-control") == [b"no-store"]
    assert "fjmcp-csrf" in broker.cookies
    cookie = response.headers.getRawHeaders(b"set-cookie")[0]
    assert (
        b"HttpOnly" in cookie and b"Secure" not in cookie and b"__Host-" not in cookie
    )
    assert "Warning" not in text


def test_consent_page_warns_for_loopback(broker: Broker) -> None:
    """A loopback redirect URI gets a warning on the consent page."""
    client = broker.register(**LOOPBACK)
    response = broker.authorize(client, pkce_pair()[1])
    assert "Warning" in broker.text_of(response)
    assert "127.0.0.1" in broker.text_of(response)


def test_consent_page_names_the_broker_and_shows_hosts_with_ports() -> None:
    """display_name and the broker's host:port head the page; redirect has its port."""
    broker = Broker(public_url="https://mcp.example.org:8443", display_name="Acme MCP")
    client = broker.register(**LOOPBACK)
    text = broker.text_of(broker.authorize(client, pkce_pair()[1]))
    assert "Acme MCP" in text and "mcp.example.org:8443" in text
    port = urlsplit(LOOPBACK["redirect_uris"][0]).port
    assert f"127.0.0.1:{port}" in text


def test_https_broker_uses_host_prefixed_secure_cookies() -> None:
    """With an https public_url, cookies are __Host- and Secure."""
    broker = Broker(public_url="https://mcp.example.org")
    client = broker.register()
    response = broker.authorize(client, pkce_pair()[1])
    cookie = response.headers.getRawHeaders(b"set-cookie")[0]
    assert cookie.startswith(b"__Host-fjmcp-csrf=")
    assert b"Secure" in cookie and b"Path=/" in cookie


def test_consent_deny_redirects_access_denied(broker: Broker) -> None:
    """Deny sends access_denied with state and iss to the client."""
    client = broker.register()
    fields = broker.consent_form(broker.authorize(client, pkce_pair()[1]))
    response = broker.post_form("/oauth/consent", {**fields, "decision": "deny"})
    assert response.code == 303
    query = query_of(_location(response))
    assert query == {
        "error": "access_denied",
        "error_description": "the user denied the request",
        "state": "client-state-1",
        "iss": broker.config.public_url,
    }


@pytest.mark.parametrize(
    "attack", ["no-cookie", "other-cookie", "bad-token", "no-token"]
)
def test_consent_csrf(broker: Broker, attack: str) -> None:
    """An approval without this browser's CSRF cookie and token is refused."""
    client = broker.register()
    fields = broker.consent_form(broker.authorize(client, pkce_pair()[1]))
    form = {**fields, "decision": "allow"}
    if attack == "no-cookie":
        broker.cookies.clear()
    elif attack == "other-cookie":
        broker.cookies["fjmcp-csrf"] = "x" * 43
    elif attack == "bad-token":
        form["csrf"] = form["csrf"][:-2] + "AA"
    else:
        del form["csrf"]
    response = broker.post_form("/oauth/consent", form)
    assert response.code == 403
    assert not response.headers.hasHeader(b"location")


def test_consent_request_tampered_or_expired(broker: Broker) -> None:
    """An altered or expired consent form is refused without redirecting."""
    client = broker.register()
    fields = broker.consent_form(broker.authorize(client, pkce_pair()[1]))
    body, _, sig = fields["request"].partition(".")
    tampered = {**fields, "request": body[:-2] + "xx." + sig, "decision": "allow"}
    assert broker.post_form("/oauth/consent", tampered).code == 400
    broker.clock.advance(CONSENT_TTL + 1)
    expired = broker.post_form("/oauth/consent", {**fields, "decision": "allow"})
    assert expired.code == 400


def test_consent_without_decision_and_bad_form(broker: Broker) -> None:
    """A form without Allow/Deny, or not a form, is an error page."""
    client = broker.register()
    fields = broker.consent_form(broker.authorize(client, pkce_pair()[1]))
    assert broker.post_form("/oauth/consent", fields).code == 400
    response = broker.request(
        "POST",
        "/oauth/consent",
        data=b"{}",
        headers={"Content-Type": "application/json"},
    )
    assert response.code == 400


def test_allow_redirects_to_forgejo_with_pkce_and_state(broker: Broker) -> None:
    """Allow sends the browser to Forgejo with S256 and a fresh state."""
    client = broker.register()
    fields = broker.consent_form(broker.authorize(client, pkce_pair()[1]))
    response = broker.post_form("/oauth/consent", {**fields, "decision": "allow"})
    assert response.code == 303
    location = _location(response)
    assert location.startswith(ISSUER + "/login/oauth/authorize?")
    query = query_of(location)
    assert query["code_challenge_method"] == "S256"
    assert query["redirect_uri"] == broker.config.public_url + "/oauth/callback"
    assert query["state"] != "client-state-1" and len(query["state"]) >= 43
    assert any(name.startswith("fjmcp-flow-") for name in broker.cookies)


# --- callback -----------------------------------------------------------------


def test_full_login_redirects_with_code_state_iss(broker: Broker) -> None:
    """The callback sends code, state and iss to the client and sets the user cookie."""
    client = broker.register()
    code, _, response = broker.login(client)
    query = query_of(_location(response))
    assert query["state"] == "client-state-1"
    assert query["iss"] == broker.config.public_url
    assert len(code) >= 43
    assert "fjmcp-user" in broker.cookies
    assert not any(name.startswith("fjmcp-flow-") for name in broker.cookies)


def _to_forgejo(broker: Broker, client: dict[str, Any]) -> str:
    fields = broker.consent_form(broker.authorize(client, pkce_pair()[1]))
    response = broker.post_form("/oauth/consent", {**fields, "decision": "allow"})
    return _location(response)


def test_callback_state_is_single_use_and_checked(broker: Broker) -> None:
    """Unknown or replayed state, or a missing one, is an error page."""
    client = broker.register()
    callback = broker.forgejo_login(_to_forgejo(broker, client))
    assert broker.get(callback).code == 302
    replay = broker.get(callback)
    assert replay.code == 409 and not replay.headers.hasHeader(b"location")
    wrong = callback.replace("state=", "state=x")
    assert broker.get(wrong).code == 400
    assert broker.get("/oauth/callback?code=abc").code == 400


def test_callback_from_another_browser_is_refused(broker: Broker) -> None:
    """A callback without the flow cookie of the browser that consented fails."""
    client = broker.register()
    callback = broker.forgejo_login(_to_forgejo(broker, client))
    broker.cookies = {k: v for k, v in broker.cookies.items() if "flow" not in k}
    response = broker.get(callback)
    assert response.code == 400
    assert "another browser" in broker.text_of(response)


def test_callback_with_forgejo_error_or_bad_code(broker: Broker) -> None:
    """Forgejo's error, or a code it refuses, ends in access_denied at the client."""
    client = broker.register()
    location = _to_forgejo(broker, client)
    state = query_of(location)["state"]
    denied = broker.get(
        "/oauth/callback", params={"state": state, "error": "access_denied"}
    )
    assert query_of(_location(denied))["error"] == "access_denied"
    location = _to_forgejo(broker, client)
    state = query_of(location)["state"]
    bad = broker.get("/oauth/callback", params={"state": state, "code": "not-a-code"})
    query = query_of(_location(bad))
    assert (query["error"], query["iss"]) == ("access_denied", broker.config.public_url)


def test_consent_is_remembered_for_https_clients(broker: Broker) -> None:
    """After one approval, the same browser skips the page; prompt=consent shows it."""
    client = broker.register()
    broker.login(client)
    again = broker.authorize(client, pkce_pair()[1])
    assert again.code == 302 and _location(again).startswith(ISSUER)
    silent = broker.authorize(client, pkce_pair()[1], prompt="none")
    assert silent.code == 302 and _location(silent).startswith(ISSUER)
    forced = broker.authorize(client, pkce_pair()[1], prompt="consent")
    assert forced.code == 200
    other = broker.register()
    assert broker.authorize(other, pkce_pair()[1]).code == 200
    none = broker.authorize(other, pkce_pair()[1], prompt="none")
    assert query_of(_location(none))["error"] == "consent_required"


def test_consent_never_skipped_for_loopback(broker: Broker) -> None:
    """A loopback client gets the consent page every time."""
    client = broker.register(**LOOPBACK)
    broker.login(client)
    assert broker.authorize(client, pkce_pair()[1]).code == 200


def test_skipped_consent_must_be_the_same_user(broker: Broker) -> None:
    """If consent was skipped for alice but bob logs in, no code is issued."""
    client = broker.register()
    broker.login(client)
    verifier, challenge = pkce_pair()
    response = broker.authorize(client, challenge)
    callback = broker.forgejo_login(_location(response), BOB)
    answer = broker.get(callback)
    query = query_of(_location(answer))
    assert query["error"] == "consent_required" and "code" not in query


# --- token endpoint -----------------------------------------------------------


def test_code_exchange_issues_tokens_the_bearer_accepts(broker: Broker) -> None:
    """A code gives access + refresh tokens (no-store); the bearer check accepts."""
    client = broker.register()
    code, verifier, _ = broker.login(client)
    response = broker.exchange(client, code, verifier)
    assert response.code == 200
    assert response.headers.getRawHeaders(b"cache-control") == [b"no-store"]
    answer = broker.json_of(response)
    assert answer["token_type"] == "Bearer"
    assert answer["scope"] == "mcp"
    assert answer["expires_in"] == int(broker.config.access_token_ttl)
    assert answer["access_token"] != answer["refresh_token"]
    assert broker.bearer_ok(answer["access_token"])


def test_no_refresh_token_without_refresh_grant(broker: Broker) -> None:
    """A client registered without refresh_token gets no refresh token."""
    client = broker.register(grant_types=["authorization_code"])
    answer = broker.tokens_for(client)
    assert "refresh_token" not in answer


@pytest.mark.parametrize("auth", ["client_secret_basic", "client_secret_post"])
def test_confidential_clients_authenticate(broker: Broker, auth: str) -> None:
    """Confidential clients redeem codes with their registered method."""
    client = broker.register(**{**CONFIDENTIAL, "token_endpoint_auth_method": auth})
    assert broker.bearer_ok(broker.tokens_for(client)["access_token"])


def test_pkce_mismatch_burns_the_code(broker: Broker) -> None:
    """A wrong verifier gets invalid_grant, and the code is spent."""
    client = broker.register()
    code, verifier, _ = broker.login(client)
    wrong = broker.exchange(client, code, pkce_pair()[0])
    assert (wrong.code, _error(broker, wrong)) == (400, "invalid_grant")
    right = broker.exchange(client, code, verifier)
    assert _error(broker, right) == "invalid_grant"


def test_plain_verifier_equal_to_challenge_fails(broker: Broker) -> None:
    """Sending the challenge itself as verifier (plain PKCE) fails."""
    client = broker.register()
    verifier, challenge = pkce_pair()
    broker_code, _, _ = broker.login(client)
    response = broker.exchange(client, broker_code, challenge)
    assert _error(broker, response) == "invalid_grant"


def test_stale_code(broker: Broker) -> None:
    """A code older than auth_code_ttl gets invalid_grant."""
    client = broker.register()
    code, verifier, _ = broker.login(client)
    broker.clock.advance(broker.config.auth_code_ttl)
    assert _error(broker, broker.exchange(client, code, verifier)) == "invalid_grant"


def test_code_replay_revokes_issued_tokens(broker: Broker) -> None:
    """Replaying a redeemed code fails and revokes what it minted; sessions end."""
    client = broker.register()
    code, verifier, _ = broker.login(client)
    answer = broker.json_of(broker.exchange(client, code, verifier))
    assert broker.bearer_ok(answer["access_token"])
    replay = broker.exchange(client, code, verifier)
    assert _error(broker, replay) == "invalid_grant"
    assert not broker.bearer_ok(answer["access_token"])
    refresh = broker.token(
        {"grant_type": "refresh_token", "refresh_token": answer["refresh_token"]},
        client,
    )
    assert _error(broker, refresh) == "invalid_grant"
    assert broker.sessions.ended == [
        ("alice", client["client_id"], "authorization code replayed")
    ]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"redirect_uri": "https://app.example/other"}, "invalid_grant"),
        ({"resource": "https://other.example/mcp"}, "invalid_target"),
        ({"code": "unknown-code"}, "invalid_grant"),
    ],
)
def test_code_binding(broker: Broker, change: dict[str, str], error: str) -> None:
    """The code is bound to its redirect URI and resource."""
    client = broker.register()
    code, verifier, _ = broker.login(client)
    change = dict(change)
    code = change.pop("code", code)
    response = broker.exchange(client, code, verifier, **change)
    assert _error(broker, response) == error


def test_code_of_another_client(broker: Broker) -> None:
    """A code redeemed by another client gets invalid_grant."""
    client = broker.register()
    thief = broker.register()
    code, verifier, _ = broker.login(client)
    response = broker.exchange(
        {**thief, "redirect_uris": client["redirect_uris"]}, code, verifier
    )
    assert _error(broker, response) == "invalid_grant"


def test_refresh_rotation_and_reuse_revokes_family(broker: Broker) -> None:
    """
    Refresh rotates; reusing the old refresh token after the reuse grace
    revokes the whole family.
    """
    client = broker.register()
    first = broker.tokens_for(client)
    form = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    second = broker.json_of(broker.token(form, client))
    assert second["refresh_token"] != first["refresh_token"]
    assert broker.bearer_ok(second["access_token"])
    broker.clock.advance(broker.config.refresh_reuse_grace + 1)
    reuse = broker.token(form, client)
    assert _error(broker, reuse) == "invalid_grant"
    assert not broker.bearer_ok(second["access_token"])
    newer = {"grant_type": "refresh_token", "refresh_token": second["refresh_token"]}
    assert _error(broker, broker.token(newer, client)) == "invalid_grant"
    assert broker.sessions.ended[-1][:2] == ("alice", client["client_id"])


def test_refresh_with_another_clients_token(broker: Broker) -> None:
    """Another client's refresh token is refused and the family stays intact."""
    client = broker.register()
    other = broker.register()
    tokens = broker.tokens_for(client)
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    assert _error(broker, broker.token(form, other)) == "invalid_grant"
    assert broker.bearer_ok(tokens["access_token"])
    assert broker.token(form, client).code == 200


def test_refresh_scope_and_resource(broker: Broker) -> None:
    """Refresh may ask for mcp/offline_access only, and only our resource."""
    client = broker.register()
    tokens = broker.tokens_for(client)
    base = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    assert (
        _error(broker, broker.token({**base, "scope": "admin"}, client))
        == "invalid_scope"
    )
    bad = broker.token({**base, "resource": "https://x.example/mcp"}, client)
    assert _error(broker, bad) == "invalid_target"
    ok = broker.token({**base, "scope": "mcp offline_access"}, client)
    assert ok.code == 200


def test_resource_with_uppercase_scheme_and_host_is_ours(broker: Broker) -> None:
    """
    ``resource`` with another case of scheme and host names our /mcp (MCP
    2025-11-25 asks servers to accept it) at authorize, code exchange and
    refresh; the tokens carry the canonical audience, so /mcp accepts them.
    """
    client = broker.register()
    shouted = broker.config.mcp_url.upper().replace("/MCP", "/mcp")
    assert shouted != broker.config.mcp_url
    code, verifier, _ = broker.login(client, resource=shouted)
    response = broker.exchange(client, code, verifier, resource=shouted)
    assert response.code == 200, broker.text_of(response)
    tokens = broker.json_of(response)
    assert broker.bearer_ok(tokens["access_token"])
    refreshed = broker.token(
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "resource": shouted,
        },
        client,
    )
    assert refreshed.code == 200, broker.text_of(refreshed)
    assert broker.bearer_ok(broker.json_of(refreshed)["access_token"])


@pytest.mark.parametrize(
    ("form", "headers", "status", "error"),
    [
        ({}, {}, 400, "invalid_request"),
        ({"grant_type": "password"}, {}, 400, "unsupported_grant_type"),
        ({"grant_type": "authorization_code"}, {}, 401, "invalid_client"),
        (
            {"grant_type": "authorization_code", "client_id": "fjc_nope"},
            {},
            401,
            "invalid_client",
        ),
        (
            {"grant_type": "authorization_code"},
            {"Authorization": "Basic !!!"},
            401,
            "invalid_client",
        ),
        (
            {"grant_type": "authorization_code"},
            {"Authorization": "Bearer abc"},
            401,
            "invalid_client",
        ),
        (
            {"grant_type": "refresh_token", "client_id": "admin-cli"},
            {},
            400,
            "unauthorized_client",
        ),
    ],
)
def test_token_request_errors(
    broker: Broker,
    form: dict[str, str],
    headers: dict[str, str],
    status: int,
    error: str,
) -> None:
    """Malformed and unauthenticated token requests get RFC 6749 errors."""
    response = broker.post_form("/oauth/token", form, headers=headers)
    assert (response.code, _error(broker, response)) == (status, error)
    assert response.headers.getRawHeaders(b"cache-control") == [b"no-store"]


def test_client_authentication_failures(broker: Broker) -> None:
    """Wrong secret (basic: 401 + WWW-Authenticate), wrong method, secret on public."""
    client = broker.register(**CONFIDENTIAL)
    bad = {**client, "client_secret": "wrong"}
    response = broker.token({"grant_type": "authorization_code", "code": "x"}, bad)
    assert (response.code, _error(broker, response)) == (401, "invalid_client")
    assert response.headers.getRawHeaders(b"www-authenticate") == [
        b'Basic realm="fjmcp"'
    ]
    as_post = {**client, "token_endpoint_auth_method": "client_secret_post"}
    response = broker.token({"grant_type": "authorization_code"}, as_post)
    assert response.code == 401
    public = broker.register()
    response = broker.token(
        {"grant_type": "authorization_code", "client_secret": "x"}, public
    )
    assert response.code == 401
    raw = f"{client['client_id']}:{client['client_secret']}".encode()
    both = broker.post_form(
        "/oauth/token",
        {"grant_type": "authorization_code", "client_secret": "x"},
        headers={"Authorization": "Basic " + base64.b64encode(raw).decode()},
    )
    assert _error(broker, both) == "invalid_request"


def test_token_parameters_only_in_a_form_body(broker: Broker) -> None:
    """Query-string parameters, repeats and other content types are refused."""
    client = broker.register()
    query = broker.request(
        "POST",
        "/oauth/token?client_id=" + client["client_id"],
        data={"grant_type": "authorization_code"},
    )
    assert _error(broker, query) == "invalid_request"
    repeated = broker.request(
        "POST",
        "/oauth/token",
        data=b"grant_type=authorization_code&grant_type=refresh_token",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert _error(broker, repeated) == "invalid_request"
    as_json = broker.request("POST", "/oauth/token", json={"grant_type": "x"})
    assert _error(broker, as_json) == "invalid_request"


_FIELDS = st.sampled_from(
    [
        "grant_type",
        "code",
        "code_verifier",
        "redirect_uri",
        "client_id",
        "client_secret",
        "refresh_token",
        "token",
        "scope",
        "resource",
    ]
)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(["/oauth/token", "/oauth/revoke"]),
    st.dictionaries(_FIELDS | st.text(max_size=8), st.text(max_size=60), max_size=6),
    st.one_of(st.none(), st.text(max_size=40)),
)
def test_token_and_revoke_never_500(
    path: str, form: dict[str, str], authorization: str | None
) -> None:
    """Any form and Authorization header get a 2xx or 4xx answer."""
    broker = _shared_broker()
    headers = {}
    if authorization is not None:
        try:
            authorization.encode("latin-1")
        except UnicodeEncodeError:
            authorization = authorization.encode("utf-8").decode("latin-1")
        headers["Authorization"] = authorization.replace("\r", "").replace("\n", "")
    response = broker.post_form(path, form, headers=headers)
    assert response.code < 500


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(["/oauth/authorize", "/oauth/callback"]),
    st.binary(max_size=200),
)
def test_browser_endpoints_never_500(path: str, query: bytes) -> None:
    """Any query string on authorize or callback gets a page or a redirect."""
    broker = _shared_broker()
    from urllib.parse import quote_from_bytes

    safe = quote_from_bytes(query, safe="=&")
    response = broker.get(path + "?" + safe)
    assert response.code in (200, 302, 400, 403)


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.dictionaries(
        st.sampled_from(["request", "csrf", "decision"]) | st.text(max_size=5),
        st.text(max_size=80),
        max_size=4,
    )
)
def test_consent_form_never_500(form: dict[str, str]) -> None:
    """Any consent form gets a page or a redirect, never a 500."""
    broker = _shared_broker()
    response = broker.post_form("/oauth/consent", form)
    assert response.code in (303, 400, 403)


# --- revocation ---------------------------------------------------------------


def test_revoke_access_token_ends_the_grant(broker: Broker) -> None:
    """Revoking the access token revokes its family at once; sessions end."""
    client = broker.register()
    tokens = broker.tokens_for(client)
    assert broker.bearer_ok(tokens["access_token"])
    response = broker.post_form(
        "/oauth/revoke",
        {"token": tokens["access_token"], "client_id": client["client_id"]},
    )
    assert response.code == 200
    assert not broker.bearer_ok(tokens["access_token"])
    refresh = broker.token(
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        client,
    )
    assert _error(broker, refresh) == "invalid_grant"
    assert broker.sessions.ended == [
        ("alice", client["client_id"], "revoked by the client")
    ]


def test_revoke_unknown_and_foreign_tokens(broker: Broker) -> None:
    """Unknown tokens get 200; another client's token is left alone (200)."""
    client = broker.register()
    other = broker.register()
    tokens = broker.tokens_for(client)
    unknown = broker.post_form(
        "/oauth/revoke", {"token": "nope", "client_id": client["client_id"]}
    )
    assert unknown.code == 200
    foreign = broker.post_form(
        "/oauth/revoke",
        {"token": tokens["refresh_token"], "client_id": other["client_id"]},
    )
    assert foreign.code == 200
    assert broker.bearer_ok(tokens["access_token"])
    missing = broker.post_form("/oauth/revoke", {"client_id": client["client_id"]})
    assert _error(broker, missing) == "invalid_request"
    unauthenticated = broker.post_form("/oauth/revoke", {"token": "x"})
    assert unauthenticated.code == 401


# --- secrets stay secret ------------------------------------------------------


def test_secrets_absent_from_logs_and_rows(broker: Broker) -> None:
    """A full flow logs no token, code, secret or cookie; rows hold digests only."""
    events: list[LogEvent] = []
    observer = cast(ILogObserver, events.append)
    globalLogPublisher.addObserver(observer)
    try:
        client = broker.register(**CONFIDENTIAL)
        code, verifier, callback = broker.login(client)
        tokens = broker.json_of(broker.exchange(client, code, verifier))
        rotated = broker.json_of(
            broker.token(
                {
                    "grant_type": "refresh_token",
                    "refresh_token": tokens["refresh_token"],
                },
                client,
            )
        )
        broker.token(
            {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            client,
        )
    finally:
        globalLogPublisher.removeObserver(observer)
    upstream = result_of(broker.upstream.current(UpstreamGrant("alice")))
    refresh, _ = result_of(
        _deferred(broker.upstream.refresh_token(UpstreamGrant("alice")))
    )
    secrets = [
        client["client_secret"],
        code,
        verifier,
        tokens["access_token"],
        tokens["refresh_token"],
        rotated["access_token"],
        rotated["refresh_token"],
        upstream.access_token,
        refresh,
        *broker.cookies.values(),
    ]
    text = "\n".join(
        (formatEvent(e) or "") + repr({k: v for k, v in e.items() if k != "log_format"})
        for e in events
    )
    assert any("logged in" in (formatEvent(e) or "") for e in events)
    dump = broker.store.all_bytes()
    for secret in secrets:
        assert secret and secret not in text
        assert secret.encode() not in dump


def _deferred(coro: Any) -> Any:
    from twisted.internet.defer import Deferred

    return Deferred.fromCoroutine(coro)
