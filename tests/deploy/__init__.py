# -*- test-case-name: tests.deploy -*-
"""Tests of the deployment artefacts: the image, the units, the Caddyfile."""
