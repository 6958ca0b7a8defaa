# -*- test-case-name: tests.store -*-
"""
The store suite's fixtures: every query test runs once per dialect in
`tests.store.support.DIALECTS`, on a fresh store opened through it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fjmcp.store.dialect import Dialect
from fjmcp.store.store import SyncStore
from tests.store.support import DIALECTS, open_memory_store


@pytest.fixture(params=DIALECTS, ids=lambda d: d.name)
def dialect(request: pytest.FixtureRequest) -> Dialect:
    """Each dialect the store speaks, in turn."""
    chosen: Dialect = request.param
    return chosen


@pytest.fixture
def memory_store(dialect: Dialect) -> Iterator[SyncStore]:
    """A fresh store at the shipped schema, through ``dialect``."""
    store = open_memory_store(dialect)
    yield store
    store.close()
