"""The webhook inbox: events stored once per (connection, event id), processed later.

The receiver only writes rows here (status `pending`, or `ignored` for event types the
connector has no route for); whatever applies them reads `pending_events` and moves rows on to
`applied` or `failed`. A partner delivering the same event twice, even concurrently, gets one
row: the insert is `ON CONFLICT DO NOTHING` on SQLite and PostgreSQL, and a SAVEPOINT around a
plain insert elsewhere.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from integration_pipelines.canonical.tables import inbox

STATUSES = ("pending", "applied", "failed", "ignored")
# built once: the values go in as parameters, so the compiled statement is reused
_INSERT_IGNORING_DUPLICATES = {
    name: insert(inbox).on_conflict_do_nothing(index_elements=[inbox.c.connection_id, inbox.c.event_id])
    for name, insert in (("sqlite", sqlite.insert), ("postgresql", postgresql.insert))
}


@dataclass(frozen=True)
class InboxEvent:
    """One stored webhook event."""

    id: int
    connection_id: str
    event_id: str
    event_type: str
    occurred_at: datetime | None
    received_at: datetime
    payload: Any
    status: str
    attempts: int


def record_event(
    conn: sa.Connection,
    *,
    connection_id: str,
    event_id: str,
    event_type: str,
    occurred_at: datetime | None,
    payload: Any,
    status: str = "pending",
) -> bool:
    """Store an event; False (and nothing written) if this connection already has `event_id`.

    Runs inside the caller's transaction; commit it to make the event visible.
    """
    if status not in STATUSES:
        raise ValueError(f"unknown inbox status {status!r}")
    values = {
        "connection_id": connection_id,
        "event_id": event_id,
        "event_type": event_type,
        "occurred_at": occurred_at,
        "received_at": datetime.now(UTC),
        "payload": payload,
        "status": status,
    }
    statement = _INSERT_IGNORING_DUPLICATES.get(conn.dialect.name)
    if statement is not None:
        return conn.execute(statement, values).rowcount == 1
    try:
        with conn.begin_nested():
            conn.execute(inbox.insert(), values)
    except sa.exc.IntegrityError:
        exists = conn.execute(
            sa.select(inbox.c.id).where(inbox.c.connection_id == connection_id, inbox.c.event_id == event_id)
        ).first()
        if exists is None:  # another constraint failed: not a duplicate
            raise
        return False
    return True


def pending_events(
    conn: sa.Connection, connection_id: str | None = None, after_id: int = 0, limit: int = 500
) -> list[InboxEvent]:
    """Pending events in arrival order (by id), after `after_id`, at most `limit`."""
    query = (
        sa.select(inbox)
        .where(inbox.c.status == "pending", inbox.c.id > after_id)
        .order_by(inbox.c.id)
        .limit(limit)
    )
    if connection_id is not None:
        query = query.where(inbox.c.connection_id == connection_id)
    return [
        InboxEvent(
            id=r.id,
            connection_id=r.connection_id,
            event_id=r.event_id,
            event_type=r.event_type,
            occurred_at=_utc(r.occurred_at),
            received_at=_utc(r.received_at),
            payload=r.payload,
            status=r.status,
            attempts=r.attempts,
        )
        for r in conn.execute(query)
    ]


def counts(conn: sa.Connection, connection_id: str | None = None) -> dict[str, int]:
    """Number of inbox rows by status (statuses with no rows are left out)."""
    query = sa.select(inbox.c.status, sa.func.count()).group_by(inbox.c.status)
    if connection_id is not None:
        query = query.where(inbox.c.connection_id == connection_id)
    return {status: n for status, n in conn.execute(query)}


def _utc(value: datetime | None) -> datetime | None:
    """SQLite gives back naive datetimes; they were written in UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


__all__ = ["STATUSES", "InboxEvent", "counts", "pending_events", "record_event"]
