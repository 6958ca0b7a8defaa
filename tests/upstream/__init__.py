# -*- test-case-name: tests.upstream -*-
"""Tests for fjmcp."""
