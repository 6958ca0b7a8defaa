# -*- test-case-name: tests.upstream -*-
"""The Forgejo client: OAuth2 provider and API calls (see `fjmcp.upstream.forgejo`)."""
