# -*- test-case-name: tests.test_settings -*-
"""
The maintenance timers' settings: how often each looks, and how far ahead.

Built from the configuration by `fjmcp.settings`; the idle reaper and the
token refresher each read their part of this one value, so neither needs the
whole configuration.
"""

from __future__ import annotations

from attrs import frozen

__all__ = ["MaintenanceSettings"]


@frozen(kw_only=True)
class MaintenanceSettings:
    """
    :param reaper_interval: seconds between idle-reaper ticks.
    :param idle_timeout: seconds of inactivity after which a session ends
        (``session_idle_timeout``).
    :param refresh_interval: seconds between token-refresher ticks.
    :param refresh_margin: refresh a Forgejo token expiring within this many
        seconds.
    :param user_check_interval: at most one ``/api/v1/user`` check per user
        with live sessions in this many seconds.
    :param retry_initial: first backoff delay after Forgejo was unavailable
        for a refresh; doubled on each further failure, up to ``retry_max``.
    :param retry_attempts: tries per refresh before waiting for the next tick.
    :param max_concurrent: refreshes running at once (and, separately, user
        checks running at once).
    :param node_id: this node's name on the refresh leases of the store.
    :param lease_seconds: how long a refresh lease lasts if its node dies.
    :param client_retention: seconds a dynamic registration without a live
        token is kept after its last use (the purger).
    """

    reaper_interval: float
    idle_timeout: float
    refresh_interval: float
    refresh_margin: float
    user_check_interval: float
    retry_initial: float = 2.0
    retry_max: float = 60.0
    retry_attempts: int = 5
    max_concurrent: int = 4
    node_id: str = "local"
    lease_seconds: float = 120.0
    client_retention: float = 30 * 24 * 3600.0
