# -*- test-case-name: tests.sessions -*-
"""Tests for fjmcp."""
