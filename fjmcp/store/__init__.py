# -*- test-case-name: tests.store -*-
"""SQLite store on adbapi: pool, migrations and queries."""
