"""Writing one page: idempotent upsert through record links, quarantine, checkpoint.

Everything for a page happens in the caller's transaction, so the rows, the rejects
and the cursor that says "this page is done" are committed together or not at all.
"""

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from integration_pipelines.canonical.rules import after_write
from integration_pipelines.canonical.tables import ENTITY_TABLES, quarantine, record_links, sync_state
from integration_pipelines.connectors.spec import FieldPolicy
from integration_pipelines.sync import bulk, conflicts

CHUNK = 500  # ids per IN (...) query: well under SQLite's and PostgreSQL's parameter limits


@dataclass
class PageCounts:
    """What writing one page did."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    stale: int = 0  # older than what the ATS already holds (e.g. a late webhook): not written
    conflicts: int = 0

    def add(self, other: "PageCounts") -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.rejected += other.rejected
        self.stale += other.stale
        self.conflicts += other.conflicts

    @property
    def written(self) -> int:
        return self.inserted + self.updated + self.unchanged + self.stale


@dataclass(frozen=True)
class Reject:
    """A partner record that did not make it into the ATS, and why."""

    external_id: str | None
    reason: str
    raw: dict[str, Any]


def payload_hashes(frame: pd.DataFrame) -> list[str]:
    """One digest per row of the mapped fields, to skip rewriting records that did not change.

    pandas writes the rows as JSON lines in C (columns sorted, so their order does not
    matter; timestamps as epoch microseconds in UTC, so their unit and zone do not matter);
    only the md5 of each line is done in Python.
    """
    if frame.empty:
        return []
    frame = frame[sorted(frame.columns)]
    stamps = [name for name in frame.columns if frame[name].dtype.kind == "M"]
    if stamps:  # as microseconds since the epoch: pandas formats ISO dates ten times slower
        frame = frame.assign(**{name: _epoch_us(frame[name]) for name in stamps})
    lines = frame.to_json(
        orient="records",
        lines=True,
        date_format="iso",
        date_unit="us",
        double_precision=15,
        default_handler=str,
    )
    return [hashlib.md5(line.encode(), usedforsecurity=False).hexdigest() for line in lines.splitlines()]


def _epoch_us(values: pd.Series) -> pd.Series:
    """A datetime column as integer microseconds since the epoch in UTC (nulls stay null)."""
    micros = bulk.utc_microseconds(values).view("int64")
    return pd.Series(pd.arrays.IntegerArray(micros, values.isna().to_numpy()), index=values.index)


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _where_in(conn: sa.Connection, column: sa.Column, ids: Sequence[str]) -> Iterable[sa.ColumnElement]:
    """Conditions `column` in `ids`: one `= ANY(array)` on PostgreSQL, chunks of IN (...) elsewhere."""
    if not ids:
        return
    if conn.dialect.name == "postgresql":
        yield column == sa.any_(sa.literal(list(ids), ARRAY(column.type)))
        return
    for chunk in _chunks(list(ids)):
        yield column.in_(chunk)


def existing_links(conn: sa.Connection, connection_id: str, entity: str, external_ids: Sequence[str]) -> dict:
    """external id -> (internal id, payload hash, synced at) for ids this connection synced before."""
    if conn.dialect.name == "postgresql" and external_ids:
        # the driver binds the id list as one array: SQLAlchemy's per-element ARRAY processing
        # and row processing cost more than the index lookups themselves
        rows = conn.exec_driver_sql(
            "SELECT external_id, internal_id, payload_hash, synced_at FROM record_links "
            "WHERE connection_id = %(connection)s AND entity = %(entity)s AND external_id = ANY(%(ids)s)",
            {"connection": connection_id, "entity": entity, "ids": list(external_ids)},
        )
        return {
            external_id: (internal_id, digest, synced_at)
            for external_id, internal_id, digest, synced_at in rows
        }
    found: dict[str, tuple[str, str | None, datetime]] = {}
    columns = (
        record_links.c.external_id,
        record_links.c.internal_id,
        record_links.c.payload_hash,
        record_links.c.synced_at,
    )
    for condition in _where_in(conn, record_links.c.external_id, external_ids):
        rows = conn.execute(
            sa.select(*columns).where(
                record_links.c.connection_id == connection_id,
                record_links.c.entity == entity,
                condition,
            )
        )
        found.update({r.external_id: (r.internal_id, r.payload_hash, r.synced_at) for r in rows})
    return found


def current_rows(
    conn: sa.Connection, table: sa.Table, ids: Sequence[str], columns: Sequence[sa.Column] | None = None
) -> dict[str, dict[str, Any]]:
    """The stored rows of `table` with these ids (all columns, or `columns` with the id), by id."""
    found: dict[str, dict[str, Any]] = {}
    for condition in _where_in(conn, table.c.id, ids):
        rows = conn.execute(sa.select(*(columns or [table])).where(condition)).mappings()
        found.update({r["id"]: dict(r) for r in rows})
    return found


def _stale(stored: dict[str, dict[str, Any]], changed: Sequence[tuple]) -> list[bool]:
    """For each changed record: does the ATS already hold a version the partner stamped later?

    Compared by `remote_updated_at`, all at once (naive stored times are UTC, as SQLite gives
    them back); a missing time on either side is never stale.
    """
    if "remote_updated_at" not in changed[0][4]:
        return [False] * len(changed)

    def stamps(values: list[Any]) -> pd.Series:
        return pd.to_datetime(pd.Series(values, dtype=object), utc=True, errors="coerce", format="ISO8601")

    held = stamps([stored.get(internal_id, {}).get("remote_updated_at") for _, internal_id, *_ in changed])
    incoming = stamps([row.get("remote_updated_at") for *_, row in changed])
    return (held > incoming).tolist()  # NaT on either side compares False


def upsert(
    conn: sa.Connection,
    *,
    tenant_id: str,
    connection_id: str,
    entity: str,
    frame: pd.DataFrame,
    stream: str = "",
    policy: FieldPolicy | None = None,
    digests: Sequence[str] | None = None,
) -> PageCounts:
    """Insert new records, update changed ones, skip unchanged ones: safe to repeat.

    A changed record older than the stored one (by `remote_updated_at`) is skipped as stale;
    with a conflict `policy`, fields the ATS also changed since the last sync are resolved.
    New records and their links are written in bulk (`bulk.insert_frame`: COPY on PostgreSQL).
    `digests` are the rows' `payload_hashes`, when the caller made them ahead of time.
    """
    counts = PageCounts()
    if frame.empty:
        return counts
    table = ENTITY_TABLES[entity]
    last = ~frame.duplicated(subset="external_id", keep="last")
    frame = frame[last]
    external_ids = frame["external_id"].astype(str).tolist()
    fields = frame.drop(columns=["external_id"])
    if digests is None:
        digests = payload_hashes(fields)
    else:
        digests = [d for d, keep in zip(digests, last, strict=True) if keep]
    now = datetime.now(UTC)
    links = existing_links(conn, connection_id, entity, external_ids)
    known = [external_id in links for external_id in external_ids]
    is_new = [not k for k in known]
    if any(is_new):
        new = fields[is_new]
        internal_ids = bulk.new_ids(len(new))
        rows = new.assign(id=internal_ids, tenant_id=tenant_id, created_at=now, updated_at=now)
        counts.inserted = bulk.insert_frame(conn, table, rows)
        bulk.insert_frame(
            conn,
            record_links,
            pd.DataFrame(
                {
                    "connection_id": connection_id,
                    "entity": entity,
                    "external_id": [e for e, n in zip(external_ids, is_new, strict=True) if n],
                    "internal_id": internal_ids,
                    "payload_hash": [d for d, n in zip(digests, is_new, strict=True) if n],
                    "synced_at": now,
                }
            ),
        )
    changed_at = [
        i
        for i, (external_id, old) in enumerate(zip(external_ids, known, strict=True))
        if old and links[external_id][1] != digests[i]
    ]
    counts.unchanged = sum(known) - len(changed_at)
    changed: list[tuple[str, str, datetime, str, dict[str, Any]]] = []
    for i, row in zip(changed_at, bulk.frame_rows(fields.iloc[changed_at]), strict=True):
        internal_id, _, synced_at = links[external_ids[i]]
        changed.append((external_ids[i], internal_id, synced_at, digests[i], row))
    if changed and (policy is not None or "remote_updated_at" in frame.columns):
        wanted = None if policy is not None else [table.c.id, table.c.remote_updated_at]
        stored = current_rows(conn, table, [c[1] for c in changed], columns=wanted)
        stale = _stale(stored, changed)
        kept, resolutions = [], []
        for item, is_stale in zip(changed, stale, strict=True):
            external_id, internal_id, synced_at, digest, row = item
            current = stored.get(internal_id, {})
            if is_stale:
                counts.stale += 1
                continue
            if policy is not None:
                resolution = conflicts.resolve(
                    conn,
                    policy=policy,
                    connection_id=connection_id,
                    stream=stream,
                    entity=entity,
                    record_id=internal_id,
                    incoming=row,
                    current=current,
                    since=synced_at,
                )
                for name in resolution.keep_ats:
                    row[name] = current.get(name)
                if resolution.conflicts:
                    resolutions.append((internal_id, resolution))
            kept.append(item)
        changed = kept
        counts.conflicts = conflicts.record(
            conn, resolutions, connection_id=connection_id, stream=stream, entity=entity
        )
    _update_changed(conn, table, connection_id, entity, changed, now)
    counts.updated = len(changed)
    written = {external_id for external_id, *_ in changed}  # their links were just updated
    seen = [e for e in links if e not in written]  # new records were linked with synced_at = now
    for condition in _where_in(conn, record_links.c.external_id, seen):
        conn.execute(
            record_links.update()
            .where(record_links.c.connection_id == connection_id, record_links.c.entity == entity, condition)
            .values(synced_at=now)
        )
    after_write(conn, entity=entity, tenant_id=tenant_id, rows=frame)
    return counts


def _update_changed(
    conn: sa.Connection,
    table: sa.Table,
    connection_id: str,
    entity: str,
    changed: Sequence[tuple[str, str, datetime, str, dict[str, Any]]],
    now: datetime,
) -> None:
    """Write the changed records, and their links' new payload hashes and sync time."""
    if not changed:
        return
    rows = pd.DataFrame([row for *_, row in changed]).assign(
        id=[internal_id for _, internal_id, *_ in changed], updated_at=now
    )
    bulk.update_frame(conn, table, rows, keys=["id"])
    hashes = pd.DataFrame(
        {
            "external_id": [external_id for external_id, *_ in changed],
            "payload_hash": [digest for _, _, _, digest, _ in changed],
            "synced_at": now,
        }
    )
    bulk.update_frame(
        conn, record_links, hashes, keys=["external_id"], connection_id=connection_id, entity=entity
    )


