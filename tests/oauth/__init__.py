# -*- test-case-name: tests.oauth -*-
"""Tests for fjmcp."""
