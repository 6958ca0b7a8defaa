# -*- test-case-name: tests.maintenance -*-
"""Timers: the idle reaper and the Forgejo token refresher."""
