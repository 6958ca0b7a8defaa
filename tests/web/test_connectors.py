# -*- test-case-name: tests.web.test_connectors -*-
"""
What real connectors need of the OAuth endpoints, over HTTP in memory:
hardened registration (nothing stored on a refusal), loopback redirect
URIs with ephemeral ports, the endpoint aliases, idempotent browser steps,
``invalid_client`` for unknown clients, and hypothesis over every form
field of authorize, consent, token and revoke.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.standin.support import pkce_pair
from tests.web.oauth_harness import Broker, query_of

#: Text that includes lone surrogates, controls and bidi characters.
_ANY_TEXT = st.text(
    alphabet=st.characters(codec=None, exclude_categories=()), max_size=30
)
_FIELDS = [
    "redirect_uris",
    "token_endpoint_auth_method",
    "grant_types",
    "response_types",
    "client_name",
    "client_uri",
    "logo_uri",
    "tos_uri",
    "policy_uri",
    "scope",
    "contacts",
    "software_id",
    "software_version",
    "application_type",
    "jwks",
]


@pytest.fixture
def broker() -> Broker:
    return Broker()


def _location(response: Any) -> str:
    value: str = response.headers.getRawHeaders("location")[0]
    return value


def _register_raw(broker: Broker, body: Any, path: str = "/oauth/register") -> Any:
    return broker.request(
        "POST",
        path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )


def _client_count(broker: Broker) -> int:
    row = broker.store.conn.execute("SELECT count(*) FROM clients").fetchone()
    return int(row[0])


# --- hardened registration -----------------------------------------------------


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"token_endpoint_auth_method": ["none"]}, "invalid_client_metadata"),
        ({"token_endpoint_auth_method": {"a": 1}}, "invalid_client_metadata"),
        ({"client_name": "lone \ud800"}, "invalid_client_metadata"),
        ({"client_name": "Claude\u202e.evil"}, "invalid_client_metadata"),
        ({"client_name": 3.5}, "invalid_client_metadata"),
        ({"grant_types": [["authorization_code"]]}, "invalid_client_metadata"),
        ({"software_version": {"v": 1}}, "invalid_client_metadata"),
        ({"contacts": ["x" * 400]}, "invalid_client_metadata"),
        ({"redirect_uris": [["https://a.example/cb"]]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://a.example/\udc00"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://a.example/cb"] * 50}, "invalid_redirect_uri"),
    ],
)
def test_hostile_registration_is_a_described_400_and_stores_nothing(
    broker: Broker, change: dict[str, Any], error: str
) -> None:
    """
    Found by malformed input: each is a 400 with the RFC 7591 error and a
    description, never a 500, and no client row is written.
    """
    before = _client_count(broker)
    body = {"redirect_uris": ["https://a.example/cb"], **change}
    response = _register_raw(broker, body)
    assert response.code == 400
    answer = broker.json_of(response)
    assert answer["error"] == error and answer["error_description"]
    assert _client_count(broker) == before


def test_dcr_keeps_application_type_and_software_fields(broker: Broker) -> None:
    """application_type, software_id and software_version come back as sent."""
    answer = broker.register(
        application_type="native",
        software_id="inspector",
        software_version="0.17.2",
    )
    assert answer["application_type"] == "native"
    assert (answer["software_id"], answer["software_version"]) == (
        "inspector",
        "0.17.2",
    )


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _ANY_TEXT,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(_ANY_TEXT, inner, max_size=4)
    ),
    max_leaves=10,
)


@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.dictionaries(st.sampled_from(_FIELDS) | _ANY_TEXT, _JSON, max_size=8),
    st.booleans(),
)
def test_any_registration_document_is_201_or_described_400(
    document: dict[str, Any], with_uris: bool
) -> None:
    """
    Hypothesis over the whole registration document (any JSON type in any
    field, any Unicode): 201, or a 400 with an RFC 7591 error and a
    description that stored nothing.
    """
    broker = _shared()
    if with_uris:
        document.setdefault("redirect_uris", ["https://a.example/cb"])
    before = _client_count(broker)
    response = _register_raw(broker, document)
    assert response.code in (201, 400)
    if response.code == 400:
        answer = broker.json_of(response)
        assert answer["error"] in ("invalid_client_metadata", "invalid_redirect_uri")
        assert answer["error_description"]
        assert _client_count(broker) == before


_BROKERS: list[Broker] = []


def _shared() -> Broker:
    if not _BROKERS:
        _BROKERS.append(Broker())
    return _BROKERS[0]


# --- loopback redirect URIs ------------------------------------------------------


@pytest.mark.parametrize(
    "registered",
    [
        "http://127.0.0.1/callback",
        "http://[::1]/callback",
        "http://localhost/callback",
    ],
)
def test_portless_loopback_registration_with_an_ephemeral_port(
    broker: Broker, registered: str
) -> None:
    """
    A client that registered a portless loopback URI comes back on any port
    (RFC 8252 §7.3): the code goes to that port and the token endpoint
    accepts that redirect_uri; another path or scheme is still refused.
    """
    client = broker.register(redirect_uris=[registered])
    given = registered.replace("/callback", ":53682/callback")
    code, verifier, answer = broker.login(client, redirect_uri=given)
    assert _location(answer).startswith(given + "?")
    tokens = broker.exchange(client, code, verifier, redirect_uri=given)
    assert tokens.code == 200, broker.text_of(tokens)
    for wrong in (given + "/x", given.replace("http:", "https:")):
        page = broker.authorize(client, pkce_pair()[1], redirect_uri=wrong)
        assert page.code == 400 and not page.headers.hasHeader(b"location")


def test_token_redirect_uri_on_another_loopback_port_matches(broker: Broker) -> None:
    """The token endpoint's redirect_uri comparison ignores a loopback port too."""
    client = broker.register(redirect_uris=["http://127.0.0.1:1234/cb"])
    code, verifier, _ = broker.login(client)
    tokens = broker.exchange(
        client, code, verifier, redirect_uri="http://127.0.0.1:4321/cb"
    )
    assert tokens.code == 200
    code, verifier, _ = broker.login(client)
    other = broker.exchange(client, code, verifier, redirect_uri="http://127.0.0.1/x")
    assert broker.json_of(other)["error"] == "invalid_grant"


