# -*- test-case-name: tests.audit -*-
"""
The audit log: who did what through the broker, one JSON line per event,
in a file of its own (never in the main log).
"""
