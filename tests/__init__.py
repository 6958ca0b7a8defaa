# -*- test-case-name: tests -*-
"""Tests for fjmcp."""
