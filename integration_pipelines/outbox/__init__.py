"""The outbox: ATS changes on their way to partners, never lost and never sent twice.

* `changes` -- the ATS change API (`submit_candidate`, `update_submission`, `update_placement`):
  the ATS row and its outbox items are written in one transaction; `ats_changes_since` reads the
  outbox back as the ATS's change log (conflict resolution).
* `context`, `body` -- what an item sends: its outbound context (the record as changed, related
  rows with their partner ids, the record's own link, step results) mapped by the connector's
  `outbound` block with the inbound mapping engine; CSV layouts for file uploads.
* `delivery` -- `deliver_due`: claims due items one at a time (safe with several delivery
  processes), keeps each record's items in order, sends them with the connection's auth, rate
  limit and an Idempotency-Key, retries with backoff, dead-letters after the bound.
* `dagster_defs` -- the `outbox_delivery` job and the `outbox_due` sensor;
  `integration_pipelines.cli.outbox` -- `outbox list | retry | replay | deliver`.

Item states: `pending` (waiting, due at `next_attempt_at`) -> `sending` (claimed; the claim lapses
at `next_attempt_at`) -> `delivered` | `pending` again (retry scheduled) | `dead` (needs an
operator: `outbox retry`). A dead item holds back the newer items of its record.
"""

from integration_pipelines.outbox.changes import (
    ats_changes_since,
    enqueue,
    submit_candidate,
    update_placement,
    update_record,
    update_submission,
)
from integration_pipelines.outbox.errors import OutboundError

__all__ = [
    "OutboundError",
    "ats_changes_since",
    "enqueue",
    "submit_candidate",
    "update_placement",
    "update_record",
    "update_submission",
]
