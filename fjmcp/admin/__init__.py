# -*- test-case-name: tests.admin -*-
"""The admin channel: daemon-side socket and the fjmcp admin commands."""
