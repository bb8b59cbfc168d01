"""Applying webhook events from the inbox: the partner pushed it, the sync core writes it.

Events are applied in the order they happened (`occurred_at`, then arrival). An event either
carries its record (the route's `record` path) or names it, and the record is fetched with the
route's `fetch` request. Records go through the stream's own mapping, validation and
idempotent upsert; the events are marked applied in the same transaction, so a crash leaves
them pending and a rerun applies them once.

Several appliers at once: each batch is claimed in the transaction that applies it. On
PostgreSQL `pending_events` reads with `SELECT ... FOR UPDATE SKIP LOCKED`, so a second applier
skips the rows the first holds and takes the next ones (or none), and a row applied meanwhile is
no longer pending when its lock goes. On SQLite (local use) appliers of one connection take turns
through an in-process lock. A "something changed" event runs the stream's sync inside the
stream's lock (`sync.locks.stream_lock`), like any other sync.
"""

import time
from collections import defaultdict
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from integration_pipelines.canonical.tables import inbox
from integration_pipelines.connectors.spec import WebhookRoute
from integration_pipelines.mapping.paths import as_list, get_path
from integration_pipelines.resources.errors import PartnerError
from integration_pipelines.sync.extract import decode_body, judge
from integration_pipelines.sync.locks import local_lock, stream_lock
from integration_pipelines.sync.runner import StreamSync, SyncReport
from integration_pipelines.templates import render, render_value

BATCH = 200


def pending_events(conn: sa.Connection, connection_id: str, limit: int = BATCH) -> list[dict[str, Any]]:
    """Up to `limit` pending events, claimed for `conn`'s transaction on PostgreSQL.

    On PostgreSQL the rows are locked (`FOR UPDATE SKIP LOCKED`) until the transaction ends:
    apply and mark them in that same transaction. Rows another transaction holds are skipped.
    """
    query = (
        sa.select(inbox.c.id, inbox.c.event_type, inbox.c.payload, inbox.c.occurred_at)
        .where(inbox.c.connection_id == connection_id, inbox.c.status == "pending")
        .order_by(inbox.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    events = [dict(r) for r in conn.execute(query).mappings()]
    # apply in the order things happened; events without a time keep their arrival order
    return sorted(events, key=lambda e: (e["occurred_at"] is None, e["occurred_at"] or 0, e["id"]))


class EventApplier:
    """Applies one connection's pending webhook events through its streams."""

    def __init__(self, sync: StreamSync):
        self.sync = sync
        webhooks = sync.connector.spec.webhooks
        if webhooks is None:
            raise ValueError(f"{sync.connector.name} declares no webhooks")
        self.routes = webhooks.routes

    def run(self) -> SyncReport:
        report = SyncReport(self.sync.connection.id, "webhook_events", "", status="running")
        started = time.monotonic()
        engine, connection_id = self.sync.engine, self.sync.connection.id
        while True:
            with self._claiming(), engine.begin() as conn:
                events = pending_events(conn, connection_id)
                if not events:
                    break
                self._apply_batch(conn, events, report)
        report.status = "succeeded"
        report.duration_seconds = round(time.monotonic() - started, 3)
        return report

    def _claiming(self):
        """PostgreSQL claims rows itself; SQLite appliers of one connection take turns in-process."""
        if self.sync.engine.dialect.name == "postgresql":
            return nullcontext()
        return local_lock(self.sync.engine, self.sync.connection.id, "webhook_events")

    @staticmethod
    def _is_wake_up(route: WebhookRoute) -> bool:
        return route.record is None and route.fetch is None

    def _record_for(self, route: WebhookRoute, event: dict[str, Any]) -> dict[str, Any] | None:
        payload = event["payload"]
        if route.fetch is None:
            found = get_path(payload, route.record) if route.record else payload
            return found if isinstance(found, dict) else None
        namespaces = {**self.sync.namespaces, "event": payload}
        stream = self.sync.connector.spec.streams[route.stream]
        response = self.sync.client.request(
            route.fetch.method,
            render(route.fetch.path, namespaces),
            params=render_value(route.fetch.params, namespaces) or None,
        )
        if response.status_code == 404:
            return None  # gone at the partner since the event was sent
        body = decode_body(
            response, stream.format, partner=self.sync.connector.name, connection_id=self.sync.connection.id
        )
        verdict = judge(stream, response, body)
        if verdict.action != "ok":
            raise PartnerError(
                f"fetching the record of event {event['id']} failed: {verdict.message}",
                partner=self.sync.connector.name,
                connection_id=self.sync.connection.id,
                status_code=response.status_code,
            )
        found = get_path(body, route.record) if route.record else body
        rows = [r for r in as_list(found) if isinstance(r, dict)]
        return rows[0] if rows else None

    def _apply_batch(self, conn: sa.Connection, events: list[dict[str, Any]], report: SyncReport) -> None:
        """Apply claimed `events` and mark them, in `conn`'s transaction (the one that claimed them)."""
        by_stream: dict[str, list[dict[str, Any]]] = defaultdict(list)
        applied, missing, failed = [], [], []
        wake = {
            self.routes[e["event_type"]].stream
            for e in events
            if e["event_type"] in self.routes and self._is_wake_up(self.routes[e["event_type"]])
        }
        for stream_name in sorted(wake):  # events that only say "something changed": pull the delta
            with stream_lock(self.sync.engine, self.sync.connection.id, stream_name):
                wake_report = self.sync.run(stream_name)
            report.counts.add(wake_report.counts)
            report.records += wake_report.records
        for event in events:
            route = self.routes.get(event["event_type"])
            if route is None:
                missing.append(event["id"])
                continue
            if self._is_wake_up(route):
                applied.append(event["id"])
                continue
            try:
                record = self._record_for(route, event)
            except PartnerError as exc:
                if exc.is_transient:
                    raise  # the partner is down: the events stay pending for the next run
                failed.append((event["id"], str(exc)))
                continue
            if record is None:
                missing.append(event["id"])
                continue
            by_stream[route.stream].append(record)
            applied.append(event["id"])
        now = datetime.now(UTC)
        for stream_name, records in by_stream.items():
            stream = self.sync.connector.spec.streams[stream_name]
            counts = self.sync.write_records(conn, stream_name, stream, records)
            report.counts.add(counts)
            report.records += len(records)
        if applied:
            conn.execute(
                inbox.update()
                .where(inbox.c.id.in_(applied))
                .values(status="applied", applied_at=now, attempts=inbox.c.attempts + 1)
            )
        if missing:
            conn.execute(
                inbox.update()
                .where(inbox.c.id.in_(missing))
                .values(
                    status="ignored",
                    applied_at=now,
                    error="no route for this event type, or the record no longer exists",
                )
            )
        for event_id, error in failed:
            conn.execute(
                inbox.update()
                .where(inbox.c.id == event_id)
                .values(status="failed", error=error, attempts=inbox.c.attempts + 1)
            )
        report.pages += 1
        self.sync.progress(
            f"{self.sync.connection.id} webhook events: {len(applied)} applied, {len(missing)} ignored "
            f"({report.counts.inserted} new, {report.counts.updated} changed, {report.counts.stale} stale)"
        )
