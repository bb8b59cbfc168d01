"""Per-field conflict resolution for bi-directional streams.

A conflict is a field that both sides changed since the record was last synced: the ATS
(its change is in the outbox, written with the ATS row) and the partner (its new value
arrives now). The connector file says who wins, per field: the partner, the ATS, or the
later writer by timestamp. Every conflict is logged with both values, the winner and the
policy; when the ATS wins, its value is queued to go back to the partner.
"""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from integration_pipelines.canonical.tables import conflict_log, outbox
from integration_pipelines.connectors.spec import FieldPolicy


@dataclass
class Resolution:
    """What to write for one record: the fields the ATS keeps, and the conflicts seen."""

    keep_ats: set[str] = field(default_factory=set)
    conflicts: list[dict[str, Any]] = field(default_factory=list)


def _comparable(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value) or value is pd.NaT:
        return "null"
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (int, float)) or type(value).__name__ == "Decimal":
        return repr(round(float(value), 6))
    return json.dumps(value, sort_keys=True, default=str)


def _as_utc(value: Any) -> datetime | None:
    if value is None or value is pd.NaT:
        return None
    stamp = pd.Timestamp(value)
    return (stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)).to_pydatetime()


def resolve(
    conn: sa.Connection,
    *,
    policy: FieldPolicy,
    connection_id: str,
    stream: str,
    entity: str,
    record_id: str,
    incoming: dict[str, Any],
    current: dict[str, Any],
    since: datetime,
) -> Resolution:
    """Decide field by field between the ATS's unsynced changes and the partner's new values."""
    from integration_pipelines.outbox.changes import ats_changes_since  # the outbox builds on sync

    resolution = Resolution()
    changes = ats_changes_since(
        conn, connection_id=connection_id, entity=entity, record_id=record_id, since=since
    )
    partner_at = _as_utc(incoming.get("remote_updated_at")) or datetime.now(UTC)
    for name, (_, ats_at) in changes.items():
        if name not in incoming or _comparable(incoming[name]) == _comparable(current.get(name)):
            continue  # the partner did not change this field: no conflict
        rule = policy.fields.get(name, policy.default)
        if rule == "source_of_truth_ats":
            winner = "ats"
        elif rule == "source_of_truth_partner":
            winner = "partner"
        else:
            winner = "ats" if _as_utc(ats_at) > partner_at else "partner"
        if winner == "ats":
            resolution.keep_ats.add(name)
        resolution.conflicts.append(
            {
                "connection_id": connection_id,
                "stream": stream,
                "entity": entity,
                "record_id": record_id,
                "field": name,
                "ats_value": json.loads(json.dumps(current.get(name), default=str)),
                "partner_value": json.loads(json.dumps(incoming[name], default=str)),
                "winner": winner,
                "policy": rule,
                "ats_changed_at": _as_utc(ats_at),
                "partner_changed_at": partner_at,
                "created_at": datetime.now(UTC),
            }
        )
    return resolution


def record(
    conn: sa.Connection,
    resolutions: list[tuple[str, Resolution]],
    *,
    connection_id: str,
    stream: str,
    entity: str,
) -> int:
    """Log the conflicts and queue the ATS's winning values back to the partner."""
    if not resolutions:
        return 0
    from integration_pipelines.outbox.changes import enqueue

    rows = [c for _, r in resolutions for c in r.conflicts]
    if rows:
        conn.execute(conflict_log.insert(), rows)
    for record_id, resolution in resolutions:
        lost = {c["field"] for c in resolution.conflicts if c["winner"] == "partner"}
        if lost:
            supersede(conn, connection_id=connection_id, entity=entity, record_id=record_id, fields=lost)
        if resolution.keep_ats:
            enqueue(
                conn,
                connection_id=connection_id,
                stream=stream,
                entity=entity,
                record_id=record_id,
                operation="update",
                payload={"fields": sorted(resolution.keep_ats), "reason": "conflict"},
            )
    return len(rows)


def supersede(
    conn: sa.Connection, *, connection_id: str, entity: str, record_id: str, fields: set[str]
) -> None:
    """The partner won these fields: pending ATS changes of them must not be sent any more.

    They are taken out of the record's undelivered outbox items; an item left with nothing
    to send is marked `superseded` (kept for the record, never delivered).
    """
    items = conn.execute(
        sa.select(outbox.c.id, outbox.c.payload).where(
            outbox.c.connection_id == connection_id,
            outbox.c.entity == entity,
            outbox.c.record_id == record_id,
            outbox.c.status == "pending",
            outbox.c.operation == "update",
        )
    ).all()
    for item_id, payload in items:
        payload = dict(payload or {})
        listed = [f for f in payload.get("fields", []) if f not in fields]
        remaining = {k: v for k, v in payload.items() if k not in fields and k not in ("fields", "reason")}
        if "fields" in payload:
            payload["fields"] = listed
        for name in fields:
            payload.pop(name, None)
        if remaining or listed:
            conn.execute(outbox.update().where(outbox.c.id == item_id).values(payload=payload))
        else:
            conn.execute(
                outbox.update()
                .where(outbox.c.id == item_id)
                .values(
                    status="superseded",
                    payload=payload,
                    last_error="the partner's newer value won a conflict",
                )
            )
