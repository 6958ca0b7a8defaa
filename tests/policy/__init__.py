# -*- test-case-name: tests.policy -*-
"""Tests of `fjmcp.policy`."""
