# -*- test-case-name: tests.supervisor.test_uids -*-
"""
A uid of its own for each Forgejo user's children, from ``child_uid_range``.

Two users' children under two uids cannot signal, trace or read each other
even without namespaces, and ``RLIMIT_NPROC`` (counted per uid) bounds one
user's processes. The allocation is kept in the store (never a hash two
users could share). A child is started synchronously, so the allocator
holds every row in memory (loaded once at start-up: one broker owns its
store) and gives a new user the lowest free uid at once, writing the row
behind; the table's unique keys stop a uid from ever going to two users.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from attrs import define, field
from twisted.internet.defer import Deferred
from twisted.logger import Logger

__all__ = ["UidAllocator", "UidRangeFullError"]


class UidRangeFullError(RuntimeError):
    """Every uid of the range is held by another user."""


@define
class UidAllocator:
    """
    Gives out uids of ``[first, first + count)`` to logins, remembering them.

    ``persist(login, uid)`` writes one new row (the store's
    ``put_child_uid_txn``); it is not awaited by `uid_for`.
    """

    log = Logger()

    first: int
    count: int
    persist: Callable[[str, int], Awaitable[object]]
    _by_login: dict[str, int] = field(factory=dict)
    _taken: set[int] = field(factory=set)

    def load(self, rows: dict[str, int]) -> None:
        """Take the rows read from the store at start-up."""
        self._by_login = dict(rows)
        self._taken = set(rows.values())

    def uid_for(self, login: str) -> int:
        """``login``'s uid, given now if it has none; `UidRangeFullError` if full."""
        uid = self._by_login.get(login)
        if uid is not None:
            return uid
        for candidate in range(self.first, self.first + self.count):
            if candidate not in self._taken:
                break
        else:
            raise UidRangeFullError(
                f"child_uid_range [{self.first}, {self.count}] is full: every uid "
                "belongs to another user; widen the range"
            )
        self._by_login[login] = candidate
        self._taken.add(candidate)
        self.log.info("user {user} gets child uid {uid}", user=login, uid=candidate)
        d = Deferred.fromCoroutine(self._write(login, candidate))
        d.addErrback(
            lambda f: self.log.failure(
                "could not record child uid {uid} of {user}",
                f,
                uid=candidate,
                user=login,
            )
        )
        return candidate

    async def _write(self, login: str, uid: int) -> None:
        await self.persist(login, uid)