def quarantine_rows(
    conn: sa.Connection, *, connection_id: str, stream: str, entity: str, rejects: Sequence[Reject]
) -> int:
    if not rejects:
        return 0
    now = datetime.now(UTC)
    conn.execute(
        quarantine.insert(),
        [
            {
                "connection_id": connection_id,
                "stream": stream,
                "entity": entity,
                "external_id": r.external_id,
                "reason": r.reason,
                "raw": json.loads(json.dumps(r.raw, default=bulk.json_default)),
                "created_at": now,
            }
            for r in rejects
        ],
    )
    return len(rejects)


def save_state(
    conn: sa.Connection,
    *,
    connection_id: str,
    stream: str,
    cursor: Any = None,
    checkpoint: dict[str, Any] | None = None,
    succeeded: bool = False,
    records: int = 0,
    rejects: int = 0,
    keep_cursor: bool = True,
) -> None:
    """Record progress. `checkpoint` None with `succeeded` marks the stream's run as complete."""
    now = datetime.now(UTC)
    key = (sync_state.c.connection_id == connection_id) & (sync_state.c.stream == stream)
    row = conn.execute(sa.select(sync_state).where(key)).first()
    values: dict[str, Any] = {"checkpoint": checkpoint, "updated_at": now}
    if not keep_cursor or cursor is not None:
        values["cursor"] = cursor
    if succeeded:
        values["last_success_at"] = now
        values["last_error"] = None
    if row is None:
        conn.execute(
            sync_state.insert().values(
                connection_id=connection_id,
                stream=stream,
                records_total=records,
                rejects_total=rejects,
                **values,
            )
        )
    else:
        values["records_total"] = sync_state.c.records_total + records
        values["rejects_total"] = sync_state.c.rejects_total + rejects
        conn.execute(sync_state.update().where(key).values(**values))


def load_state(conn: sa.Connection, connection_id: str, stream: str) -> tuple[Any, dict[str, Any] | None]:
    """(committed cursor, in-flight checkpoint) for a stream of a connection."""
    row = conn.execute(
        sa.select(sync_state.c.cursor, sync_state.c.checkpoint).where(
            sync_state.c.connection_id == connection_id, sync_state.c.stream == stream
        )
    ).first()
    return (row.cursor, row.checkpoint) if row else (None, None)


def record_error(conn: sa.Connection, connection_id: str, stream: str, error: str) -> None:
    key = (sync_state.c.connection_id == connection_id) & (sync_state.c.stream == stream)
    now = datetime.now(UTC)
    if conn.execute(sa.select(sync_state.c.stream).where(key)).first() is None:
        conn.execute(
            sync_state.insert().values(
                connection_id=connection_id, stream=stream, last_error=error, updated_at=now
            )
        )
    else:
        conn.execute(sync_state.update().where(key).values(last_error=error, updated_at=now))
