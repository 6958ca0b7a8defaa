# -*- test-case-name: tests -*-
"""fjmcp: an MCP broker that puts a Forgejo instance in front of AI assistants."""

__all__: list[str] = []
