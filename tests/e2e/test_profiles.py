# -*- test-case-name: tests.e2e.test_profiles -*-
"""
Connector profiles: each test replays one client's request sequence, from
the first unauthenticated ``/mcp`` call through discovery, registration,
the user's consent and sign-in, the code exchange and refreshes, to calls
on ``/mcp``, against a real twistd broker and the stand-in Forgejo on
loopback (the ``broker`` fixture).

Requests marked "observed" come from reports in the clients' trackers
(2026), not from a spec: Claude.ai's ``scope`` with stray spaces and
``prompt=consent``, its claude.com callback host, Claude Code's portless
loopback registration with an ephemeral port, MCP Inspector's CORS
preflights from ``http://localhost:6274``, a client that retries a refresh
whose answer it lost, and two refreshers racing with one token.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.e2e.live import Live
from tests.e2e.profiles import Answer, Browser, Pkce, form_fields, query_of

pytestmark = [pytest.mark.e2e]

INSPECTOR_ORIGIN = "http://localhost:6274"
_ACCEPT = "application/json, text/event-stream"


def _challenge(browser: Browser, live: Live, **headers: str) -> str:
    """POST /mcp without a token: 401 naming the resource metadata."""
    answer = browser.post_json(
        live.mcp_url,
        {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {}},
        headers={"Accept": _ACCEPT, **headers},
        cookies=False,
    )
    assert answer.status == 401, answer.text
    challenge = answer.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and "resource_metadata=" in challenge
    return challenge.split('resource_metadata="', 1)[1].split('"', 1)[0]


def _discover(browser: Browser, live: Live, **headers: str) -> dict[str, Any]:
    """The 401, the resource metadata, then the AS metadata."""
    resource_url = _challenge(browser, live, **headers)
    prm = browser.get(resource_url, headers=headers, cookies=False)
    assert prm.status == 200
    assert prm.json()["resource"] == live.mcp_url
    issuer = prm.json()["authorization_servers"][0]
    asm = browser.get(
        issuer + "/.well-known/oauth-authorization-server",
        headers=headers,
        cookies=False,
    )
    assert asm.status == 200
    metadata: dict[str, Any] = asm.json()
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert "offline_access" in metadata["scopes_supported"]
    assert metadata["token_endpoint"] == live.public_url + "/oauth/token"
    return metadata


def _authorize(
    browser: Browser, live: Live, metadata: dict[str, Any], params: dict[str, str]
) -> dict[str, str]:
    """The user's part: consent page, Allow, sign-in, back at the client."""
    page = browser.get(metadata["authorization_endpoint"] + "?" + urlencode(params))
    assert page.status == 200, page.text
    assert page.headers["x-frame-options"] == "DENY"
    fields = {**form_fields(page.text), "decision": "allow"}
    allowed = browser.post_form(live.public_url + "/oauth/consent", fields)
    assert allowed.status == 303, allowed.text
    callback = browser.sign_in(allowed.location, live.user, live.password)
    back = browser.get(callback)
    assert back.status == 302, back.text
    assert back.location.startswith(params["redirect_uri"] + "?")
    answer = query_of(back.location)
    assert answer["state"] == params["state"]
    assert answer["iss"] == metadata["issuer"]
    return answer


def _token(
    browser: Browser, metadata: dict[str, Any], form: dict[str, str], **headers: str
) -> Answer:
    return browser.post_form(
        metadata["token_endpoint"], form, headers=headers, cookies=False
    )


def _mcp(
    browser: Browser, live: Live, access_token: str, **headers: str
) -> tuple[str, str]:
    """initialize, notifications/initialized, tools/list; (session id, body)."""
    auth = {"Authorization": "Bearer " + access_token, "Accept": _ACCEPT, **headers}
    init = browser.post_json(
        live.mcp_url,
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "profile", "version": "1"},
            },
        },
        headers=auth,
        cookies=False,
    )
    assert init.status == 200, init.text
    assert '"result"' in init.text
    session = init.headers["mcp-session-id"]
    auth.update({"Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-06-18"})
    note = browser.post_json(
        live.mcp_url,
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        headers=auth,
        cookies=False,
    )
    assert note.status == 202, note.text
    tools = browser.post_json(
        live.mcp_url,
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        headers=auth,
        cookies=False,
    )
    assert tools.status == 200 and '"tools"' in tools.text, tools.text
    ended = browser.request("DELETE", live.mcp_url, headers=auth, cookies=False)
    assert ended.status in (200, 204)
    return session, tools.text


