# -*- test-case-name: tests.maintenance -*-
"""Tests for fjmcp."""
