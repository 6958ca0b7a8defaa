# -*- test-case-name: tests.store -*-
"""Tests for fjmcp."""
