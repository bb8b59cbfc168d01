"""The sync core: one stream of one connection, page by page, resumable after a crash.

partner pages -> records -> mapping -> pandera validation (rejects to quarantine) ->
idempotent upsert through record links -> checkpoint, all committed together per batch of
pages (up to WRITE_BATCH_RECORDS records or WRITE_BATCH_SECONDS after its first page).
A crash loses at most the unwritten batch, which the next run fetches again.
"""

import logging
import queue
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pandas as pd
import sqlalchemy as sa
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from integration_pipelines.canonical.schemas import SCHEMAS
from integration_pipelines.canonical.tables import ENTITY_TABLES, record_links, sync_runs
from integration_pipelines.connections import Connection
from integration_pipelines.connectors.registry import LoadedConnector
from integration_pipelines.connectors.spec import Stream
from integration_pipelines.mapping import combine_errors, map_records, validate_frame
from integration_pipelines.mapping.paths import get_path
from integration_pipelines.resources.errors import MalformedResponse, PartnerError, RequestRejected
from integration_pipelines.resources.partner_client import PartnerClient
from integration_pipelines.resources.redaction import redact
from integration_pipelines.sync import bulk, for_each, load
from integration_pipelines.sync.extract import decode_body, judge, raise_rejected, records_of
from integration_pipelines.sync.pagination import PageState, paginator_for
from integration_pipelines.sync.writer import BatchWriter
from integration_pipelines.templates import render, render_value

log = logging.getLogger("integration_pipelines.sync")


#: Pages are written (mapped, validated, upserted, checkpointed) together, in one transaction,
#: once this many records have arrived ...
WRITE_BATCH_RECORDS = 10_000
#: ... or once the first unwritten page is this old, so a slow partner still commits often.
WRITE_BATCH_SECONDS = 0.25
#: A sync that inserted at least this many records refreshes the planner's statistics.
ANALYZE_AFTER_INSERTS = 10_000


class DuplicatePage(PartnerError):
    """The partner served records we just received on the previous page."""


@dataclass
class SyncReport:
    """What one stream sync did; becomes Dagster materialisation metadata."""

    connection_id: str
    stream: str
    entity: str
    status: str = "running"
    pages: int = 0
    records: int = 0
    counts: load.PageCounts = field(default_factory=load.PageCounts)
    cursor: Any = None
    resumed: bool = False
    duration_seconds: float = 0.0
    error: str | None = None

    @property
    def written(self) -> int:
        return self.counts.written

    @property
    def rejected(self) -> int:
        return self.counts.rejected


@dataclass
class _Prepared:
    """Mapped and validated records, ready to write."""

    valid: pd.DataFrame | None
    rejects: list[load.Reject]
    size: int  # records received
    digests: list[str] | None = None  # payload hashes of the valid rows


@dataclass
class _Batch:
    """Pages prepared together and the checkpoint to commit with them."""

    prepared: _Prepared
    pages: int  # the last page in the batch
    cursor: Any
    checkpoint: dict[str, Any] | None  # None: the batch ends the stream

    @property
    def done(self) -> bool:
        return self.checkpoint is None


def _max_cursor(records: Iterable[dict[str, Any]], path: str, current: str | None) -> str | None:
    values = pd.to_datetime(
        pd.Series([get_path(r, path) for r in records], dtype=object),
        utc=True,
        errors="coerce",
        format="ISO8601",
    )
    top = values.max()
    if pd.isna(top):
        return current
    candidate = top.strftime("%Y-%m-%dT%H:%M:%SZ")
    if current is None or pd.Timestamp(current) < top:
        return candidate
    return current


def _keys(records: list[dict[str, Any]], path: str) -> set[Any]:
    """The primary keys of a page."""
    return {get_path(r, path) for r in records}


def _identity(request: httpx.Request) -> tuple[str, str, bytes]:
    return request.method, str(request.url), request.content


def _format_cursor(value: str, fmt: str) -> str:
    if fmt == "iso8601":
        return value
    return pd.Timestamp(value).strftime(fmt)


