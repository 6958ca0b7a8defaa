# -*- test-case-name: tests.admin -*-
"""Tests for fjmcp."""
