"""The ATS change API: each change writes the ATS row and its outbox items in ONE transaction.

So a change is either in the ATS *and* queued for every partner that must hear of it, or in
neither: nothing is lost between the two even if the process dies, and nothing is queued for a
change that was rolled back. Which partners must hear of it:

* a new submission goes to every connection that holds a record link for its job (the job came
  from that partner) and whose connector has an outbound stream for `submission` with a
  `create` request;
* an update goes to every connection that holds a record link for the record, or still has an
  item for it in the outbox (a create not delivered yet: the update queues behind it), and whose
  connector has an outbound stream for the entity with an `update` request.

An outbox item's `payload` is the fields the ATS changed, as it wrote them (JSON: dates as ISO
text, money as numbers) and `created_at` is the time of the change, so the outbox is also the
ATS's change log per connection (`ats_changes_since`, used for conflict resolution).
"""

import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from integration_pipelines.canonical.tables import ENTITY_TABLES, connections, outbox, record_links
from integration_pipelines.connectors.registry import LoadedConnector, load_connectors
from integration_pipelines.outbox.values import as_utc, for_column, jsonable

FRAMEWORK_COLUMNS = frozenset({"id", "tenant_id", "created_at", "updated_at"})
OPERATIONS = ("create", "update")


def _now() -> datetime:
    return datetime.now(UTC)