# --- endpoint aliases -------------------------------------------------------------


def test_aliases_serve_register_authorize_and_token(broker: Broker) -> None:
    """
    /register, /authorize and /token answer like their /oauth/ endpoints,
    with the same CORS; the metadata names only the canonical ones.
    """
    response = _register_raw(
        broker,
        {
            "redirect_uris": ["https://app.example/cb"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
        },
        "/register",
    )
    assert response.code == 201
    assert response.headers.getRawHeaders("access-control-allow-origin") == ["*"]
    client = broker.json_of(response)
    verifier, challenge = pkce_pair()
    page = broker.get("/authorize", params=broker.authorize_params(client, challenge))
    assert page.code == 200
    fields = broker.consent_form(page)
    allowed = broker.post_form("/oauth/consent", {**fields, "decision": "allow"})
    callback = broker.forgejo_login(_location(allowed))
    code = query_of(_location(broker.get(callback)))["code"]
    token = broker.post_form(
        "/token",
        {
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": "https://app.example/cb",
            "client_id": client["client_id"],
        },
    )
    assert token.code == 200
    assert token.headers.getRawHeaders("access-control-allow-origin") == ["*"]
    assert token.headers.getRawHeaders("cache-control") == ["no-store"]
    for path in ("/token", "/register"):
        preflight = broker.request("OPTIONS", path)
        assert preflight.code == 204
        assert preflight.headers.getRawHeaders("access-control-allow-origin") == ["*"]
        assert not preflight.headers.hasHeader("access-control-allow-credentials")
    metadata = broker.json_of(broker.get("/.well-known/oauth-authorization-server"))
    assert metadata["token_endpoint"].endswith("/oauth/token")
    assert metadata["authorization_endpoint"].endswith("/oauth/authorize")
    assert metadata["registration_endpoint"].endswith("/oauth/register")


# --- idempotent browser steps -----------------------------------------------------


def test_second_approve_of_one_form_is_one_login(broker: Broker) -> None:
    """
    Observed: a double click on Approve. The second POST of the same form
    sends the browser to the same login at Forgejo (one login, one code);
    once that login finished, another POST is a clear page, not a new code.
    """
    client = broker.register()
    page = broker.authorize(client, pkce_pair()[1])
    form = {**broker.consent_form(page), "decision": "allow"}
    first = broker.post_form("/oauth/consent", form)
    second = broker.post_form("/oauth/consent", form)
    assert first.code == second.code == 303
    assert _location(first) == _location(second)
    callback = broker.forgejo_login(_location(second))
    done = broker.get(callback)
    assert "code" in query_of(_location(done))
    third = broker.post_form("/oauth/consent", form)
    assert third.code == 409 and not third.headers.hasHeader(b"location")
    assert "already used" in broker.text_of(third)
    codes = broker.store.conn.execute("SELECT count(*) FROM auth_codes").fetchone()
    assert codes[0] == 1


def test_reloaded_callback_is_a_clear_page(broker: Broker) -> None:
    """A reload of the callback shows a page (409), never a 500 or a second code."""
    client = broker.register()
    page = broker.authorize(client, pkce_pair()[1])
    form = {**broker.consent_form(page), "decision": "allow"}
    callback = broker.forgejo_login(_location(broker.post_form("/oauth/consent", form)))
    assert broker.get(callback).code == 302
    reload = broker.get(callback)
    assert reload.code == 409 and "already finished" in broker.text_of(reload)
    codes = broker.store.conn.execute("SELECT count(*) FROM auth_codes").fetchone()
    assert codes[0] == 1


def test_callback_with_a_stolen_state_cannot_cancel_the_login(broker: Broker) -> None:
    """
    Someone who learns the state but lacks the browser's binding cookie gets
    an error page, and the real browser's login still completes.
    """
    client = broker.register()
    page = broker.authorize(client, pkce_pair()[1])
    form = {**broker.consent_form(page), "decision": "allow"}
    callback = broker.forgejo_login(_location(broker.post_form("/oauth/consent", form)))
    mine = dict(broker.cookies)
    broker.cookies = {}
    attacker = broker.get(callback)
    assert attacker.code == 400 and "another browser" in broker.text_of(attacker)
    broker.cookies = mine
    assert "code" in query_of(_location(broker.get(callback)))


def test_reused_authorize_url_starts_a_fresh_flow(broker: Broker) -> None:
    """Observed: a reused authorize URL. Each visit is a new, working flow."""
    client = broker.register()
    for _ in range(2):
        code, verifier, _answer = broker.login(client, prompt="consent")
        assert broker.exchange(client, code, verifier).code == 200


# --- token endpoint signals -------------------------------------------------------


def test_unknown_or_deleted_client_is_invalid_client(broker: Broker) -> None:
    """
    An unknown client, or one deleted after it got tokens, is 401
    invalid_client at the token endpoint (Claude.ai then registers again).
    """
    client = broker.register()
    tokens = broker.tokens_for(client)
    unknown = broker.token(
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        {**client, "client_id": "fjc_unknown"},
    )
    assert unknown.code == 401
    assert broker.json_of(unknown)["error"] == "invalid_client"
    broker.store.conn.execute(
        "DELETE FROM clients WHERE client_id = ?", (client["client_id"],)
    )
    gone = broker.token(
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        client,
    )
    assert gone.code == 401
    assert broker.json_of(gone)["error"] == "invalid_client"
    code = broker.token(
        {"grant_type": "authorization_code", "code": "x", "code_verifier": "y"},
        client,
    )
    assert broker.json_of(code)["error"] == "invalid_client"


# --- hypothesis over every form field ---------------------------------------------

_AUTHORIZE_FIELDS = st.sampled_from(
    [
        "response_type",
        "client_id",
        "redirect_uri",
        "code_challenge",
        "code_challenge_method",
        "state",
        "scope",
        "resource",
        "prompt",
    ]
)
_TOKEN_FIELDS = st.sampled_from(
    [
        "grant_type",
        "code",
        "code_verifier",
        "redirect_uri",
        "client_id",
        "client_secret",
        "refresh_token",
        "resource",
        "scope",
        "token",
        "token_type_hint",
    ]
)


def _valid_authorize(broker: Broker) -> dict[str, str]:
    client = broker.register()
    return broker.authorize_params(client, pkce_pair()[1])


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.dictionaries(_AUTHORIZE_FIELDS, st.text(max_size=40) | _ANY_TEXT, max_size=4),
    st.sampled_from(["/oauth/authorize", "/authorize"]),
)
def test_authorize_any_field_values_never_500(
    changes: dict[str, str], path: str
) -> None:
    """Any value in any authorize field, on top of a valid request: no 500."""
    broker = _shared()
    params = {**_valid_authorize(broker), **changes}
    encoded = {
        k: v.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        for k, v in params.items()
    }
    response = broker.get(path, params=encoded)
    assert response.code in (200, 302, 400, 403)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.dictionaries(
        st.sampled_from(["request", "csrf", "decision"]), st.text(max_size=60)
    ),
    st.booleans(),
)
def test_consent_any_field_values_never_500(
    changes: dict[str, str], from_page: bool
) -> None:
    """Any value in any consent field, starting from a real form or not: no 500."""
    broker = _shared()
    form: dict[str, str] = {}
    if from_page:
        client = broker.register()
        form = broker.consent_form(broker.authorize(client, pkce_pair()[1]))
        form["decision"] = "allow"
    response = broker.post_form("/oauth/consent", {**form, **changes})
    assert response.code in (303, 400, 403, 409)


