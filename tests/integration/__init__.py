# -*- test-case-name: tests.integration -*-
"""Tests for fjmcp."""
