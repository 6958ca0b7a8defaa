"""SQLite store on adbapi: pool, migrations and queries."""
