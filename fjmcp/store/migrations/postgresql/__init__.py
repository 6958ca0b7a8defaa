# -*- test-case-name: tests.store.test_postgres -*-
"""PostgreSQL's migrations: the same versions as SQLite's, in its own SQL."""
