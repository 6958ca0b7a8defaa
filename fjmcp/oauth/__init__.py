# -*- test-case-name: tests.oauth -*-
"""OAuth 2.1 authorization server and protected-resource checks."""