def _dcr(browser: Browser, url: str, document: dict[str, Any], **headers: str) -> Any:
    answer = browser.post_json(url, document, headers=headers, cookies=False)
    assert answer.status == 201, answer.text
    return answer.json()


def test_claude_ai_via_dcr(broker: Live) -> None:
    """
    Claude.ai (observed): 401 -> discovery -> DCR -> authorize with
    ``scope=" offline_access "``, ``prompt=consent`` and ``resource`` with
    a trailing slash -> consent and sign-in -> code with ``iss`` -> token
    with a refresh token -> /mcp -> refresh. The claude.com callback host
    works the same.
    """
    for callback in (
        "https://claude.ai/api/mcp/auth_callback",
        "https://claude.com/api/mcp/auth_callback",
    ):
        browser = Browser()
        metadata = _discover(browser, broker)
        client = _dcr(
            browser,
            metadata["registration_endpoint"],
            {
                "client_name": "Claude",
                "redirect_uris": [callback],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            },
        )
        pkce = Pkce.new()
        params = {
            "response_type": "code",
            "client_id": client["client_id"],
            "redirect_uri": callback,
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
            "state": "claude-state",
            "scope": " offline_access  ",
            "resource": broker.mcp_url + "/",
            "prompt": "consent",
        }
        code = _authorize(browser, broker, metadata, params)["code"]
        tokens = _token(
            browser,
            metadata,
            {
                "grant_type": "authorization_code",
                "code": code,
                "code_verifier": pkce.verifier,
                "redirect_uri": callback,
                "client_id": client["client_id"],
                "resource": broker.mcp_url + "/",
            },
        )
        assert tokens.status == 200, tokens.text
        pair = tokens.json()
        assert pair["refresh_token"] and pair["token_type"] == "Bearer"
        _mcp(browser, broker, pair["access_token"])
        fresh = _token(
            browser,
            metadata,
            {
                "grant_type": "refresh_token",
                "refresh_token": pair["refresh_token"],
                "client_id": client["client_id"],
                "resource": broker.mcp_url,
            },
        )
        assert fresh.status == 200, fresh.text
        _mcp(browser, broker, fresh.json()["access_token"])


