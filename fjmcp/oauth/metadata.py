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

from typing import Any, Final
from urllib.parse import urlsplit

from fjmcp.oauth.challenge import MCP_SCOPE

__all__ = [
    "AUTH_METHODS",
    "authorization_server_metadata",
    "endpoint",
    "protected_resource_metadata",
    "resource_url",
    "same_resource",
]

AUTH_METHODS: Final = ("client_secret_basic", "client_secret_post", "none")
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


def authorization_server_metadata(public_url: str) -> dict[str, Any]:
    """The RFC 8414 document; ``issuer`` is exactly ``public_url``."""
    return {
        "issuer": public_url,
        "authorization_endpoint": endpoint(public_url, "/oauth/authorize"),
        "token_endpoint": endpoint(public_url, "/oauth/token"),
        "registration_endpoint": endpoint(public_url, "/oauth/register"),
        "revocation_endpoint": endpoint(public_url, "/oauth/revoke"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "scopes_supported": [MCP_SCOPE, OFFLINE_ACCESS],
        "authorization_response_iss_parameter_supported": True,
    }


def protected_resource_metadata(public_url: str) -> dict[str, Any]:
    """The RFC 9728 document of ``/mcp``."""
    return {
        "resource": resource_url(public_url),
        "authorization_servers": [public_url],
        "scopes_supported": [MCP_SCOPE],
        "bearer_methods_supported": ["header"],
        "resource_name": "fjmcp (Forgejo MCP broker)",
    }
