# -*- test-case-name: tests.oauth.test_registration -*-
"""Tests for `fjmcp.oauth.registration`: redirect URIs and client metadata."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fjmcp.oauth.errors import InvalidRedirectUriError, OAuthError
from fjmcp.oauth.registration import (
    display_name,
    is_native_redirect,
    redirect_matches,
    redirect_problem,
    validate_registration,
)


@pytest.mark.parametrize(
    ("uri", "ok"),
    [
        ("https://app.example/cb", True),
        ("https://app.example:8443/cb?x=1", True),
        ("http://127.0.0.1/cb", True),
        ("http://127.0.0.1:8080/cb", True),
        ("http://[::1]:9/cb", True),
        ("http://localhost/cb", True),
        ("com.example.app:/oauth", True),
        ("http://example.com/cb", False),
        ("http://127.0.0.1.evil.example/cb", False),
        ("https://a/cb#x", False),
        ("https://u@a/cb", False),
        ("https://a:99999/cb", False),
        ("javascript:alert(1)", False),
        ("file:///etc/passwd", False),
        ("https://a/\ncb", False),
        ("//a/cb", False),
        ("cb", False),
    ],
)
def test_redirect_uri_rules(uri: str, ok: bool) -> None:
    """https, loopback http and private-use schemes only."""
    assert (redirect_problem(uri) is None) is ok


@pytest.mark.parametrize(
    ("uri", "native"),
    [
        ("https://app.example/cb", False),
        ("http://127.0.0.1:5/cb", True),
        ("http://localhost/cb", True),
        ("com.example.app:/cb", True),
    ],
)
def test_native_redirects(uri: str, native: bool) -> None:
    """Loopback and private-use redirects are on the user's own machine."""
    assert is_native_redirect(uri) is native


def test_defaults_and_kept_fields() -> None:
    """RFC 7591 defaults apply; known fields are kept, unknown ones dropped."""
    reg = validate_registration(
        {
            "redirect_uris": ["https://a.example/cb", "https://a.example/cb"],
            "client_name": "A",
            "software_id": "x",
            "application_type": "web",
            "unknown": 1,
        }
    )
    assert reg.auth_method == "client_secret_basic"
    assert reg.grant_types == ("authorization_code",)
    assert reg.redirect_uris == ("https://a.example/cb",)
    assert "unknown" not in reg.metadata and reg.metadata["software_id"] == "x"


def test_null_fields_take_their_defaults() -> None:
    """
    Optional fields sent as JSON null (as some serializers do) are absent:
    the RFC 7591 defaults apply instead of an error.
    """
    reg = validate_registration(
        {
            "redirect_uris": ["http://127.0.0.1:3000/cb"],
            "token_endpoint_auth_method": "none",
            "grant_types": None,
            "response_types": None,
            "contacts": None,
            "client_uri": None,
            "application_type": None,
            "client_name": None,
        }
    )
    assert reg.grant_types == ("authorization_code",)
    assert reg.auth_method == "none"
    assert reg.client_name is None
    assert set(reg.metadata) == {
        "redirect_uris",
        "token_endpoint_auth_method",
        "grant_types",
        "response_types",
    }
    with pytest.raises(InvalidRedirectUriError):
        validate_registration({"redirect_uris": None})


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "redirect_uris",
                "grant_types",
                "response_types",
                "token_endpoint_auth_method",
                "client_name",
                "logo_uri",
                "contacts",
                "application_type",
            ]
        ),
        st.none()
        | st.text(max_size=40)
        | st.integers()
        | st.lists(st.text(max_size=40) | st.integers(), max_size=4),
        max_size=6,
    )
)
def test_any_document_validates_or_is_an_oauth_error(doc: dict[str, Any]) -> None:
    """Any document gives a Registration or an OAuth error, nothing else."""
    try:
        validate_registration(doc)
    except OAuthError as e:
        assert e.error in ("invalid_redirect_uri", "invalid_client_metadata")


# --- hardening: any JSON type, hostile text, oversized values ------------------

_OK_URIS = ["https://a.example/cb"]


