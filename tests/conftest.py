# -*- test-case-name: tests -*-
"""
Suite-wide settings: Hypothesis profiles; fixtures used in several
directories (``logged``).

``ci`` (the default) keeps example counts modest so the whole suite stays
fast on two cores; ``HYPOTHESIS_PROFILE=thorough`` runs many more.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogEvent, globalLogPublisher

settings.register_profile(
    "ci",
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def logged() -> Iterator[list[LogEvent]]:
    """Every log event published during the test."""
    observer = EventLoggingObserver()
    globalLogPublisher.addObserver(observer)
    try:
        yield observer  # type: ignore[misc]
    finally:
        globalLogPublisher.removeObserver(observer)
