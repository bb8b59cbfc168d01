"""The outbox table's rules as queries: what is due, per-record order, claims and leases, links.

An item may go when it is pending, due, on an active connection and no OLDER item of the same
(connection, entity, record) is still pending, being sent or dead (`older_undelivered`; delivered
and `superseded` items -- changes a conflict the partner won made moot -- hold nothing back).
A claim is a conditional UPDATE to `sending` whose new `next_attempt_at` (the lease expiry, made
unique with random microseconds) is the token that proves ownership afterwards (`owned`).
"""

import logging
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from integration_pipelines.canonical.tables import connections, outbox, record_links

log = logging.getLogger("integration_pipelines.outbox")

LEASE_EXPIRED_NOTE = (
    "the delivery process stopped while sending (its lease ran out); sending again with the same "
    "Idempotency-Key"
)
ACTIVE = ("pending", "sending")
# what holds a record's newer items back: anything not settled (delivered, or superseded by a
# conflict the partner won) -- waiting, being sent, or dead
UNSETTLED = ("pending", "sending", "dead")


def _now() -> datetime:
    return datetime.now(UTC)


def older_undelivered() -> sa.Exists:
    """An older item of the same record that is not settled yet (correlated to `outbox`)."""
    older = outbox.alias("older")
    return sa.exists().where(
        older.c.connection_id == outbox.c.connection_id,
        older.c.entity == outbox.c.entity,
        older.c.record_id == outbox.c.record_id,
        older.c.id < outbox.c.id,
        older.c.status.in_(UNSETTLED),
    )


def older_dead() -> sa.Exists:
    """An older dead item of the same record: this item waits for an operator (`outbox retry`)."""
    older = outbox.alias("older_dead")
    return sa.exists().where(
        older.c.connection_id == outbox.c.connection_id,
        older.c.entity == outbox.c.entity,
        older.c.record_id == outbox.c.record_id,
        older.c.id < outbox.c.id,
        older.c.status == "dead",
    )


def scoped(query: sa.Select, connection_id: str | None) -> sa.Select:
    """Items of active (not paused) connections, optionally of one connection only."""
    query = query.select_from(
        outbox.outerjoin(connections, connections.c.id == outbox.c.connection_id)
    ).where(sa.or_(connections.c.status.is_(None), connections.c.status != "paused"))
    if connection_id is not None:
        query = query.where(outbox.c.connection_id == connection_id)
    return query


def due_items(
    conn: sa.Connection, now: datetime | None = None, *, connection_id: str | None = None, limit: int = 1000
) -> list[tuple[int, int]]:
    """(id, attempts) of the items that can be sent now, oldest first (what the sensor looks at)."""
    query = scoped(sa.select(outbox.c.id, outbox.c.attempts), connection_id).where(
        outbox.c.status == "pending", outbox.c.next_attempt_at <= (now or _now()), ~older_undelivered()
    )
    return [(r.id, r.attempts) for r in conn.execute(query.order_by(outbox.c.id).limit(limit))]


def release_expired_leases(engine: sa.Engine, now: datetime | None = None) -> int:
    """Make items whose sender died mid-send (lease over) pending again; returns how many."""
    with engine.begin() as conn:
        return conn.execute(
            outbox.update()
            .where(outbox.c.status == "sending", outbox.c.next_attempt_at <= (now or _now()))
            .values(status="pending", last_error=LEASE_EXPIRED_NOTE)
        ).rowcount


def claim(
    engine: sa.Engine, item_id: int, now: datetime, lease_seconds: float
) -> tuple[Any, datetime] | None:
    # random microseconds make each claim's lease unique: it is the token that proves ownership
    lease = now + timedelta(seconds=lease_seconds, microseconds=random.randrange(1_000_000))
    with engine.begin() as conn:
        claimed = conn.execute(
            outbox.update()
            .where(
                outbox.c.id == item_id,
                outbox.c.status == "pending",
                outbox.c.next_attempt_at <= now,
                ~older_undelivered(),
            )
            .values(status="sending", next_attempt_at=lease)
        ).rowcount
        if claimed != 1:
            return None
        row = conn.execute(sa.select(outbox).where(outbox.c.id == item_id)).first()
    return row, lease


def owned(item_id: int, lease: datetime) -> Any:
    return sa.and_(outbox.c.id == item_id, outbox.c.status == "sending", outbox.c.next_attempt_at == lease)


def ensure_link(
    conn: sa.Connection,
    *,
    connection_id: str,
    entity: str,
    external_id: str,
    internal_id: str,
    synced_at: datetime,
) -> None:
    """Create a record link unless this external id is linked already (safe under concurrency)."""
    values = {
        "connection_id": connection_id,
        "entity": entity,
        "external_id": external_id,
        "internal_id": internal_id,
        "payload_hash": None,
        "synced_at": synced_at,
    }
    dialect = conn.dialect.name
    if dialect in ("sqlite", "postgresql"):
        insert = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(record_links).values(**values)
        conn.execute(insert.on_conflict_do_nothing())
    elif not conn.execute(
        sa.select(record_links.c.internal_id).where(
            record_links.c.connection_id == connection_id,
            record_links.c.entity == entity,
            record_links.c.external_id == external_id,
        )
    ).first():
        conn.execute(record_links.insert().values(**values))
    linked_to = conn.execute(
        sa.select(record_links.c.internal_id).where(
            record_links.c.connection_id == connection_id,
            record_links.c.entity == entity,
            record_links.c.external_id == external_id,
        )
    ).scalar()
    if linked_to != internal_id:
        log.warning(
            "connection=%s: %s %s at the partner is already linked to ATS record %s, not %s",
            connection_id,
            entity,
            external_id,
            linked_to,
            internal_id,
        )


def outbox_rows(
    conn: sa.Connection, *, status: str | None = None, connection_id: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Items newest first, each with `blocked_by`: the oldest undelivered older item of its record."""
    older = outbox.alias("older")
    blocker = (
        sa.select(sa.func.min(older.c.id))
        .where(
            older.c.connection_id == outbox.c.connection_id,
            older.c.entity == outbox.c.entity,
            older.c.record_id == outbox.c.record_id,
            older.c.id < outbox.c.id,
            older.c.status.in_(UNSETTLED),
        )
        .scalar_subquery()
    )
    query = sa.select(outbox, blocker.label("blocked_by")).order_by(outbox.c.id.desc()).limit(limit)
    if status:
        query = query.where(outbox.c.status == status)
    if connection_id:
        query = query.where(outbox.c.connection_id == connection_id)
    rows = []
    for row in conn.execute(query).mappings():
        item = dict(row)
        if item["status"] != "pending":
            item["blocked_by"] = None
        rows.append(item)
    return rows
