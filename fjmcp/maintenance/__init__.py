"""Timers: the idle reaper and the Forgejo token refresher."""
