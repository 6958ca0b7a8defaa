# -*- test-case-name: tests.supervisor -*-
"""Child processes: spawn, frame stdout, stop with TERM then KILL. Knows no HTTP."""
