# -*- test-case-name: tests.oauth.test_errors_metadata -*-
"""
OAuth errors as exceptions, rendered once as RFC 6749 JSON.

Domain code raises a subclass of `OAuthError`; the web layer's single
``handle_errors`` turns it into the status, headers and
``{"error": ..., "error_description": ...}`` body of RFC 6749 §5.2 (RFC
7591 §3.2.2 for registration, RFC 7009 for revocation). Descriptions are
written for client developers and never contain a secret.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import ClassVar

__all__ = [
    "AccessDeniedError",
    "ConsentRequiredError",
    "InvalidClientError",
    "InvalidClientMetadataError",
    "InvalidGrantError",
    "InvalidRedirectUriError",
    "InvalidRequestError",
    "InvalidScopeError",
    "InvalidTargetError",
    "LoginRequiredError",
    "OAuthError",
    "RateLimitedError",
    "ServerError",
    "TemporarilyUnavailableError",
    "UnauthorizedClientError",
    "UnsupportedGrantTypeError",
    "UnsupportedResponseTypeError",
]


class OAuthError(Exception):
    """An OAuth error response: ``error`` code, description, HTTP status."""

    error: ClassVar[str] = "invalid_request"
    status: ClassVar[int] = 400

    def __init__(
        self, description: str = "", *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{self.error}: {description}" if description else self.error)
        self.description = description
        self.headers = dict(headers or {})

    def body(self) -> dict[str, str]:
        """The JSON object of the error response."""
        out = {"error": self.error}
        if self.description:
            out["error_description"] = self.description
        return out

    def json(self) -> bytes:
        """The encoded body."""
        return json.dumps(self.body()).encode("utf-8")


class InvalidRequestError(OAuthError):
    """A parameter is missing, repeated, malformed or not allowed."""

    error = "invalid_request"


class InvalidClientError(OAuthError):
    """
    Client authentication failed (unknown client, wrong secret, wrong
    method): 401, with ``WWW-Authenticate: Basic`` when Basic was tried.
    """

    error = "invalid_client"
    status = 401


class InvalidGrantError(OAuthError):
    """The code or refresh token is invalid, expired, used, revoked or foreign."""

    error = "invalid_grant"


class UnauthorizedClientError(OAuthError):
    """The client may not use this grant type (not in its ``grant_types``)."""

    error = "unauthorized_client"


class UnsupportedGrantTypeError(OAuthError):
    """The grant type is not one the broker implements."""

    error = "unsupported_grant_type"


class UnsupportedResponseTypeError(OAuthError):
    """``response_type`` is not ``code``."""

    error = "unsupported_response_type"


class InvalidScopeError(OAuthError):
    """The requested scope exceeds what was granted."""

    error = "invalid_scope"


class InvalidTargetError(OAuthError):
    """The ``resource`` (RFC 8707) is not this broker's ``/mcp``."""

    error = "invalid_target"


class AccessDeniedError(OAuthError):
    """The user (or Forgejo) refused the authorization."""

    error = "access_denied"
    status = 403


class ConsentRequiredError(OAuthError):
    """``prompt=none`` but the user's consent is needed."""

    error = "consent_required"


class LoginRequiredError(OAuthError):
    """``prompt=none`` but the user must log in."""

    error = "login_required"


class InvalidRedirectUriError(OAuthError):
    """A registration's redirect URI is not allowed (RFC 7591)."""

    error = "invalid_redirect_uri"


class InvalidClientMetadataError(OAuthError):
    """A registration's metadata is invalid (RFC 7591)."""

    error = "invalid_client_metadata"


class ServerError(OAuthError):
    """Something failed inside the broker (details only in the log)."""

    error = "server_error"
    status = 500


class TemporarilyUnavailableError(OAuthError):
    """Forgejo or the store is unavailable for now; try again later."""

    error = "temporarily_unavailable"
    status = 503


class RateLimitedError(OAuthError):
    """Too many requests from this client or address; ``Retry-After`` says when."""

    error = "temporarily_unavailable"
    status = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"too many requests; retry after {retry_after} seconds",
            headers={"Retry-After": str(retry_after)},
        )
        self.retry_after = retry_after
