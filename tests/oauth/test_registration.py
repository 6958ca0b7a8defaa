# -*- test-case-name: tests.oauth.test_registration -*-
"""Tests for `fjmcp.oauth.registration`: redirect URIs and client metadata."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fjmcp.oauth.errors import InvalidRedirectUriError, OAuthError
from fjmcp.oauth.registration import (
    is_native_redirect,
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
