# -*- test-case-name: tests.store.test_postgres -*-
"""
``python tests/pg_probe.py URL``: exit 0 when a PostgreSQL server answers
at URL, else exit 1 printing why in one line. `make test` runs it to decide
whether the store suite's PostgreSQL half can run here.
"""

from __future__ import annotations

import sys

import psycopg


def main(argv: list[str]) -> int:
    """Connect once to ``argv[1]`` (3 s at most) and report."""
    try:
        psycopg.connect(argv[1], connect_timeout=3).close()
    except psycopg.Error as e:
        lines = str(e).strip().splitlines() or [type(e).__name__]
        print(lines[0].strip(), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