@pytest.mark.parametrize(
    "change",
    [
        {"token_endpoint_auth_method": ["none"]},
        {"token_endpoint_auth_method": {"none": 1}},
        {"token_endpoint_auth_method": 1},
        {"application_type": ["web"]},
        {"application_type": {"web": True}},
        {"grant_types": [["authorization_code"]]},
        {"grant_types": "authorization_code"},
        {"response_types": [{"code": 1}]},
        {"client_name": 7},
        {"client_name": ["x"]},
        {"client_name": "lone \ud800 surrogate"},
        {"client_name": "Claude\u202e.evil"},
        {"client_name": "Good\u2066App\u2069"},
        {"client_name": "bell\x07"},
        {"client_name": "x" * 201},
        {"contacts": ["a@b"] * 11},
        {"contacts": ["\udfff@b"]},
        {"software_id": "\ud83d"},
        {"logo_uri": 1.5},
        {"scope": "x" * 1001},
    ],
)
def test_hostile_metadata_is_invalid_client_metadata(change: dict[str, Any]) -> None:
    """
    Wrong JSON types, lone surrogates, control and bidi-override characters
    and oversized values are refused with invalid_client_metadata and a
    description.
    """
    with pytest.raises(OAuthError) as caught:
        validate_registration({"redirect_uris": _OK_URIS, **change})
    assert caught.value.error == "invalid_client_metadata"
    assert caught.value.description


@pytest.mark.parametrize(
    "uris",
    [
        ["https://a.example/\ud800"],
        [["https://a.example/cb"]],
        [{"uri": "https://a.example/cb"}],
        ["https://a.example/cb"] * 21,
        ["https://a.example/" + "x" * 2001],
        "https://a.example/cb",
    ],
)
def test_hostile_redirect_uris_are_invalid_redirect_uri(uris: Any) -> None:
    """Bad redirect URI lists are refused with invalid_redirect_uri."""
    with pytest.raises(InvalidRedirectUriError) as caught:
        validate_registration({"redirect_uris": uris})
    assert caught.value.description


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("Claude", "Claude"),
        ("Claude\u202e.evil", "Claude.evil"),
        ("\u2066\u2069", None),
        ("a\ud800b", "ab"),
        ("tab\there", "tabhere"),
        (None, None),
    ],
)
def test_display_name_strips_what_could_spoof(
    name: str | None, shown: str | None
) -> None:
    """Names from any source lose control, bidi and surrogate characters."""
    assert display_name(name) == shown


# --- loopback redirect URIs (RFC 8252 §7.3) ------------------------------------


@pytest.mark.parametrize(
    ("registered", "given", "ok"),
    [
        ("http://127.0.0.1/callback", "http://127.0.0.1:53682/callback", True),
        ("http://127.0.0.1:1/callback", "http://127.0.0.1:2/callback", True),
        ("http://[::1]/cb", "http://[::1]:40000/cb", True),
        (
            "http://localhost:6274/oauth/callback",
            "http://localhost:9/oauth/callback",
            True,
        ),
        ("http://localhost/cb?x=1", "http://localhost:5/cb?x=1", True),
        ("http://127.0.0.1/callback", "http://127.0.0.1:5/callback/", False),
        ("http://127.0.0.1/callback", "http://127.0.0.1:5/other", False),
        ("http://127.0.0.1/callback", "https://127.0.0.1:5/callback", False),
        ("http://127.0.0.1/callback", "http://localhost:5/callback", False),
        ("http://localhost/cb", "http://[::1]:5/cb", False),
        ("http://127.0.0.1/cb", "http://127.0.0.1:99999/cb", False),
        ("http://127.0.0.1/cb", "http://u@127.0.0.1:5/cb", False),
        ("http://127.0.0.2/cb", "http://127.0.0.2:5/cb", False),
        ("http://app.localhost/cb", "http://app.localhost:5/cb", False),
        ("https://app.example/cb", "https://app.example:444/cb", False),
        ("https://app.example/cb", "https://app.example/cb", True),
        ("com.example.app:/cb", "com.example.app:/cb", True),
    ],
)
def test_redirect_matching(registered: str, given: str, ok: bool) -> None:
    """
    The port of an http loopback redirect is ignored (127.0.0.1, [::1],
    and localhost as an interop extension); everything else is exact.
    """
    assert redirect_matches(registered, given) is ok


@given(st.text(max_size=60), st.text(max_size=60))
def test_redirect_matching_never_raises(registered: str, given: str) -> None:
    """Any two strings give an answer; a string always matches itself."""
    assert isinstance(redirect_matches(registered, given), bool)
    assert redirect_matches(given, given)
