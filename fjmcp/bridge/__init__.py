# -*- test-case-name: tests.bridge -*-
"""JSON-RPC framing, routing and SSE between HTTP clients and stdio children."""
