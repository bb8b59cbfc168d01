"""Inbound webhooks: signature checks, the receiver app and the inbox it writes to.

`receiver.create_app()` is the HTTP side; `inbox` is what the event processor reads;
`signatures` implements the schemes of `connectors.spec.Signature`.
"""

from integration_pipelines.webhooks.inbox import InboxEvent, counts, pending_events, record_event
from integration_pipelines.webhooks.signatures import SignatureError, SignedRequest, sign, verify

__all__ = [
    "InboxEvent",
    "SignatureError",
    "SignedRequest",
    "counts",
    "pending_events",
    "record_event",
    "sign",
    "verify",
]
