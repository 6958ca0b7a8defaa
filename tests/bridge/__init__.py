# -*- test-case-name: tests.bridge -*-
"""Tests for fjmcp."""
