# -*- test-case-name: tests.oauth.test_bearer -*-
"""
The ``WWW-Authenticate`` challenge of ``/mcp`` (RFC 6750 + RFC 9728).

Every 401 from ``/mcp`` points the client at the protected-resource
metadata, built from ``public_url`` only (never from the request's Host),
and names the one scope it needs. ``error="invalid_token"`` is added only
when a token was sent (RFC 6750 §3.1: a request without credentials gets
no error code). ``offline_access`` is never named here (MCP 2025-11-25).
"""

from __future__ import annotations

from typing import Final, Protocol

__all__ = [
    "MCP_SCOPE",
    "READ_ONLY_SCOPE",
    "PROTECTED_RESOURCE_PATH",
    "challenge_header",
    "resource_metadata_url",
]

MCP_SCOPE: Final = "mcp"
#: Added to the scope of every token of a grant the user made read-only on
#: the consent page: the token carries its consent mode.
READ_ONLY_SCOPE: Final = "mcp:read-only"
PROTECTED_RESOURCE_PATH: Final = "/.well-known/oauth-protected-resource/mcp"


class _HasPublicUrl(Protocol):
    @property
    def public_url(self) -> str: ...


def resource_metadata_url(public_url: str) -> str:
    """Where ``/mcp``'s protected-resource metadata lives."""
    return public_url.rstrip("/") + PROTECTED_RESOURCE_PATH


def challenge_header(config: _HasPublicUrl, *, token_sent: bool) -> bytes:
    """The value of ``WWW-Authenticate`` for a 401 from ``/mcp``."""
    parts = [
        f'resource_metadata="{resource_metadata_url(config.public_url)}"',
        f'scope="{MCP_SCOPE}"',
    ]
    if token_sent:
        parts.append('error="invalid_token"')
    return ("Bearer " + ", ".join(parts)).encode("ascii")
