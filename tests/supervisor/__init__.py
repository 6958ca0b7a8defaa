"""Tests for fjmcp."""
