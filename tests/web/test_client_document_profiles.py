# -*- test-case-name: tests.web.test_client_document_profiles -*-
"""
Client profiles that identify themselves by a Client ID Metadata Document,
each replayed request by request from discovery to calls on ``/mcp``: the
OAuth routes in memory (`tests.web.oauth_harness.Broker`), the vendors'
documents and keys on an in-memory web, and the real ``/mcp`` resource
checking the bearer tokens the flow minted.

Requests marked "observed" follow what client trackers reported of these
clients in 2026, not a specification; the tests named ``observed`` say so.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.bridge.support import Harness, rpc
from tests.bridge.support import make_config as bridge_config
from tests.oauth.vendor_web import HANG, SigningKey, VendorWeb
from tests.standin.support import pkce_pair, result_of
from tests.web.oauth_harness import Broker, _stub, query_of

CLAUDE = "https://claude.ai/oauth/mcp-oauth-client-metadata"
CLAUDE_CALLBACK = "https://claude.ai/api/mcp/auth_callback"
CHATGPT = "https://chatgpt.com/oauth/client.json"
CHATGPT_CALLBACK = "https://chatgpt.com/connector_platform_oauth_redirect"
CHATGPT_JWKS = "https://chatgpt.com/oauth/jwks.json"
AGENT = "https://agent.example/oauth/client.json"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _discover(broker: Broker) -> dict[str, Any]:
    """The discovery every profile starts with; the AS metadata."""
    mcp = Harness(config=bridge_config(), auth=broker.bearer)  # type: ignore[arg-type]
    first = mcp.post(rpc(0, "initialize", {}), token=None)
    assert first.status == 401
    assert b"resource_metadata" in (first.header(b"www-authenticate") or b"")
    prm = broker.json_of(broker.get("/.well-known/oauth-protected-resource/mcp"))
    assert prm["authorization_servers"] == [broker.config.public_url]
    asm: dict[str, Any] = broker.json_of(
        broker.get("/.well-known/oauth-authorization-server")
    )
    # Observed: Claude.ai takes the CIMD path only when both are advertised.
    assert asm["client_id_metadata_document_supported"] is True
    assert "none" in asm["token_endpoint_auth_methods_supported"]
    return asm


def _calls_mcp(broker: Broker, access_token: str) -> None:
    """The profile ends on /mcp: initialize and a tools/list with the token."""
    mcp = Harness(config=bridge_config(), auth=broker.bearer)  # type: ignore[arg-type]
    token = b"Bearer " + access_token.encode()
    sid, child, _ = mcp.initialize(token=token)
    listed = mcp.post(rpc(1, "tools/list"), session=sid, token=token)
    assert json.loads(child.written[-1])["method"] == "tools/list", listed.body
    refused = mcp.post(rpc(2, "tools/list"), session=sid, token=b"Bearer forged")
    assert refused.status == 401


def _browser_to_code(
    broker: Broker, params: dict[str, str]
) -> tuple[str, dict[str, str]]:
    """authorize -> consent -> Forgejo -> callback; the code and callback query."""
    page = broker.get("/oauth/authorize", params=params)
    assert page.code == 200, broker.text_of(page)
    fields = broker.consent_form(page)
    allowed = broker.post_form("/oauth/consent", {**fields, "decision": "allow"})
    assert allowed.code == 303, broker.text_of(allowed)
    callback = broker.forgejo_login(allowed.headers.getRawHeaders("location")[0])
    back = broker.get(callback)
    assert back.code == 302, broker.text_of(back)
    location = back.headers.getRawHeaders("location")[0]
    assert location.startswith(params["redirect_uri"] + "?"), location
    query = query_of(location)
    assert query["state"] == params["state"] and query["iss"] == broker.settings.issuer
    return query["code"], query


def test_observed_claude_ai_via_its_known_client_record() -> None:
    """
    Claude.ai (observed): CIMD client_id answered by the shipped record (the
    document itself is never fetched), scope=offline_access with stray
    spaces, prompt=consent; public client with PKCE; refresh tokens because
    its document lists refresh_token; then calls on /mcp.
    """
    broker = Broker()
    _discover(broker)
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": CLAUDE,
        "redirect_uri": CLAUDE_CALLBACK,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "claude-state",
        "scope": " offline_access ",
        "resource": broker.config.mcp_url,
        "prompt": "consent",
    }
    page = broker.get("/oauth/authorize", params=params)
    assert "Claude" in broker.text_of(page)
    code, _ = _browser_to_code(broker, params)
    answer = broker.post_form(
        "/oauth/token",
        {
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": CLAUDE_CALLBACK,
            "client_id": CLAUDE,
            "resource": broker.config.mcp_url,
        },
    )
    assert answer.code == 200, broker.text_of(answer)
    tokens = broker.json_of(answer)
    assert "refresh_token" in tokens
    _calls_mcp(broker, tokens["access_token"])
    refreshed = broker.post_form(
        "/oauth/token",
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": CLAUDE,
        },
    )
    assert refreshed.code == 200, broker.text_of(refreshed)
    _calls_mcp(broker, broker.json_of(refreshed)["access_token"])
    assert broker.vendors.hits == []
    kind = broker.store.conn.execute(
        "SELECT kind FROM clients WHERE client_id = ?", (CLAUDE,)
    ).fetchone()
    assert kind == ("known",)


def _chatgpt_document() -> dict[str, Any]:
    """ChatGPT's document as published (quoted in a public tracker, 2026)."""
    return {
        "client_id": CHATGPT,
        "client_uri": "https://chatgpt.com/",
        "redirect_uris": [CHATGPT_CALLBACK],
        "token_endpoint_auth_method": "private_key_jwt",
        "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "client_name": "ChatGPT",
        "logo_uri": "https://persistent.oaistatic.com/sonic/misc/openai-logo.png",
        "token_endpoint_auth_signing_alg": "RS256",
        "jwks_uri": CHATGPT_JWKS,
    }


