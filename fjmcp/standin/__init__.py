# -*- test-case-name: tests.standin -*-
"""
A stand-in Forgejo for tests and the demo.

Loopback only, and never imported by production code: only the ``demo`` and
``standin-forgejo`` commands and the tests import it, lazily.
"""
