# -*- test-case-name: tests.supervisor -*-
"""Tests for fjmcp."""
