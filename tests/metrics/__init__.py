# -*- test-case-name: tests.metrics -*-
"""Tests of the metrics component."""
