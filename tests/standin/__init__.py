# -*- test-case-name: tests.standin -*-
"""Tests for fjmcp."""
