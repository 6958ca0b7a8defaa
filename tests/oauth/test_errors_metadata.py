# -*- test-case-name: tests.oauth.test_errors -*-
"""Tests for `fjmcp.oauth.errors` and `fjmcp.oauth.metadata`."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fjmcp.oauth import errors
from fjmcp.oauth.metadata import (
    authorization_server_metadata,
    protected_resource_metadata,
    same_resource,
)


@pytest.mark.parametrize(
    ("cls", "code", "status"),
    [
        (errors.InvalidRequestError, "invalid_request", 400),
        (errors.InvalidClientError, "invalid_client", 401),
        (errors.InvalidGrantError, "invalid_grant", 400),
        (errors.UnauthorizedClientError, "unauthorized_client", 400),
        (errors.UnsupportedGrantTypeError, "unsupported_grant_type", 400),
        (errors.InvalidScopeError, "invalid_scope", 400),
        (errors.InvalidTargetError, "invalid_target", 400),
        (errors.InvalidRedirectUriError, "invalid_redirect_uri", 400),
        (errors.InvalidClientMetadataError, "invalid_client_metadata", 400),
        (errors.TemporarilyUnavailableError, "temporarily_unavailable", 503),
    ],
)
def test_error_codes_and_statuses(
    cls: type[errors.OAuthError], code: str, status: int
) -> None:
    """Each error renders RFC 6749 JSON with its code and status."""
    e = cls("why")
    assert e.status == status
    assert json.loads(e.json()) == {"error": code, "error_description": "why"}
    assert json.loads(cls().json()) == {"error": code}


def test_metadata_is_built_from_the_public_url_only() -> None:
    """Both documents derive every URL from the given public URL."""
    as_doc = authorization_server_metadata("https://mcp.example.org", ["none"])
    assert all(
        v.startswith("https://mcp.example.org")
        for k, v in as_doc.items()
        if k == "issuer" or k.endswith("_endpoint")
    )
    rs_doc = protected_resource_metadata("https://mcp.example.org")
    assert rs_doc["resource"] == "https://mcp.example.org/mcp"
    assert "offline_access" not in rs_doc["scopes_supported"]


def test_metadata_lists_the_methods_and_document_support_it_is_given() -> None:
    """
    The auth methods come from the caller (the registry); signing algorithms
    and ``client_id_metadata_document_supported`` appear only when given.
    """
    plain = authorization_server_metadata("https://mcp.example.org", ["none"])
    assert plain["token_endpoint_auth_methods_supported"] == ["none"]
    assert "client_id_metadata_document_supported" not in plain
    assert "token_endpoint_auth_signing_alg_values_supported" not in plain
    full = authorization_server_metadata(
        "https://mcp.example.org",
        ["none", "private_key_jwt"],
        signing_algs=["ES256", "RS256"],
        client_documents=True,
    )
    assert full["client_id_metadata_document_supported"] is True
    assert full["token_endpoint_auth_signing_alg_values_supported"] == [
        "ES256",
        "RS256",
    ]
    assert "none" in full["token_endpoint_auth_methods_supported"]


CANONICAL = "https://mcp.example.org/mcp"


@pytest.mark.parametrize(
    ("given", "same"),
    [
        (CANONICAL, True),
        ("HTTPS://MCP.Example.ORG/mcp", True),
        ("https://mcp.example.org:443/mcp", True),
        ("https://mcp.example.org/MCP", False),
        ("https://mcp.example.org/mcp/", True),
        ("HTTPS://MCP.example.org:443/mcp/", True),
        ("https://mcp.example.org/mcp//", False),
        ("https://mcp.example.org/mcp/x", False),
        ("https://mcp.example.org", False),
        ("http://mcp.example.org/mcp", False),
        ("https://mcp.example.org:8443/mcp", False),
        ("https://evil.example/mcp", False),
        ("https://mcp.example.org@evil.example/mcp", False),
        ("https://user@mcp.example.org/mcp", False),
        ("https://mcp.example.org/mcp?x=1", False),
        ("https://mcp.example.org/mcp#frag", False),
        ("https://mcp.example.org:bad/mcp", False),
        ("https://[::1/mcp", False),
        ("", False),
    ],
)
def test_same_resource(given: str, same: bool) -> None:
    """
    A resource parameter matches with another case of scheme and host, an
    explicit default port or one trailing slash, and with nothing else.
    """
    assert same_resource(given, CANONICAL) is same


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_same_resource_never_raises(given: str) -> None:
    """Any text gives a yes or no; a yes names our host, port and path."""
    result = same_resource(given, CANONICAL)
    assert isinstance(result, bool)
    if result:
        parts = urlsplit(given)
        assert parts.hostname == "mcp.example.org"
        assert parts.port in (None, 443)
        assert parts.path == "/mcp"
