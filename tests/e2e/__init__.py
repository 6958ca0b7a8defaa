# -*- test-case-name: tests.e2e -*-
"""Tests for fjmcp."""
