# -*- test-case-name: tests.store -*-
"""Numbered SQL migrations, shipped as package data."""
