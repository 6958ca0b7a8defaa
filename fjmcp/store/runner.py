# -*- test-case-name: tests.store.test_grants -*-
"""
What query modules need of a store: ``run(txn_fn, *args)``.

`fjmcp.store.store.Store` provides it (a Deferred from the pool's thread);
tests use a synchronous in-memory store that returns fired Deferreds. The
query modules' async wrappers are typed against this protocol so that both
fit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from fjmcp.store.dialect import Txn

__all__ = ["Cursor", "TxnRunner"]

T = TypeVar("T")

#: What a transaction function receives: a DB-API cursor and its dialect.
Cursor = Txn


class TxnRunner(Protocol):
    """Runs one transaction function ``fn(cursor, *args)``."""

    def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Awaitable[T]:
        """Run ``fn`` in one transaction; the awaitable gives its result."""
