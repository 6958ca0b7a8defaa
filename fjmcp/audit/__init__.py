# -*- test-case-name: tests.audit -*-
"""The audit log: who did what through the broker, one JSON line per event."""

from typing import Final

#: The `twisted.logger` namespace of audit events: the main log leaves them
#: out, the audit file takes only them.
AUDIT_NAMESPACE: Final = "fjmcp.audit"
