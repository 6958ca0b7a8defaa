"""A stand-in Forgejo for tests and the demo (loopback only; never imported by production code)."""
