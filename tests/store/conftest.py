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
from tests.store.support import (
    DIALECTS,
    ScratchSchema,
    open_memory_store,
    postgres_skip_reason,
    postgres_url,
)


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


@pytest.fixture
def scratch_schema() -> Iterator[ScratchSchema]:
    """A PostgreSQL schema of this test's own, dropped after it (or a skip)."""
    base = postgres_url()
    if base is None:
        pytest.skip(postgres_skip_reason())
    scratch = ScratchSchema.create(base)
    yield scratch
    scratch.drop()
