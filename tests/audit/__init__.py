# -*- test-case-name: tests.audit -*-
"""Tests of the audit log."""
