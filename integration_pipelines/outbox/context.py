"""The outbound context of an outbox item: what its body mapping, paths and templates can read.

```
{
  "<entity>":  the record's row as the item must send it (see below),
  "<name>":    for each `outbound.context` entry name -> entity, the related row found through the
               record's `<name>_id` column, plus `external_id`: its record link on THIS connection
               (null when the partner does not know it; an empty dict when there is no such row),
  "link":      {"external_id": the record's own link on this connection, or null},
  "steps":     {"<step>": {<saved name>: value}} filled in as the steps run,
  "config":    the connection's config values,
}
```

Which values of the record an item sends: for a field that a LATER item of the same record
changes again, the value of this item's own change (its payload), so queued updates replay the
ATS's writes in order (`withdrawn`, then `submitted`); for every other field, the record's current
value, so the partner ends up with what the ATS holds now -- including a field whose conflict the
partner won since the change was queued (its value is not overwritten with the ATS's stale one).
"""

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from integration_pipelines.canonical.tables import ENTITY_TABLES, outbox, record_links
from integration_pipelines.connectors.spec import Outbound
from integration_pipelines.outbox.changes import FRAMEWORK_COLUMNS, changed_fields
from integration_pipelines.outbox.errors import OutboundError
from integration_pipelines.outbox.values import for_column


def find_link(conn: sa.Connection, connection_id: str, entity: str, internal_id: str) -> str | None:
    """The partner's id for an ATS record on one connection (the latest link if there are several)."""
    return conn.execute(
        sa.select(record_links.c.external_id)
        .where(
            record_links.c.connection_id == connection_id,
            record_links.c.entity == entity,
            record_links.c.internal_id == internal_id,
        )
        .order_by(record_links.c.synced_at.desc(), record_links.c.external_id)
        .limit(1)
    ).scalar()


def changed_later(
    conn: sa.Connection, *, connection_id: str, entity: str, record_id: str, after: int
) -> set[str]:
    """Fields of the record that outbox items newer than `after` (same connection) change."""
    payloads = conn.execute(
        sa.select(outbox.c.payload).where(
            outbox.c.connection_id == connection_id,
            outbox.c.entity == entity,
            outbox.c.record_id == record_id,
            outbox.c.id > after,
        )
    ).scalars()
    return set().union(*(changed_fields(entity, p) for p in payloads))


def _plain(row: Mapping[str, Any]) -> dict[str, Any]:
    # Decimal -> float so mapped numbers come out as JSON numbers; dates stay dates
    return {k: float(v) if isinstance(v, Decimal) else v for k, v in row.items()}


def _row(conn: sa.Connection, entity: str, record_id: str) -> dict[str, Any] | None:
    table = ENTITY_TABLES[entity]
    row = conn.execute(sa.select(table).where(table.c.id == record_id)).mappings().first()
    return dict(row) if row is not None else None


def build_context(
    conn: sa.Connection,
    *,
    connection_id: str,
    entity: str,
    record_id: str,
    outbound: Outbound,
    payload: Mapping[str, Any] | None = None,
    item_id: int | None = None,
    config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The context for one item (see the module docstring): `payload` is laid over the row for the
    fields later items (after `item_id`) change again, or for all its fields without `item_id`.
    Raises `OutboundError` when the record is gone or `outbound.context` names something the
    record does not refer to."""
    if entity not in ENTITY_TABLES:
        raise OutboundError(f"unknown canonical entity {entity!r}")
    row = _row(conn, entity, record_id)
    if row is None:
        raise OutboundError(f"the ATS has no {entity} {record_id} any more; nothing to send")
    table = ENTITY_TABLES[entity]
    overlay = set(payload or {})
    if item_id is not None:
        overlay &= changed_later(
            conn, connection_id=connection_id, entity=entity, record_id=record_id, after=item_id
        )
    for name in overlay:
        if name in table.c and name not in FRAMEWORK_COLUMNS:
            row[name] = for_column(table.c[name], payload[name])
    context: dict[str, Any] = {entity: _plain(row)}
    for name, related_entity in outbound.context.items():
        if related_entity not in ENTITY_TABLES:
            raise OutboundError(f"outbound context {name!r}: unknown canonical entity {related_entity!r}")
        column = f"{name}_id"
        if column not in row:
            raise OutboundError(
                f"outbound context {name!r}: {entity} has no column {column!r} "
                f"to find the {related_entity} by"
            )
        related_id = row[column]
        related = _row(conn, related_entity, related_id) if related_id else None
        if related is None:
            context[name] = {}
            continue
        related["external_id"] = find_link(conn, connection_id, related_entity, related_id)
        context[name] = _plain(related)
    context["link"] = {"external_id": find_link(conn, connection_id, entity, record_id)}
    context["steps"] = {}
    context["config"] = dict(config or {})
    return context
