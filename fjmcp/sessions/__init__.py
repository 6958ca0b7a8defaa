# -*- test-case-name: tests.sessions -*-
"""MCP sessions: registry, ownership of children, lifecycle."""
