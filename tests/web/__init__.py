# -*- test-case-name: tests.web -*-
"""Tests for fjmcp."""
