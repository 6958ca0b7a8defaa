# -*- test-case-name: tests.oauth.test_errors_metadata -*-
"""
The discovery documents: RFC 8414 (authorization server) and RFC 9728
(protected resource).

Every URL is built from ``public_url`` alone, never from the request's
``Host`` or ``X-Forwarded-*`` headers: a spoofed header must not be able to
point clients at another issuer. The broker is its own issuer; ``/mcp`` is
the one protected resource. ``offline_access`` appears only in the
authorization server's scopes (MCP 2025-11-25: not in the resource's).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import urlsplit

from fjmcp.oauth.challenge import MCP_SCOPE

__all__ = [
    "authorization_server_metadata",
    "endpoint",
    "protected_resource_metadata",
    "resource_url",
    "same_resource",
]

OFFLINE_ACCESS: Final = "offline_access"
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def endpoint(public_url: str, path: str) -> str:
    """An absolute URL of the broker."""
    return public_url.rstrip("/") + path


def resource_url(public_url: str) -> str:
    """The protected resource (and token audience): ``<public_url>/mcp``."""
    return endpoint(public_url, "/mcp")


def same_resource(given: str, canonical: str) -> bool:
    """
    Whether a client's ``resource`` parameter (RFC 8707) names the resource
    ``canonical``. Scheme and host compare case-insensitively and an
    explicit default port equals none (MCP 2025-11-25: servers SHOULD
    accept uppercase scheme and host); the path must be the same up to one
    trailing slash (``/mcp/`` is ``/mcp``: a mismatch there made a client
    and a proxy loop on re-authorization), and user
    information, a query or a fragment never match. Any text gives an
    answer, never an exception.
    """
    if given == canonical:
        return True
    try:
        a, b = urlsplit(given), urlsplit(canonical)
        a_port, b_port = a.port, b.port
    except ValueError:
        return False
    if "@" in a.netloc or a.query or a.fragment or "#" in given:
        return False
    scheme = a.scheme.lower()
    if scheme != b.scheme.lower() or not a.hostname or a.hostname != b.hostname:
        return False
    default = _DEFAULT_PORTS.get(scheme)
    same_path = a.path in (b.path, b.path + "/") or b.path == a.path + "/"
    return (a_port or default) == (b_port or default) and same_path


def authorization_server_metadata(
    public_url: str,
    auth_methods: Sequence[str],
    *,
    signing_algs: Sequence[str] = (),
    client_documents: bool = False,
) -> dict[str, Any]:
    """
    The RFC 8414 document; ``issuer`` is exactly ``public_url``.

    :param auth_methods: the client authentication methods served (the
        registry's), for the token and revocation endpoints.
    :param signing_algs: the JWS algorithms of ``private_key_jwt``.
    :param client_documents: whether a ``client_id`` may be a metadata
        document URL (Claude.ai takes that path only when this is true and
        ``none`` is among the methods, observed).
    """
    document: dict[str, Any] = {
        "issuer": public_url,
        "authorization_endpoint": endpoint(public_url, "/oauth/authorize"),
        "token_endpoint": endpoint(public_url, "/oauth/token"),
        "registration_endpoint": endpoint(public_url, "/oauth/register"),
        "revocation_endpoint": endpoint(public_url, "/oauth/revoke"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": list(auth_methods),
        "revocation_endpoint_auth_methods_supported": list(auth_methods),
        "scopes_supported": [MCP_SCOPE, OFFLINE_ACCESS],
        "authorization_response_iss_parameter_supported": True,
    }
    if signing_algs:
        document["token_endpoint_auth_signing_alg_values_supported"] = list(
            signing_algs
        )
        document["revocation_endpoint_auth_signing_alg_values_supported"] = list(
            signing_algs
        )
    if client_documents:
        document["client_id_metadata_document_supported"] = True
    return document


def protected_resource_metadata(public_url: str) -> dict[str, Any]:
    """The RFC 9728 document of ``/mcp``."""
    return {
        "resource": resource_url(public_url),
        "authorization_servers": [public_url],
        "scopes_supported": [MCP_SCOPE],
        "bearer_methods_supported": ["header"],
        "resource_name": "fjmcp (Forgejo MCP broker)",
    }
