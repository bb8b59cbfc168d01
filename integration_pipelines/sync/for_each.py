"""ATS records a for-each stream still has to send (e.g. CV documents awaiting parsing).

A record is pending for a connection until it has a record link written after its last
change, or a quarantine entry made after its last change (a document the partner could
not read is not sent again until someone uploads a new version).
"""

import base64
from typing import Any

import sqlalchemy as sa

from integration_pipelines.canonical.tables import ENTITY_TABLES, quarantine, record_links

CONTENT_FIELDS = ("content",)


def pending(
    conn: sa.Connection,
    entity: str,
    *,
    tenant_id: str,
    connection_id: str,
    stream: str,
    target_entity: str,
    limit: int,
) -> list[dict[str, Any]]:
    """Up to `limit` of the tenant's `entity` rows not yet processed by this connection's stream."""
    source = ENTITY_TABLES[entity]
    linked = sa.exists().where(
        record_links.c.connection_id == connection_id,
        record_links.c.entity == target_entity,
        record_links.c.external_id == source.c.id,
        record_links.c.synced_at >= source.c.updated_at,
    )
    rejected = sa.exists().where(
        quarantine.c.connection_id == connection_id,
        quarantine.c.stream == stream,
        quarantine.c.external_id == source.c.id,
        quarantine.c.resolved_at.is_(None),
        quarantine.c.created_at >= source.c.updated_at,
    )
    query = (
        sa.select(source)
        .where(source.c.tenant_id == tenant_id, ~linked, ~rejected)
        .order_by(source.c.updated_at, source.c.id)
        .limit(limit)
    )
    items = []
    for row in conn.execute(query).mappings():
        item = dict(row)
        for name in CONTENT_FIELDS:
            if name in item and item[name] is not None:
                item[f"{name}_base64"] = base64.b64encode(item[name]).decode("ascii")
        items.append(item)
    return items


def public_fields(item: dict[str, Any]) -> dict[str, Any]:
    """The item without its (large) content, as it is kept beside a parse result or a reject."""
    return {k: v for k, v in item.items() if k not in CONTENT_FIELDS and not k.endswith("_base64")}