def test_claude_code_with_an_ephemeral_loopback_port(broker: Live) -> None:
    """
    Claude Code (observed): registers a portless loopback redirect URI, then
    listens on an ephemeral port and sends that port in authorize and
    token; the consent page warns (a local program), and /mcp works.
    """
    browser = Browser()
    metadata = _discover(browser, broker)
    client = _dcr(
        browser,
        metadata["registration_endpoint"],
        {
            "client_name": "Claude Code (fjmcp)",
            "redirect_uris": ["http://localhost/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        },
    )
    redirect = "http://localhost:54719/callback"
    pkce = Pkce.new()
    params = {
        "response_type": "code",
        "client_id": client["client_id"],
        "redirect_uri": redirect,
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
        "state": "cc-state",
        "scope": "mcp",
        "resource": broker.mcp_url,
    }
    code = _authorize(browser, broker, metadata, params)["code"]
    tokens = _token(
        browser,
        metadata,
        {
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": pkce.verifier,
            "redirect_uri": redirect,
            "client_id": client["client_id"],
        },
    )
    assert tokens.status == 200, tokens.text
    _mcp(browser, broker, tokens.json()["access_token"])


def _preflight(browser: Browser, url: str, method: str) -> None:
    answer = browser.request(
        "OPTIONS",
        url,
        headers={
            "Origin": INSPECTOR_ORIGIN,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "content-type, mcp-protocol-version",
        },
        cookies=False,
    )
    assert answer.status == 204, (url, answer.status)
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in answer.headers
    assert method in answer.headers["access-control-allow-methods"]


def test_mcp_inspector_with_cors_preflights(broker: Live) -> None:
    """
    MCP Inspector: its OAuth runs in the page at http://localhost:6274, so
    every metadata, register and token call is preceded by a CORS preflight
    and read cross-origin (never with credentials); it registers
    ``/oauth/callback`` and ``/oauth/callback/debug`` on localhost:6274;
    /mcp is called from its origin, which the operator allowed.
    """
    browser = Browser()
    origin = {"Origin": INSPECTOR_ORIGIN}
    _preflight(
        browser, broker.public_url + "/.well-known/oauth-protected-resource", "GET"
    )
    _preflight(
        browser, broker.public_url + "/.well-known/oauth-authorization-server", "GET"
    )
    metadata = _discover(browser, broker, **origin)
    _preflight(browser, metadata["registration_endpoint"], "POST")
    redirects = [
        "http://localhost:6274/oauth/callback",
        "http://localhost:6274/oauth/callback/debug",
    ]
    client = _dcr(
        browser,
        metadata["registration_endpoint"],
        {
            "client_name": "MCP Inspector",
            "redirect_uris": redirects,
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "software_id": "mcp-inspector",
            "software_version": "0.17.2",
        },
        **origin,
    )
    for redirect in redirects:
        pkce = Pkce.new()
        params = {
            "response_type": "code",
            "client_id": client["client_id"],
            "redirect_uri": redirect,
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
            "state": "inspector",
            "scope": "mcp",
            "resource": broker.mcp_url,
        }
        code = _authorize(browser, broker, metadata, params)["code"]
        _preflight(browser, metadata["token_endpoint"], "POST")
        tokens = _token(
            browser,
            metadata,
            {
                "grant_type": "authorization_code",
                "code": code,
                "code_verifier": pkce.verifier,
                "redirect_uri": redirect,
                "client_id": client["client_id"],
            },
            **origin,
        )
        assert tokens.status == 200, tokens.text
        assert tokens.headers["access-control-allow-origin"] == "*"
        _mcp(browser, broker, tokens.json()["access_token"], **origin)


def _connected(broker: Live) -> tuple[Browser, dict[str, Any], dict[str, Any], Any]:
    browser = Browser()
    metadata = _discover(browser, broker)
    redirect = "https://refresher.example/cb"
    client = _dcr(
        browser,
        metadata["registration_endpoint"],
        {
            "client_name": "Refresher",
            "redirect_uris": [redirect],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
        },
    )
    pkce = Pkce.new()
    params = {
        "response_type": "code",
        "client_id": client["client_id"],
        "redirect_uri": redirect,
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
        "state": "r",
        "resource": broker.mcp_url,
    }
    code = _authorize(browser, broker, metadata, params)["code"]
    tokens = _token(
        browser,
        metadata,
        {
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": pkce.verifier,
            "redirect_uri": redirect,
            "client_id": client["client_id"],
        },
    )
    assert tokens.status == 200
    return browser, metadata, client, tokens.json()


def test_retrying_refresher(broker: Live) -> None:
    """
    A client that lost the answer to a refresh (observed: a dropped
    connection) retries with the same refresh token within the grace: it
    gets the very same pair, which works on /mcp and refreshes on.
    """
    browser, metadata, client, pair = _connected(broker)
    form = {
        "grant_type": "refresh_token",
        "refresh_token": pair["refresh_token"],
        "client_id": client["client_id"],
    }
    lost = _token(browser, metadata, form)
    retried = _token(browser, metadata, form)
    assert lost.status == retried.status == 200
    assert lost.json() == retried.json()
    _mcp(browser, broker, retried.json()["access_token"])
    onward = dict(form, refresh_token=retried.json()["refresh_token"])
    assert _token(browser, metadata, onward).status == 200


def test_two_concurrent_refreshers(broker: Live) -> None:
    """
    Two refreshers (observed: two tabs, or a client and its retry) send the
    same refresh token at once: both get the identical pair, never two live
    families, and /mcp accepts it.
    """
    browser, metadata, client, pair = _connected(broker)
    form = {
        "grant_type": "refresh_token",
        "refresh_token": pair["refresh_token"],
        "client_id": client["client_id"],
    }
    start = threading.Barrier(2, timeout=20)

    def refresh() -> Answer:
        start.wait()
        return _token(browser, metadata, form)

    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda _: refresh(), range(2)))
    assert [a.status for a in answers] == [200, 200]
    assert answers[0].json() == answers[1].json()
    _mcp(browser, broker, answers[0].json()["access_token"])
