"""MCP sessions: registry, ownership of children, lifecycle."""