def enqueue(
    conn: sa.Connection,
    *,
    connection_id: str,
    stream: str,
    entity: str,
    record_id: str,
    operation: str,
    payload: Mapping[str, Any],
    now: datetime | None = None,
) -> int:
    """Queue one outbound change in the caller's transaction; returns the outbox item id.

    `payload` maps changed field -> value as the ATS wrote it. The item is due at once.
    """
    if operation not in OPERATIONS:
        raise ValueError(f"operation must be one of {', '.join(OPERATIONS)}, not {operation!r}")
    now = now or _now()
    result = conn.execute(
        outbox.insert().values(
            connection_id=connection_id,
            stream=stream,
            entity=entity,
            record_id=record_id,
            operation=operation,
            payload=jsonable(dict(payload)),
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )
    return int(result.inserted_primary_key[0])


def outbound_stream_names(connector: LoadedConnector, entity: str, operation: str) -> list[str]:
    """The connector's outbound streams for `entity` that can send `operation`."""
    names = []
    for name, stream in connector.spec.outbound_streams().items():
        out = stream.outbound
        if stream.entity != entity or out is None:
            continue
        if (out.create if operation == "create" else out.update) is not None:
            names.append(name)
    return names


def _targets(
    conn: sa.Connection,
    connection_ids: Iterable[str],
    *,
    entity: str,
    operation: str,
    connectors: Mapping[str, LoadedConnector] | None,
) -> list[tuple[str, str]]:
    """(connection id, stream) pairs that must receive `operation` of `entity`."""
    ids = sorted(set(connection_ids))
    if not ids:
        return []
    rows = conn.execute(
        sa.select(connections.c.id, connections.c.connector).where(connections.c.id.in_(ids))
    ).all()
    known = connectors if connectors is not None else load_connectors()
    targets = []
    for row in sorted(rows):
        connector = known.get(row.connector)
        if connector is None:
            continue  # a connector file that was removed: nothing can be sent
        targets += [(row.id, name) for name in outbound_stream_names(connector, entity, operation)]
    return targets


def _typed(table: sa.Table, fields: Mapping[str, Any]) -> dict[str, Any]:
    allowed = set(table.columns.keys()) - FRAMEWORK_COLUMNS
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise ValueError(
            f"{table.name} has no field(s) {', '.join(unknown)}; fields are: {', '.join(sorted(allowed))}"
        )
    try:
        return {name: for_column(table.c[name], value) for name, value in fields.items()}
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise ValueError(f"{table.name}: a value has the wrong type: {exc}") from None


def submit_candidate(
    engine: sa.Engine,
    *,
    tenant_id: str,
    candidate_id: str,
    job_id: str,
    bill_rate: Any = None,
    pay_rate: Any = None,
    currency: str | None = None,
    rate_period: str | None = None,
    available_date: Any = None,
    connectors: Mapping[str, LoadedConnector] | None = None,
) -> str:
    """Submit a candidate to a job: a new `submission` (status `submitted`) plus one `create` outbox
    item per connection linked to the job whose connector sends submissions. Returns the submission id.
    """
    from integration_pipelines.canonical.tables import candidate, job, submission

    fields: dict[str, Any] = {"candidate_id": candidate_id, "job_id": job_id, "status": "submitted"}
    given = {
        "bill_rate": bill_rate,
        "pay_rate": pay_rate,
        "currency": currency,
        "rate_period": rate_period,
        "available_date": available_date,
    }
    fields.update({k: v for k, v in given.items() if v is not None})
    typed = _typed(submission, fields)
    submission_id = str(uuid.uuid4())
    now = _now()
    with engine.begin() as conn:
        for table, record_id in ((candidate, candidate_id), (job, job_id)):
            found = conn.execute(
                sa.select(table.c.id).where(table.c.id == record_id, table.c.tenant_id == tenant_id)
            ).first()
            if found is None:
                raise LookupError(f"tenant {tenant_id} has no {table.name} {record_id}")
        conn.execute(
            submission.insert().values(
                id=submission_id, tenant_id=tenant_id, created_at=now, updated_at=now, **typed
            )
        )
        linked = conn.execute(
            sa.select(record_links.c.connection_id).where(
                record_links.c.entity == "job", record_links.c.internal_id == job_id
            )
        ).scalars()
        for connection_id, stream in _targets(
            conn, linked, entity="submission", operation="create", connectors=connectors
        ):
            enqueue(
                conn,
                connection_id=connection_id,
                stream=stream,
                entity="submission",
                record_id=submission_id,
                operation="create",
                payload=typed,
                now=now,
            )
    return submission_id


def update_record(
    engine: sa.Engine,
    entity: str,
    record_id: str,
    fields: Mapping[str, Any],
    *,
    connectors: Mapping[str, LoadedConnector] | None = None,
) -> list[int]:
    """Change fields of an ATS record and queue an `update` for every partner that knows it.

    Fields whose value does not change are left out; no change at all writes nothing.
    Returns the ids of the outbox items queued.
    """
    table = ENTITY_TABLES[entity]
    typed = _typed(table, fields)
    now = _now()
    with engine.begin() as conn:
        row = conn.execute(sa.select(table).where(table.c.id == record_id)).mappings().first()
        if row is None:
            raise LookupError(f"no {entity} {record_id}")
        changed = {k: v for k, v in typed.items() if jsonable(row[k]) != jsonable(v)}
        if not changed:
            return []
        conn.execute(table.update().where(table.c.id == record_id).values(updated_at=now, **changed))
        linked = conn.execute(
            sa.union(
                sa.select(record_links.c.connection_id).where(
                    record_links.c.entity == entity, record_links.c.internal_id == record_id
                ),
                sa.select(outbox.c.connection_id).where(
                    outbox.c.entity == entity, outbox.c.record_id == record_id
                ),
            )
        ).scalars()
        return [
            enqueue(
                conn,
                connection_id=connection_id,
                stream=stream,
                entity=entity,
                record_id=record_id,
                operation="update",
                payload=changed,
                now=now,
            )
            for connection_id, stream in _targets(
                conn, linked, entity=entity, operation="update", connectors=connectors
            )
        ]


def update_submission(
    engine: sa.Engine,
    submission_id: str,
    *,
    connectors: Mapping[str, LoadedConnector] | None = None,
    **fields: Any,
) -> list[int]:
    """Change a submission (e.g. `status="withdrawn"`) and queue the update; returns outbox item ids."""
    return update_record(engine, "submission", submission_id, fields, connectors=connectors)


def update_placement(
    engine: sa.Engine,
    placement_id: str,
    *,
    connectors: Mapping[str, LoadedConnector] | None = None,
    **fields: Any,
) -> list[int]:
    """Change a placement (end date, rates, status) and queue the update; returns outbox item ids."""
    return update_record(engine, "placement", placement_id, fields, connectors=connectors)


def changed_fields(entity: str, payload: Mapping[str, Any] | None) -> set[str]:
    """The entity fields an item changed: its payload's fields, or the `fields` it lists (a re-send
    queued by conflict resolution names the fields whose ATS values must go back)."""
    table = ENTITY_TABLES.get(entity)
    payload = payload or {}
    columns = set(table.columns.keys()) - FRAMEWORK_COLUMNS if table is not None else set()
    names = {k for k in payload if k in columns}
    listed = payload.get("fields")
    if "fields" not in columns and isinstance(listed, list):
        names |= {str(n) for n in listed if str(n) in columns}
    return names


def ats_changes_since(
    conn: sa.Connection, *, connection_id: str, entity: str, record_id: str, since: datetime
) -> dict[str, tuple[Any, datetime]]:
    """Per field: the latest value the ATS wrote for this record (typed like its column) and when,
    from the record's outbox items for this connection created after `since` (naive means UTC).

    Only fields of the entity count: items queued for other reasons (e.g. a conflict re-send,
    whose payload lists fields rather than values) are not ATS writes.
    """
    table = ENTITY_TABLES.get(entity)
    rows = conn.execute(
        sa.select(outbox.c.payload, outbox.c.created_at)
        .where(
            outbox.c.connection_id == connection_id,
            outbox.c.entity == entity,
            outbox.c.record_id == record_id,
            outbox.c.created_at > as_utc(since),
        )
        .order_by(outbox.c.created_at, outbox.c.id)
    ).all()
    changes: dict[str, tuple[Any, datetime]] = {}
    for payload, created_at in rows:
        for name, value in (payload or {}).items():
            if table is None or name not in table.c or name in FRAMEWORK_COLUMNS:
                continue
            changes[name] = (for_column(table.c[name], value), as_utc(created_at))
    return changes


__all__ = [
    "ats_changes_since",
    "changed_fields",
    "enqueue",
    "outbound_stream_names",
    "submit_candidate",
    "update_placement",
    "update_record",
    "update_submission",
]