class StreamSync:
    """Runs the streams of one connection against its partner."""

    def __init__(
        self,
        *,
        engine: sa.Engine,
        connection: Connection,
        connector: LoadedConnector,
        client: PartnerClient,
        secrets: Iterable[str] = (),
        progress: Callable[[str], None] | None = None,
        run_id: str | None = None,
    ):
        self.engine = engine
        self.connection = connection
        self.connector = connector
        self.client = client
        self.secrets = [s for s in secrets if s]
        self.progress = progress or log.info
        self.run_id = run_id
        self.namespaces: dict[str, Any] = {"config": connection.config}
        self._last_answer: tuple[tuple[str, str, bytes], bytes] | None = None  # for-each streams

    # ------------------------------------------------------------------ public
    def run(self, stream_name: str) -> SyncReport:
        stream = self.connector.spec.streams[stream_name]
        report = SyncReport(self.connection.id, stream_name, stream.entity)
        started = time.monotonic()
        run_row = self._start_run(stream_name)
        try:
            if stream.for_each:
                self._run_for_each(stream_name, stream, report)
            else:
                self._run_pages(stream_name, stream, report)
            report.status = "succeeded"
        except Exception as exc:
            report.status = "failed"
            report.error = redact(str(exc), self.secrets)
            with self.engine.begin() as conn:
                load.record_error(conn, self.connection.id, stream_name, report.error)
            raise
        finally:
            report.duration_seconds = round(time.monotonic() - started, 3)
            self._finish_run(run_row, report)
        return report

    # ------------------------------------------------------------------ paged list streams
    def _run_pages(self, stream_name: str, stream: Stream, report: SyncReport) -> None:
        paginator = paginator_for(stream.pagination or self.connector.spec.pagination)
        with self.engine.connect() as conn:
            cursor, checkpoint = load.load_state(conn, self.connection.id, stream_name)
        if checkpoint:
            since, page, high_water = checkpoint["since"], checkpoint["page"], checkpoint["high_water"]
            report.resumed = True
            self.progress(f"{self.connection.id} {stream_name}: resuming at page {page} (since {since})")
        else:
            since = cursor or (stream.incremental.start if stream.incremental else None)
            page, high_water = paginator.first(), since
        written: queue.SimpleQueue[tuple[_Batch, load.PageCounts]] = queue.SimpleQueue()
        try:
            with BatchWriter(lambda b: written.put((b, self._store_batch(stream_name, stream, b)))) as writer:
                self._page_loop(
                    stream_name, stream, report, writer, written, paginator, page, since, high_water
                )
        finally:
            self._report_written(stream_name, report, written)
        if report.counts.inserted >= ANALYZE_AFTER_INSERTS:
            with self.engine.begin() as conn:
                bulk.refresh_statistics(conn, ENTITY_TABLES[stream.entity], record_links)

    def _page_loop(
        self,
        stream_name: str,
        stream: Stream,
        report: SyncReport,
        writer: BatchWriter,
        written: "queue.SimpleQueue[tuple[_Batch, load.PageCounts]]",
        paginator: Any,
        page: PageState | None,
        since: str | None,
        high_water: str | None,
    ) -> None:
        """Fetch pages and hand them to the writer in batches."""
        previous_keys: set[Any] = set()
        batch: list[dict[str, Any]] = []
        batch_started = 0.0
        looks_up_itself = stream.entity in {m.lookup for m in stream.mapping.values() if m.lookup}
        while page is not None:
            try:
                response, body, records, previous_keys = self._fetch_page(
                    stream, paginator, page, since, previous_keys
                )
            except Exception:
                if batch:  # keep the pages fetched so far; the next run resumes at this page
                    checkpoint = {"since": since, "page": page, "high_water": high_water}
                    writer.submit(self._batch(stream, batch, report.pages, checkpoint))
                raise
            next_page = paginator.next(page, response, body, records)
            if stream.incremental:
                high_water = _max_cursor(records, stream.incremental.cursor_field, high_water)
            report.pages += 1
            report.records += len(records)
            report.cursor = high_water
            self.progress(f"{self.connection.id} {stream_name}: page {report.pages}: {len(records)} records")
            self._report_written(stream_name, report, written)
            if not batch:
                batch_started = time.monotonic()
            batch.extend(records)
            done = next_page is None
            if (
                done
                or len(batch) >= WRITE_BATCH_RECORDS
                or time.monotonic() - batch_started >= WRITE_BATCH_SECONDS
            ):
                if looks_up_itself:  # its lookups must see the batches before it
                    writer.drain()
                checkpoint = None if done else {"since": since, "page": next_page, "high_water": high_water}
                writer.submit(self._batch(stream, batch, report.pages, checkpoint, cursor=high_water))
                batch = []
            page = next_page

    def _batch(
        self,
        stream: Stream,
        records: list[dict[str, Any]],
        pages: int,
        checkpoint: dict[str, Any] | None,
        cursor: Any = None,
    ) -> "_Batch":
        """Map and validate fetched pages; `checkpoint` None means they end the stream."""
        return _Batch(
            prepared=self.prepare_records(stream, records),
            pages=pages,
            cursor=cursor if checkpoint is None else None,
            checkpoint=checkpoint,
        )

    def _report_written(
        self,
        stream_name: str,
        report: SyncReport,
        written: "queue.SimpleQueue[tuple[_Batch, load.PageCounts]]",
    ) -> None:
        """Count and announce the batches the writer has committed (in the caller's thread:
        Dagster's log handler must not be called from the writer thread)."""
        while not written.empty():
            batch, counts = written.get()
            report.counts.add(counts)
            self.progress(
                f"{self.connection.id} {stream_name}: written up to page {batch.pages}: "
                f"{batch.prepared.size} records ({counts.inserted} new, {counts.updated} changed, "
                f"{counts.unchanged} unchanged, {counts.rejected} rejected)"
            )

    def _store_batch(self, stream_name: str, stream: Stream, batch: "_Batch") -> load.PageCounts:
        """Write one prepared batch with its checkpoint, in one transaction (writer thread)."""
        with self.engine.begin() as conn:
            counts = self.store_records(conn, stream_name, stream, batch.prepared)
            load.save_state(
                conn,
                connection_id=self.connection.id,
                stream=stream_name,
                cursor=batch.cursor,
                checkpoint=batch.checkpoint,
                succeeded=batch.done,
                records=counts.written,
                rejects=counts.rejected,
            )
        return counts

    def _fetch_page(
        self, stream: Stream, paginator: Any, page: PageState, since: str | None, previous_keys: set[Any]
    ) -> tuple[httpx.Response, Any, list[dict[str, Any]], set[Any]]:
        """One page and its records' keys, fetched again (boundedly) if its body is unreadable
        or repeats the last page."""
        for attempt in self._refetching():
            with attempt:
                url, page_params = paginator.request(page)
                params = render_value(dict(stream.request.params), self.namespaces)
                if stream.incremental and since:
                    params[stream.incremental.param] = _format_cursor(since, stream.incremental.format)
                params.update(page_params)
                response = self.client.request(
                    stream.request.method,
                    url or render(stream.request.path, self.namespaces),
                    params=None if url else params,
                    headers=render_value(stream.request.headers, self.namespaces) or None,
                )
                body = decode_body(
                    response, stream.format, partner=self.connector.name, connection_id=self.connection.id
                )
                verdict = judge(stream, response, body)
                if verdict.action == "ignore":
                    return response, body, [], set()
                if verdict.action != "ok":
                    raise_rejected(
                        verdict, response, partner=self.connector.name, connection_id=self.connection.id
                    )
                records = records_of(stream, body)
                keys = _keys(records, stream.primary_key)
                if keys and previous_keys and keys <= previous_keys:
                    raise DuplicatePage(
                        f"{self.connector.name} served the previous page again for {stream.request.path} "
                        f"at {page}; refusing to skip ahead",
                        partner=self.connector.name,
                        connection_id=self.connection.id,
                    )
                return response, body, records, keys
        raise AssertionError("unreachable")  # Retrying re-raises the last error

    def _refetching(self) -> Retrying:
        """Asking again for an answer that came back unreadable (truncated) or repeated, boundedly."""
        retry = self.connector.spec.retry
        return Retrying(
            stop=stop_after_attempt(retry.max_attempts),
            wait=wait_exponential_jitter(
                multiplier=retry.initial_backoff_seconds, max=retry.max_backoff_seconds
            ),
            retry=retry_if_exception_type((MalformedResponse, DuplicatePage)),
            reraise=True,
        )

    # ------------------------------------------------------------------ one request per ATS record
    def _run_for_each(self, stream_name: str, stream: Stream, report: SyncReport) -> None:
        assert stream.for_each is not None
        spec = stream.for_each
        while True:
            with self.engine.connect() as conn:
                items = for_each.pending(
                    conn,
                    spec.entity,
                    tenant_id=self.connection.tenant_id,
                    connection_id=self.connection.id,
                    stream=stream_name,
                    target_entity=stream.entity,
                    limit=spec.batch_size,
                )
            if not items:
                break
            records: list[dict[str, Any]] = []
            rejects: list[load.Reject] = []
            for item in items:
                record, reject = self._request_for(stream, spec.alias, item)
                if reject:
                    rejects.append(reject)
                elif record is not None:
                    records.append(record)
            with self.engine.begin() as conn:
                counts = self.write_records(conn, stream_name, stream, records, extra_rejects=rejects)
                load.save_state(
                    conn,
                    connection_id=self.connection.id,
                    stream=stream_name,
                    checkpoint=None,
                    records=counts.written,
                    rejects=counts.rejected,
                )
            report.pages += 1
            report.records += len(items)
            report.counts.add(counts)
            self.progress(
                f"{self.connection.id} {stream_name}: batch {report.pages}: {len(items)} "
                f"{spec.entity} sent ({counts.written} written, {counts.rejected} rejected)"
            )
        with self.engine.begin() as conn:
            load.save_state(conn, connection_id=self.connection.id, stream=stream_name, succeeded=True)

    def _request_for(
        self, stream: Stream, alias: str, item: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, load.Reject | None]:
        namespaces = {**self.namespaces, alias: item}
        request = stream.request
        # an unreadable body is the answer's fault, not the record's: ask again, then fail the
        # run (the record stays pending) rather than quarantine a record that did nothing wrong
        for attempt in self._refetching():
            with attempt:
                response = self.client.request(
                    request.method,
                    render(request.path, namespaces),
                    params=render_value(request.params, namespaces) or None,
                    json=None if request.json_body is None else render_value(request.json_body, namespaces),
                    data=None if request.form is None else render_value(request.form, namespaces),
                    headers=render_value(request.headers, namespaces) or None,
                )
                body = decode_body(
                    response, stream.format, partner=self.connector.name, connection_id=self.connection.id
                )
                last_try = attempt.retry_state.attempt_number >= self.connector.spec.retry.max_attempts
                if self._repeats_last_answer(response) and not last_try:
                    raise DuplicatePage(
                        f"{self.connector.name} answered {request.method} {response.request.url.path} "
                        "for a different record with the previous answer, byte for byte; asking again",
                        partner=self.connector.name,
                        connection_id=self.connection.id,
                    )
        # the same answer on every try is the partner's real answer (e.g. two identical documents)
        self._last_answer = (_identity(response.request), response.content)
        meta = for_each.public_fields(item)
        verdict = judge(stream, response, body)
        if verdict.action in ("reject", "ignore"):
            return None, load.Reject(item["id"], verdict.message, {alias: meta, "response": body})
        if verdict.action != "ok":
            raise_rejected(verdict, response, partner=self.connector.name, connection_id=self.connection.id)
        found = records_of(stream, body)
        if not found:
            return None, load.Reject(
                item["id"],
                f"no record at {stream.records!r} in the response",
                {alias: meta, "response": body},
            )
        return {**found[0], alias: meta}, None

    def _repeats_last_answer(self, response: httpx.Response) -> bool:
        """A success identical to the previous request's answer, for a different request: a
        stale cache or gateway replaying an answer (the for-each form of a repeated page)."""
        if self._last_answer is None or not response.is_success or not response.content:
            return False
        request, content = self._last_answer
        return content == response.content and request != _identity(response.request)

    # ------------------------------------------------------------------ map, validate, write
    def write_records(
        self,
        conn: sa.Connection,
        stream_name: str,
        stream: Stream,
        records: list[dict[str, Any]],
        extra_rejects: list[load.Reject] | None = None,
    ) -> load.PageCounts:
        """Map, validate and write `records` in the caller's transaction."""
        prepared = self.prepare_records(stream, records, extra_rejects, conn=conn)
        return self.store_records(conn, stream_name, stream, prepared)

    def prepare_records(
        self,
        stream: Stream,
        records: list[dict[str, Any]],
        extra_rejects: list[load.Reject] | None = None,
        *,
        conn: sa.Connection | None = None,
    ) -> "_Prepared":
        """Map and validate: the rows to write and the rejects, with reasons.

        Lookups read through `conn`, or through a connection of their own when none is given.
        """
        rejects = list(extra_rejects or [])
        if not records:
            return _Prepared(None, rejects, 0)
        if conn is None:
            with self.engine.connect() as own:
                return self.prepare_records(stream, records, extra_rejects, conn=own)
        mapped = map_records(
            records,
            stream.mapping,
            hooks=self.connector.hooks,
            lookup=lambda entity, ids: self._lookup(conn, entity, ids),
        )
        frame = mapped.frame
        missing_key = frame["external_id"].isna()
        key_errors = pd.DataFrame(
            {
                "row": frame.index[missing_key],
                "field": "external_id",
                "reason": f"missing primary key {stream.primary_key!r}",
            }
        )
        bad_rows = mapped.rejected_rows() | set(frame.index[missing_key])
        candidates = frame.drop(index=list(bad_rows))
        checked = validate_frame(candidates.drop(columns=["external_id"]), SCHEMAS[stream.entity])
        errors = combine_errors(mapped.errors, key_errors, checked.errors)
        valid = checked.valid.join(candidates["external_id"])
        valid["external_id"] = valid["external_id"].astype(str)
        for row, reason in zip(errors["row"], errors["reason"], strict=True):
            ext = frame.at[row, "external_id"]
            rejects.append(load.Reject(None if pd.isna(ext) else str(ext), reason, records[row]))
        digests = load.payload_hashes(valid.drop(columns=["external_id"]))  # here, not on the writer
        return _Prepared(valid, rejects, len(records), digests)

    def store_records(
        self, conn: sa.Connection, stream_name: str, stream: Stream, prepared: "_Prepared"
    ) -> load.PageCounts:
        """Upsert the valid rows and quarantine the rejects in the caller's transaction."""
        counts = load.PageCounts()
        if prepared.valid is not None:
            counts = load.upsert(
                conn,
                tenant_id=self.connection.tenant_id,
                connection_id=self.connection.id,
                entity=stream.entity,
                frame=prepared.valid,
                stream=stream_name,
                policy=self.connector.spec.conflicts.get(stream.entity),
                digests=prepared.digests,
            )
        counts.rejected = load.quarantine_rows(
            conn,
            connection_id=self.connection.id,
            stream=stream_name,
            entity=stream.entity,
            rejects=prepared.rejects,
        )
        return counts

    def _lookup(self, conn: sa.Connection, entity: str, external_ids: pd.Series) -> pd.Series:
        wanted = [str(v) for v in external_ids.dropna().unique()]
        found: dict[str, str] = {}
        for chunk in [wanted[i : i + load.CHUNK] for i in range(0, len(wanted), load.CHUNK)]:
            rows = conn.execute(
                sa.select(record_links.c.external_id, record_links.c.internal_id).where(
                    record_links.c.connection_id == self.connection.id,
                    record_links.c.entity == entity,
                    record_links.c.external_id.in_(chunk),
                )
            )
            found.update({r.external_id: r.internal_id for r in rows})
        return external_ids.map(lambda v: found.get(str(v)) if pd.notna(v) else None)

    # ------------------------------------------------------------------ run history
    def _start_run(self, stream_name: str) -> int:
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            conn.execute(
                sync_runs.update()
                .where(
                    sync_runs.c.connection_id == self.connection.id,
                    sync_runs.c.stream == stream_name,
                    sync_runs.c.status == "running",
                )
                .values(status="interrupted", finished_at=now)
            )
            result = conn.execute(
                sync_runs.insert().values(
                    connection_id=self.connection.id,
                    stream=stream_name,
                    dagster_run_id=self.run_id,
                    started_at=now,
                    status="running",
                )
            )
            return result.inserted_primary_key[0]

    def _finish_run(self, run_row: int, report: SyncReport) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sync_runs.update()
                .where(sync_runs.c.id == run_row)
                .values(
                    finished_at=datetime.now(UTC),
                    status=report.status,
                    pages=report.pages,
                    records=report.records,
                    inserted=report.counts.inserted,
                    updated=report.counts.updated,
                    unchanged=report.counts.unchanged,
                    rejected=report.counts.rejected,
                    error=report.error,
                )
            )


__all__ = ["StreamSync", "SyncReport", "DuplicatePage", "RequestRejected"]
