# -*- test-case-name: tests.oauth.test_client_documents -*-
"""Tests for `fjmcp.oauth.client_documents`: what a metadata document must say."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fjmcp.oauth.client_documents import (
    ClientDocument,
    ClientDocumentError,
    client_id_url_problem,
    display_name,
    validate_client_document,
)

URL = "https://app.example/oauth/client.json"
DOC: dict[str, Any] = {
    "client_id": URL,
    "client_name": "App",
    "redirect_uris": ["https://app.example/cb"],
}


def test_a_minimal_document_is_a_public_client() -> None:
    """client_id and redirect_uris suffice: none, authorization_code only."""
    doc = validate_client_document(DOC, URL)
    assert (doc.auth_method, doc.grant_types) == ("none", ("authorization_code",))
    assert doc.redirect_uris == ("https://app.example/cb",)
    assert doc.metadata["client_id"] == URL


def test_grant_types_the_broker_does_not_serve_are_dropped() -> None:
    """Claude.ai lists jwt-bearer beside the code and refresh grants."""
    doc = validate_client_document(
        {
            **DOC,
            "grant_types": [
                "authorization_code",
                "refresh_token",
                "urn:ietf:params:oauth:grant-type:jwt-bearer",
            ],
        },
        URL,
    )
    assert doc.grant_types == ("authorization_code", "refresh_token")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"client_id": URL + "x"}, "not the URL"),
        ({"client_id": None}, "not the URL"),
        ({"redirect_uris": []}, "no redirect_uris"),
        ({"redirect_uris": None}, "no redirect_uris"),
        ({"redirect_uris": "https://app.example/cb"}, "list"),
        ({"redirect_uris": ["http://evil.example/cb"]}, "loopback"),
        ({"token_endpoint_auth_method": "client_secret_basic"}, "shared secret"),
        ({"token_endpoint_auth_method": ["none"]}, "must be a string"),
        ({"token_endpoint_auth_method": "tls_client_auth"}, "not supported"),
        ({"token_endpoint_auth_method": "private_key_jwt"}, "jwks"),
        ({"grant_types": ["refresh_token"]}, "authorization_code"),
        ({"response_types": ["token"]}, "code"),
        ({"client_name": 5}, "client_name"),
        ({"jwks": {"keys": []}}, "jwks"),
        ({"jwks_uri": "http://app.example/jwks"}, "jwks_uri"),
        ({"jwks": {"keys": [{}]}, "jwks_uri": "https://app.example/j"}, "not both"),
    ],
)
def test_bad_documents_are_refused_with_a_reason(
    change: dict[str, Any], words: str
) -> None:
    """Each defect gives a `ClientDocumentError` saying what is wrong."""
    with pytest.raises(ClientDocumentError, match=words):
        validate_client_document({**DOC, **change}, URL)


def test_private_key_jwt_with_keys() -> None:
    """private_key_jwt is accepted with jwks or jwks_uri, kept in metadata."""
    keys = {"keys": [{"kty": "EC"}]}
    doc = validate_client_document(
        {**DOC, "token_endpoint_auth_method": "private_key_jwt", "jwks": keys}, URL
    )
    assert (doc.auth_method, doc.jwks) == ("private_key_jwt", keys)
    uri = "https://app.example/jwks.json"
    doc = validate_client_document(
        {**DOC, "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": uri}, URL
    )
    assert doc.jwks_uri == uri and doc.metadata["jwks_uri"] == uri


def test_a_method_the_broker_does_not_serve_is_refused() -> None:
    """Without private_key_jwt in the registry, a document declaring it fails."""
    with pytest.raises(ClientDocumentError, match="use none"):
        validate_client_document(
            {**DOC, "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": URL},
            URL,
            served_methods=("none",),
        )


def test_names_lose_control_and_bidi_characters() -> None:
    """A name cannot carry direction overrides or control characters."""
    assert display_name("Good\u202eppA\u0000 \n Name\ud800") == "GoodppA Name"
    doc = validate_client_document({**DOC, "client_name": "\u202e\u200b"}, URL)
    assert doc.client_name is None


@pytest.mark.parametrize(
    "url",
    [
        "http://app.example/client.json",
        "https://app.example",
        "https://app.example/",
        "https://user@app.example/c",
        "https://app.example/c#f",
        "https://app.example/a/../c",
        "https://app.example/a b",
        "https://app.example:99999/c",
        "https://" + "a" * 2000 + ".example/c",
        "",
    ],
)
def test_client_id_urls_must_be_plain_https_with_a_path(url: str) -> None:
    """Bad document URLs are named as such."""
    assert client_id_url_problem(url) is not None


def test_good_client_id_url() -> None:
    """The vendors' URLs pass."""
    assert (
        client_id_url_problem("https://claude.ai/oauth/mcp-oauth-client-metadata")
        is None
    )


_json: Any = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
_fields = st.sampled_from(
    [
        "client_id",
        "redirect_uris",
        "token_endpoint_auth_method",
        "grant_types",
        "response_types",
        "client_name",
        "jwks",
        "jwks_uri",
        "client_uri",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_fields, _json, max_size=9), _json)
def test_any_json_gives_a_document_or_a_clear_error(fields: Any, other: Any) -> None:
    """Whatever the JSON, the answer is a document or a ClientDocumentError."""
    for candidate in ({**DOC, **fields}, other):
        try:
            doc = validate_client_document(candidate, URL)
        except ClientDocumentError as e:
            assert str(e)
        else:
            assert isinstance(doc, ClientDocument) and doc.client_id == URL
