# -*- test-case-name: tests.test_awaitables -*-
"""
Await a result that may or may not be awaitable.

Several Twisted and in-tree calls return a `Deferred` on one implementation
and a plain value on another (``IListeningPort.stopListening``,
``Service.stopService``, the store's ``close``, a fake's methods). One helper
saves every caller from repeating the check.
"""

from __future__ import annotations

import inspect
from typing import Any

from twisted.internet.defer import Deferred

__all__ = ["maybe_await"]


async def maybe_await(value: Any) -> Any:
    """
    The result of ``value``: awaited when it is a `Deferred` or another
    awaitable, returned as it is otherwise.
    """
    if isinstance(value, Deferred) or inspect.isawaitable(value):
        return await value
    return value
