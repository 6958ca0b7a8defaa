# -*- test-case-name: tests.web -*-
"""HTTP resources: the Site, Klein routes and the plain /mcp resource."""
