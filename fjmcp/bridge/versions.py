# -*- test-case-name: tests.bridge.test_envelope -*-
"""
The MCP protocol versions the broker serves, in one place: the
session-based ones a client negotiates with ``initialize`` (and the broker
offers a child it initializes itself), and the stateless ones a request
names in its ``_meta``.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "HANDSHAKE_VERSIONS",
    "MODERN_VERSIONS",
    "SUPPORTED_VERSIONS",
    "version_at_least",
]

#: Session-based protocol versions, oldest first.
HANDSHAKE_VERSIONS: Final = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
#: The old name of `HANDSHAKE_VERSIONS` (``/mcp`` and its tests use it).
SUPPORTED_VERSIONS: Final = HANDSHAKE_VERSIONS
#: Stateless protocol versions (every request carries its version), oldest first.
MODERN_VERSIONS: Final = ("2026-07-28",)


def version_at_least(version: str | None, floor: str) -> bool:
    """Whether ``version`` is a session-based version no older than ``floor``."""
    if version not in HANDSHAKE_VERSIONS:
        return False
    return HANDSHAKE_VERSIONS.index(version) >= HANDSHAKE_VERSIONS.index(floor)
