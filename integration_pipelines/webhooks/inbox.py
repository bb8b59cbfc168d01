"""The webhook inbox: events stored once per (connection, event id), processed later.

The receiver only writes rows here (status `pending`, or `ignored` for event types the
connector has no route for); whatever applies them reads `pending_events` and moves rows on to
`applied` or `failed`. A partner delivering the same event twice, even concurrently, gets one
row: the insert is `ON CONFLICT DO NOTHING` on SQLite and PostgreSQL, and a SAVEPOINT around a
plain insert elsewhere.

`record_events` stores many events in one statement (the receiver's group commit): a multi-row
`INSERT ... ON CONFLICT DO NOTHING RETURNING` on SQLite and PostgreSQL, built once per batch size
as plain SQL with the column types' own bind processors, so nothing is compiled per request.
"""

import weakref
from collections.abc import Callable, Sequence
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


@dataclass(frozen=True)
class NewEvent:
    """An event to store with `record_events`.

    `payload_json`, when given, is `payload` already as JSON text (a JSON body as received): it
    is stored as it is instead of serialising `payload` again.
    """

    connection_id: str
    event_id: str
    event_type: str
    occurred_at: datetime | None
    received_at: datetime
    payload: Any
    status: str = "pending"
    payload_json: str | None = None


_COLUMNS = ("connection_id", "event_id", "event_type", "occurred_at", "received_at", "payload", "status")
_MARKERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}
_statements: dict[tuple[str, int], str] = {}
_Processors = tuple[Callable[[Any], Any] | None, Callable[[Any], Any] | None, Callable[[Any], Any] | None]
_processors: "weakref.WeakKeyDictionary[sa.Dialect, _Processors]" = weakref.WeakKeyDictionary()


def _multi_row_insert(dialect: sa.Dialect, rows: int) -> str:
    key = (dialect.paramstyle, rows)
    statement = _statements.get(key)
    if statement is None:
        marker = _MARKERS[dialect.paramstyle]
        row = "(" + ", ".join([marker] * len(_COLUMNS)) + ")"
        statement = (
            f"INSERT INTO {inbox.name} ({', '.join(_COLUMNS)}) VALUES {', '.join([row] * rows)} "
            "ON CONFLICT (connection_id, event_id) DO NOTHING RETURNING connection_id, event_id"
        )
        if len(_statements) < 2_000:
            _statements[key] = statement
    return statement


def _bind_processors(dialect: sa.Dialect) -> _Processors:
    found = _processors.get(dialect)
    if found is None:

        def processor(name: str) -> Callable[[Any], Any] | None:
            return inbox.c[name].type.dialect_impl(dialect).bind_processor(dialect)

        found = (processor("occurred_at"), processor("received_at"), processor("payload"))
        _processors[dialect] = found
    return found


def record_events(conn: sa.Connection, events: Sequence[NewEvent]) -> list[bool]:
    """Store several events at once: for each, True if stored now, False for a duplicate.

    A duplicate is an event this connection already has, or an earlier one in `events` with the
    same id (the first is stored, the rest are duplicates). Runs inside the caller's
    transaction; commit it to make the events visible.
    """
    for event in events:
        if event.status not in STATUSES:
            raise ValueError(f"unknown inbox status {event.status!r}")
    dialect = conn.dialect
    if dialect.name not in _INSERT_IGNORING_DUPLICATES or dialect.paramstyle not in _MARKERS:
        return [
            record_event(
                conn,
                connection_id=e.connection_id,
                event_id=e.event_id,
                event_type=e.event_type,
                occurred_at=e.occurred_at,
                payload=e.payload,
                status=e.status,
            )
            for e in events
        ]
    first: dict[tuple[str, str], int] = {}
    for index, event in enumerate(events):
        first.setdefault((event.connection_id, event.event_id), index)
    if not first:
        return []
    occurred, received, payload = _bind_processors(dialect)
    params: list[Any] = []
    for index in first.values():
        e = events[index]
        if e.payload_json is not None:
            stored_payload: Any = e.payload_json
        else:
            stored_payload = payload(e.payload) if payload is not None else e.payload
        params += (
            e.connection_id,
            e.event_id,
            e.event_type,
            occurred(e.occurred_at) if occurred is not None and e.occurred_at is not None else e.occurred_at,
            received(e.received_at) if received is not None else e.received_at,
            stored_payload,
            e.status,
        )
    statement = _multi_row_insert(dialect, len(first))
    created = {tuple(row) for row in conn.exec_driver_sql(statement, tuple(params))}
    return [
        first[(e.connection_id, e.event_id)] == index and (e.connection_id, e.event_id) in created
        for index, e in enumerate(events)
    ]


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


__all__ = ["STATUSES", "InboxEvent", "NewEvent", "counts", "pending_events", "record_event", "record_events"]
