# -*- test-case-name: tests.test_settings -*-
"""
The admin channel's settings: where its socket is, and what the broker
tokens it mints look like.

Built from the configuration by `fjmcp.settings`, for the daemon's side and
for a command working on the store while no daemon runs alike.
"""

from __future__ import annotations

from pathlib import Path

from attrs import frozen

__all__ = ["AdminSettings"]


@frozen(kw_only=True)
class AdminSettings:
    """
    :param socket_path: the admin socket (``admin_socket``, or beside the
        store).
    :param token_audience: the audience of minted broker tokens (the MCP
        endpoint, ``<public_url>/mcp``).
    :param token_ttl: the lifetime of a minted token when none is asked
        (``access_token_ttl``).
    """

    socket_path: Path
    token_audience: str
    token_ttl: float
