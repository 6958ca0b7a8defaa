# -*- test-case-name: tests.metrics -*-
"""Prometheus metrics of the broker, served on their own listener."""
