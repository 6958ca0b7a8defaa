# -*- test-case-name: tests.upstream.test_forgejo -*-
"""
The two ways a call to Forgejo can fail, as types the callers branch on.

The broker reacts to them differently: a `ForgejoAuthError` means Forgejo
refused the user's grant or token and the user must log in again (their
sessions end), while `ForgejoUnavailable` is transient (retry with backoff,
keep the sessions). Keeping them in their own module lets the OAuth and
maintenance code import them without importing the HTTP client.
"""

from __future__ import annotations

__all__ = ["ForgejoAuthError", "ForgejoError", "ForgejoUnavailable"]


class ForgejoError(Exception):
    """Any failure of a call to Forgejo."""


class ForgejoAuthError(ForgejoError):
    """
    Forgejo refused the credentials: the user must log in again.

    Raised for an OAuth error answer (4xx with an ``error`` member) from the
    token endpoint, e.g. ``invalid_grant`` or ``unauthorized_client``, and for
    a 401 or 403 from the API. ``error`` is the OAuth error code (or
    ``invalid_token`` for an API refusal); ``description`` is Forgejo's text,
    which never contains a token.
    """

    def __init__(self, error: str, description: str = "", *, status: int) -> None:
        super().__init__(f"Forgejo refused: {error} ({status}) {description}".strip())
        self.error = error
        self.description = description
        self.status = status


class ForgejoUnavailable(ForgejoError):  # noqa: N818 (the name the callers use)
    """
    Forgejo could not be asked or gave no usable answer; try again later.

    Raised for 5xx, 408 and 429 answers, timeouts, connection errors and
    malformed answers (not JSON, wrong shape, too large).
    """

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
