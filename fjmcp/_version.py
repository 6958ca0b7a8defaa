# -*- test-case-name: tests.test_buildinfo -*-
"""
fjmcp's version, written here once.

``pyproject.toml`` reads it (setuptools' dynamic ``attr``), and the broker
reports it from here: asking ``importlib.metadata`` would cost a running
daemon that module and its helpers (about 0.4 MB) for one string.
"""

__version__ = "0.1.0"
