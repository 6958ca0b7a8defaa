# -*- test-case-name: tests.supervisor.test_uids -*-
"""Per-user uids from child_uid_range."""

from __future__ import annotations

import pytest
from twisted.internet.defer import Deferred, succeed

from fjmcp.supervisor.uids import UidAllocator, UidRangeFullError


def test_each_user_gets_a_uid_of_their_own_and_keeps_it() -> None:
    """Lowest free uid first; the same login gets the same uid; each new
    one is written to the store; rows loaded at start-up are honoured."""
    written: list[tuple[str, int]] = []

    def persist(login: str, uid: int) -> Deferred[None]:
        written.append((login, uid))
        return succeed(None)

    alloc = UidAllocator(200000, 3, persist)
    alloc.load({"carol": 200000})
    assert alloc.uid_for("alice") == 200001
    assert alloc.uid_for("bob") == 200002
    assert alloc.uid_for("alice") == 200001
    assert alloc.uid_for("carol") == 200000
    assert written == [("alice", 200001), ("bob", 200002)]


def test_a_full_range_is_refused() -> None:
    """No uid is ever shared: a full range raises instead."""
    alloc = UidAllocator(10, 1, lambda login, uid: succeed(None))
    assert alloc.uid_for("alice") == 10
    with pytest.raises(UidRangeFullError, match="full"):
        alloc.uid_for("bob")