def test_observed_chatgpt_via_its_metadata_document() -> None:
    """
    ChatGPT (observed): its document is fetched (the operator disabled the
    shipped record), declares private_key_jwt with RS256 keys at jwks_uri,
    and the token requests carry client assertions aimed at the token
    endpoint; each assertion is good once; then calls on /mcp.
    """
    key = SigningKey(alg="RS256")
    vendors = VendorWeb()
    vendors.serve(
        CHATGPT, _chatgpt_document(), headers={"Cache-Control": "max-age=3600"}
    )
    vendors.serve(CHATGPT_JWKS, key.jwks)
    broker = Broker(vendors=vendors, known_clients={CHATGPT: {"enabled": False}})
    asm = _discover(broker)
    assert "private_key_jwt" in asm["token_endpoint_auth_methods_supported"]
    assert "RS256" in asm["token_endpoint_auth_signing_alg_values_supported"]
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": CHATGPT,
        "redirect_uri": CHATGPT_CALLBACK,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "chatgpt-state",
        "scope": "mcp offline_access",
        "resource": broker.config.mcp_url,
    }
    code, _ = _browser_to_code(broker, params)
    token_url = broker.config.public_url + "/oauth/token"
    assertion = key.assertion(CHATGPT, token_url, broker.clock.seconds())
    answer = broker.post_form(
        "/oauth/token",
        {
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": CHATGPT_CALLBACK,
            "resource": broker.config.mcp_url,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        },
    )
    assert answer.code == 200, broker.text_of(answer)
    tokens = broker.json_of(answer)
    _calls_mcp(broker, tokens["access_token"])
    replay = broker.post_form(
        "/oauth/token",
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        },
    )
    assert (replay.code, broker.json_of(replay)["error"]) == (401, "invalid_client")
    fresh = key.assertion(CHATGPT, token_url, broker.clock.seconds())
    refreshed = broker.post_form(
        "/oauth/token",
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": fresh,
        },
    )
    assert refreshed.code == 200, broker.text_of(refreshed)
    assert vendors.hits_of(CHATGPT) == 1 and vendors.hits_of(CHATGPT_JWKS) == 1
    public = broker.post_form(
        "/oauth/token",
        {"grant_type": "refresh_token", "refresh_token": "x", "client_id": CHATGPT},
    )
    assert (public.code, broker.json_of(public)["error"]) == (401, "invalid_client")


