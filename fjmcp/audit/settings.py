# -*- test-case-name: tests.audit.test_audit -*-
"""What the audit log is given: where it goes and when it rotates."""

from __future__ import annotations

from attrs import frozen

__all__ = ["AuditSettings"]


@frozen(kw_only=True)
class AuditSettings:
    """
    :param path: the audit file, ``-`` for standard output, empty for none.
    :param rotate_bytes: a file is rotated (``.1``, ``.2``...) past this size.
    :param keep: rotated files kept.
    :param flush_interval: seconds lines may wait in memory before a write.
    """

    path: str = ""
    rotate_bytes: int = 16 * 1024 * 1024
    keep: int = 10
    flush_interval: float = 1.0

    @property
    def enabled(self) -> bool:
        """Whether audit events are written anywhere."""
        return bool(self.path)
