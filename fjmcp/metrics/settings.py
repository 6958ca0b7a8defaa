# -*- test-case-name: tests.metrics.test_metrics -*-
"""What the metrics component is given: where ``GET /metrics`` listens."""

from __future__ import annotations

from attrs import frozen

__all__ = ["MetricsSettings"]


@frozen(kw_only=True)
class MetricsSettings:
    """
    :param listen: Twisted endpoint of the metrics listener; empty: no
        metrics at all (``prometheus_client`` is then never imported).
    """

    listen: str = ""

    @property
    def enabled(self) -> bool:
        """Whether metrics are collected and served."""
        return bool(self.listen)