def test_metadata_document_client_with_private_key_jwt_and_pinned_keys() -> None:
    """
    A generic metadata-document client with its keys in the document
    (``jwks``), assertions addressed to the issuer: code, refresh, revoke,
    and calls on /mcp in between; nothing about it is vendor-specific.
    """
    key = SigningKey()
    vendors = VendorWeb()
    vendors.serve(
        AGENT,
        {
            "client_id": AGENT,
            "client_name": "Agent",
            "redirect_uris": ["https://agent.example/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": key.jwks,
        },
    )
    broker = Broker(vendors=vendors)
    _discover(broker)
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": AGENT,
        "redirect_uri": "https://agent.example/callback",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "s1",
        "resource": broker.config.mcp_url,
    }
    code, _ = _browser_to_code(broker, params)
    issuer = broker.settings.issuer

    def assertion() -> str:
        return key.assertion(AGENT, issuer, broker.clock.seconds())

    answer = broker.post_form(
        "/oauth/token",
        {
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": "https://agent.example/callback",
            "client_id": AGENT,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion(),
        },
    )
    assert answer.code == 200, broker.text_of(answer)
    tokens = broker.json_of(answer)
    _calls_mcp(broker, tokens["access_token"])
    without = broker.post_form(
        "/oauth/token",
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": AGENT,
        },
    )
    assert (without.code, broker.json_of(without)["error"]) == (401, "invalid_client")
    revoked = broker.post_form(
        "/oauth/revoke",
        {
            "token": tokens["refresh_token"],
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion(),
        },
    )
    assert revoked.code == 200
    assert not broker.bearer_ok(tokens["access_token"])


@pytest.mark.parametrize(
    ("serve", "words"),
    [
        (None, "HTTP 404"),
        (
            {
                "client_id": "https://elsewhere.example/c",
                "redirect_uris": ["https://a.example/cb"],
            },
            "not the URL",
        ),
        ({"client_id": AGENT}, "no redirect_uris"),
        (b"<html>challenge</html>", "not valid JSON"),
        (HANG, "did not answer within 5 seconds"),
    ],
)
def test_an_unusable_document_gives_a_clear_page_then_invalid_client(
    serve: Any, words: str
) -> None:
    """
    A document that cannot be fetched or is invalid: the authorize endpoint
    shows an error page saying why (never a 500, never a redirect), a
    retry within the negative cache fetches nothing, and the token endpoint
    answers invalid_client.
    """
    vendors = VendorWeb()
    if serve is not None:
        vendors.serve(AGENT, serve)
    broker = Broker(vendors=vendors)
    params = {
        "response_type": "code",
        "client_id": AGENT,
        "redirect_uri": "https://agent.example/callback",
        "code_challenge": pkce_pair()[1],
        "code_challenge_method": "S256",
    }
    browser = _stub(broker.resource)
    pending = browser.get(
        broker.config.public_url + "/oauth/authorize",
        params=params,
        allow_redirects=False,
    )
    broker.clock.advance(5)
    browser.flush()
    page = result_of(pending)
    text = broker.text_of(page)
    assert page.code == 400 and words in text, text
    assert page.headers.getRawHeaders("location") is None
    again = broker.get("/oauth/authorize", params=params)
    assert again.code == 400
    assert vendors.hits_of(AGENT) == 1
    token = broker.post_form(
        "/oauth/token",
        {"grant_type": "refresh_token", "refresh_token": "x", "client_id": AGENT},
    )
    assert (token.code, broker.json_of(token)["error"]) == (401, "invalid_client")


_json: Any = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    document=st.one_of(
        _json,
        st.fixed_dictionaries(
            {"client_id": st.just(AGENT), "redirect_uris": _json},
            optional={
                "token_endpoint_auth_method": _json,
                "grant_types": _json,
                "client_name": _json,
                "jwks": _json,
            },
        ),
    ),
    raw=st.one_of(st.none(), st.binary(max_size=200)),
    status=st.sampled_from([200, 200, 200, 301, 403, 404, 500]),
    size=st.sampled_from([0, 0, 70_000]),
)
def test_any_document_answer_is_a_page_never_a_500(
    document: Any, raw: bytes | None, status: int, size: int
) -> None:
    """Whatever the vendor serves (any JSON, any size, any status): 200 or 400."""
    vendors = VendorWeb()
    body: Any = raw if raw is not None else document
    if size:
        body = b" " * size + json.dumps(document).encode()
    vendors.serve(AGENT, body, status=status)
    broker = Broker(vendors=vendors)
    page = broker.get(
        "/oauth/authorize",
        params={
            "response_type": "code",
            "client_id": AGENT,
            "redirect_uri": "https://agent.example/callback",
            "code_challenge": pkce_pair()[1],
            "code_challenge_method": "S256",
        },
    )
    assert page.code in (200, 302, 400), broker.text_of(page)
    assert b"Traceback" not in broker.text_of(page).encode()