@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(["/oauth/token", "/token", "/oauth/revoke"]),
    st.dictionaries(_TOKEN_FIELDS, st.text(max_size=60), max_size=7),
    st.booleans(),
)
def test_token_and_revoke_any_field_values_never_500(
    path: str, changes: dict[str, str], real_client: bool
) -> None:
    """Any value in any token or revoke field, with a real client or not: no 500."""
    broker = _shared()
    form: dict[str, str] = {}
    if real_client:
        form["client_id"] = broker.register()["client_id"]
    response = broker.post_form(path, {**form, **changes})
    assert response.code in (200, 400, 401)


# --- already in place, kept -----------------------------------------------------


def test_unknown_scopes_are_dropped_and_offline_access_accepted(broker: Broker) -> None:
    """
    Observed (Claude.ai): ``scope`` with stray spaces, offline_access and an
    unknown string: the flow goes on and grants mcp, with a refresh token
    because the client registered the refresh grant.
    """
    client = broker.register()
    code, verifier, _ = broker.login(
        client, scope="  offline_access  profile:read ", prompt="consent"
    )
    tokens = broker.json_of(broker.exchange(client, code, verifier))
    assert tokens["scope"] == "mcp" and tokens["refresh_token"]


def test_access_token_ttl_is_configurable() -> None:
    """access_token_ttl sets expires_in and when the bearer check refuses it."""
    broker = Broker(access_token_ttl=120.0)
    client = broker.register()
    tokens = broker.tokens_for(client)
    assert tokens["expires_in"] == 120
    assert broker.bearer_ok(tokens["access_token"])
    broker.clock.advance(121)
    assert not broker.bearer_ok(tokens["access_token"])


def test_every_authorization_response_carries_iss(broker: Broker) -> None:
    """RFC 9207: the code, a denial and a redirected error all carry iss."""
    client = broker.register()
    _code, _verifier, answer = broker.login(client)
    assert query_of(_location(answer))["iss"] == broker.config.public_url
    page = broker.authorize(client, pkce_pair()[1], prompt="consent")
    denied = broker.post_form(
        "/oauth/consent", {**broker.consent_form(page), "decision": "deny"}
    )
    assert query_of(_location(denied))["iss"] == broker.config.public_url
    bad = broker.authorize(client, pkce_pair()[1], code_challenge_method="plain")
    assert query_of(_location(bad))["iss"] == broker.config.public_url
    metadata = broker.json_of(broker.get("/.well-known/oauth-authorization-server"))
    assert metadata["authorization_response_iss_parameter_supported"] is True
