"""Derive each connection's health from its data: sync runs, sync state, inbox, outbox, incidents.

Nothing here is stored or typed in: the status of a connection is recomputed from the facts
every time, with a handful of aggregate queries whatever the number of runs.

Rules, with the thresholds of the connection's connector (`connector.spec.health`):

* ``paused``: the connection's status is ``paused`` (overrides every other rule).
* ``down``: the newest ``down_after_failures`` finished runs of the connection (any stream)
  all failed, or its newest finished run failed with the circuit breaker open.
* ``degraded``: the share of failed runs in the last hour is above ``degraded_error_rate``;
  or a stream is not fresh (last success older than ``freshness_minutes``, or never
  succeeded although it has finished runs); or more than ``backlog_warning`` inbound events
  are pending or outbound changes pending/sending; or any outbound change is dead-lettered.
* otherwise ``healthy``.

A run is *finished* once its status is no longer ``running`` (succeeded, failed or
interrupted). Interrupted runs count in the error rate's denominator but neither extend nor
break a streak of failures or successes.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from integration_pipelines.canonical.tables import (
    UTCDateTime,
    connections,
    inbox,
    incidents,
    outbox,
    sync_runs,
    sync_state,
)
from integration_pipelines.connectors.registry import LoadedConnector, load_connectors
from integration_pipelines.connectors.spec import HealthThresholds
from integration_pipelines.health.model import ConnectionHealth, DayHealth, Incident, StreamHealth

HISTORY_DAYS = 7
BREAKER_MARKER = "circuit breaker is open"  # PartnerClient._breaker_open's message
SHORT_ERROR_CHARS = 160


@dataclass(frozen=True)
class HealthDetails:
    """A connection's health plus the facts the incident logic needs beyond the model."""

    health: ConnectionHealth
    thresholds: HealthThresholds
    consecutive_successes: int  # succeeded runs newer than the newest failed run
    ever_failed: bool
    last_failed_error: str | None  # of the newest failed run (already redacted)
    last_failed_run_id: str | None  # its Dagster run id


def utc(value: datetime | None) -> datetime | None:
    """`value` as an aware UTC datetime (SQLite hands back naive UTC ones)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def format_duration(delta: timedelta) -> str:
    """A duration in plain words: "45 min", "3 h", "2 d"."""
    minutes = max(int(delta.total_seconds() // 60), 0)
    if minutes < 120:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // (24 * 60)} d"


def short_error(error: str | None) -> str:
    """The first line of an error, cut to a readable length."""
    if not error:
        return "no error recorded"
    line = error.strip().splitlines()[0] if error.strip() else ""
    return line if len(line) <= SHORT_ERROR_CHARS else line[: SHORT_ERROR_CHARS - 1] + "…"


def _count(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[Any]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def _total(condition: sa.ColumnElement[bool], column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, column), else_=0)), 0)


def _latest(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[Any]:
    return sa.type_coerce(sa.func.max(sa.case((condition, sync_runs.c.finished_at), else_=None)), UTCDateTime)


def derive_health(
    engine: sa.Engine,
    *,
    now: datetime | None = None,
    tenant_id: str | None = None,
    connection_id: str | None = None,
    connectors: Mapping[str, LoadedConnector] | Iterable[LoadedConnector] | None = None,
) -> list[ConnectionHealth]:
    """The health of every connection (of `tenant_id`, or just `connection_id`), by connection id."""
    details = derive_health_details(
        engine, now=now, tenant_id=tenant_id, connection_id=connection_id, connectors=connectors
    )
    return [d.health for d in details]


def derive_health_details(
    engine: sa.Engine,
    *,
    now: datetime | None = None,
    tenant_id: str | None = None,
    connection_id: str | None = None,
    connectors: Mapping[str, LoadedConnector] | Iterable[LoadedConnector] | None = None,
) -> list[HealthDetails]:
    """Like :func:`derive_health`, with the run streaks and newest failure the incidents need."""
    now = utc(now) or datetime.now(UTC)
    by_name = _by_name(connectors)

    scope = sa.select(connections.c.id)
    if tenant_id is not None:
        scope = scope.where(connections.c.tenant_id == tenant_id)
    if connection_id is not None:
        scope = scope.where(connections.c.id == connection_id)

    with engine.connect() as conn:
        conns = conn.execute(
            sa.select(
                connections.c.id, connections.c.tenant_id, connections.c.connector, connections.c.status
            )
            .where(connections.c.id.in_(scope))
            .order_by(connections.c.id)
        ).all()
        if not conns:
            return []
        facts = _Facts.load(conn, scope, now)

    return [_health_of(row, facts, by_name, now) for row in conns]


def _by_name(
    connectors: Mapping[str, LoadedConnector] | Iterable[LoadedConnector] | None,
) -> Mapping[str, LoadedConnector]:
    """Connectors by name: the registry's when none are given; a list is accepted too."""
    if connectors is None:
        return load_connectors()
    if isinstance(connectors, Mapping):
        return connectors
    return {c.name: c for c in connectors}


# ------------------------------------------------------------------------------ queries


@dataclass
class _Facts:
    """The aggregates of all connections in scope, keyed by connection id."""

    runs: dict[str, sa.Row]
    streaks: dict[str, sa.Row]
    last_failed: dict[str, sa.Row]
    streams: dict[str, dict[str, dict[str, Any]]]
    inbox: dict[str, int]
    outbox: dict[str, int]
    dead: dict[str, int]
    incidents: dict[str, sa.Row]
    day_starts: list[datetime]

    @classmethod
    def load(cls, conn: sa.Connection, scope: sa.Select, now: datetime) -> "_Facts":
        r = sync_runs.c
        in_scope = r.connection_id.in_(scope)
        finished = sa.and_(r.status != "running", r.finished_at.is_not(None))
        failed = sa.and_(finished, r.status == "failed")
        succeeded = sa.and_(finished, r.status == "succeeded")
        hour_ago, day_ago = now - timedelta(hours=1), now - timedelta(hours=24)
        in_1h, in_24h = (
            sa.and_(finished, r.finished_at >= hour_ago),
            sa.and_(finished, r.finished_at >= day_ago),
        )

        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        day_starts = [today - timedelta(days=HISTORY_DAYS - 1 - i) for i in range(HISTORY_DAYS)]
        day_columns = []
        for i, start in enumerate(day_starts):
            in_day = sa.and_(finished, r.finished_at >= start, r.finished_at < start + timedelta(days=1))
            day_columns += [
                _count(in_day).label(f"d{i}_runs"),
                _count(sa.and_(in_day, failed)).label(f"d{i}_failed"),
            ]

        runs = conn.execute(
            sa.select(
                r.connection_id,
                _count(in_1h).label("finished_1h"),
                _count(sa.and_(in_1h, failed)).label("failed_1h"),
                _count(in_24h).label("finished_24h"),
                _count(sa.and_(in_24h, failed)).label("failed_24h"),
                _total(in_24h, r.records).label("records_24h"),
                _total(in_24h, r.rejected).label("rejects_24h"),
                _latest(succeeded).label("last_success"),
                *day_columns,
            )
            .where(in_scope)
            .group_by(r.connection_id)
        ).all()

        marks = (
            sa.select(
                r.connection_id.label("connection_id"),
                _latest(failed).label("last_fail"),
                _latest(succeeded).label("last_ok"),
            )
            .where(in_scope, finished)
            .group_by(r.connection_id)
            .subquery()
        )
        streaks = conn.execute(
            sa.select(
                r.connection_id,
                _count(
                    sa.and_(
                        r.status == "failed",
                        sa.or_(marks.c.last_ok.is_(None), r.finished_at > marks.c.last_ok),
                    )
                ).label("failures"),
                _count(
                    sa.and_(
                        r.status == "succeeded",
                        sa.or_(marks.c.last_fail.is_(None), r.finished_at > marks.c.last_fail),
                    )
                ).label("successes"),
                sa.func.count(marks.c.last_fail).label("ever_failed"),
            )
            .join(marks, marks.c.connection_id == r.connection_id)
            .where(finished)
            .group_by(r.connection_id)
        ).all()

        newest_failed = (
            sa.select(
                r.connection_id,
                r.error,
                r.dagster_run_id,
                sa.func.row_number()
                .over(partition_by=r.connection_id, order_by=(r.finished_at.desc(), r.id.desc()))
                .label("rn"),
            )
            .where(in_scope, failed)
            .subquery()
        )
        last_failed = conn.execute(sa.select(newest_failed).where(newest_failed.c.rn == 1)).all()

        newest_run = (
            sa.select(
                r.connection_id,
                r.stream,
                r.status,
                r.started_at,
                r.error,
                sa.func.row_number()
                .over(partition_by=(r.connection_id, r.stream), order_by=(r.started_at.desc(), r.id.desc()))
                .label("rn"),
            )
            .where(in_scope)
            .subquery()
        )
        stream_runs = conn.execute(
            sa.select(
                r.connection_id,
                r.stream,
                _total(in_24h, r.records).label("records_24h"),
                _total(in_24h, r.rejected).label("rejects_24h"),
                _latest(succeeded).label("last_success"),
                _count(finished).label("finished"),
            )
            .where(in_scope)
            .group_by(r.connection_id, r.stream)
        ).all()
        stream_last = conn.execute(sa.select(newest_run).where(newest_run.c.rn == 1)).all()
        states = conn.execute(
            sa.select(
                sync_state.c.connection_id,
                sync_state.c.stream,
                sync_state.c.last_success_at,
                sync_state.c.last_error,
            ).where(sync_state.c.connection_id.in_(scope))
        ).all()

        streams: dict[str, dict[str, dict[str, Any]]] = {}

        def entry(cid: str, stream: str) -> dict[str, Any]:
            return streams.setdefault(cid, {}).setdefault(
                stream,
                {
                    "last_success": None,
                    "last_run_at": None,
                    "last_run_status": None,
                    "last_error": None,
                    "records_24h": 0,
                    "rejects_24h": 0,
                    "finished": 0,
                },
            )

        for row in states:
            e = entry(row.connection_id, row.stream)
            e["last_success"] = utc(row.last_success_at)
            e["last_error"] = row.last_error
        for row in stream_runs:
            e = entry(row.connection_id, row.stream)
            e["records_24h"], e["rejects_24h"], e["finished"] = row.records_24h, row.rejects_24h, row.finished
            e["last_success"] = _newest(e["last_success"], utc(row.last_success))
        for row in stream_last:
            e = entry(row.connection_id, row.stream)
            e["last_run_at"], e["last_run_status"] = utc(row.started_at), row.status
            if row.status == "failed":
                e["last_error"] = row.error or e["last_error"]
            elif row.status == "succeeded":
                e["last_error"] = None

        inbox_rows = conn.execute(
            sa.select(inbox.c.connection_id, sa.func.count())
            .where(inbox.c.connection_id.in_(scope), inbox.c.status == "pending")
            .group_by(inbox.c.connection_id)
        ).all()
        outbox_rows = conn.execute(
            sa.select(
                outbox.c.connection_id,
                _count(outbox.c.status.in_(("pending", "sending"))).label("backlog"),
                _count(outbox.c.status == "dead").label("dead"),
            )
            .where(outbox.c.connection_id.in_(scope), outbox.c.status.in_(("pending", "sending", "dead")))
            .group_by(outbox.c.connection_id)
        ).all()
        open_incidents = conn.execute(
            sa.select(incidents)
            .where(incidents.c.connection_id.in_(scope), incidents.c.status == "open")
            .order_by(incidents.c.id)
        ).all()

        return cls(
            runs={row.connection_id: row for row in runs},
            streaks={row.connection_id: row for row in streaks},
            last_failed={row.connection_id: row for row in last_failed},
            streams=streams,
            inbox={cid: n for cid, n in inbox_rows},
            outbox={row.connection_id: row.backlog for row in outbox_rows},
            dead={row.connection_id: row.dead for row in outbox_rows},
            incidents={row.connection_id: row for row in open_incidents},  # newest open one wins
            day_starts=day_starts,
        )


def _newest(a: datetime | None, b: datetime | None) -> datetime | None:
    return max((v for v in (a, b) if v is not None), default=None)


# ------------------------------------------------------------------------------ rules


def _health_of(
    row: sa.Row, facts: _Facts, connectors: Mapping[str, LoadedConnector], now: datetime
) -> HealthDetails:
    cid = row.id
    loaded = connectors.get(row.connector)
    thresholds = loaded.spec.health if loaded is not None else HealthThresholds()
    title = loaded.spec.title if loaded is not None else row.connector

    runs = facts.runs.get(cid)
    streak = facts.streaks.get(cid)
    failed_row = facts.last_failed.get(cid)
    failures = int(streak.failures) if streak else 0
    successes = int(streak.successes) if streak else 0
    last_error = failed_row.error if failed_row else None
    breaker_open = failures > 0 and BREAKER_MARKER in (last_error or "").lower()

    sla = timedelta(minutes=thresholds.freshness_minutes)
    streams: list[StreamHealth] = []
    stale: list[str] = []
    for name, s in sorted(facts.streams.get(cid, {}).items()):
        last_ok = s["last_success"]
        if last_ok is not None:
            fresh = now - last_ok <= sla
            if not fresh:
                stale.append(
                    f"{name} last synced {format_duration(now - last_ok)} ago (SLA {format_duration(sla)})"
                )
        else:
            fresh = s["finished"] == 0
            if not fresh:
                stale.append(f"{name} never synced successfully (SLA {format_duration(sla)})")
        streams.append(
            StreamHealth(
                stream=name,
                last_success_at=last_ok,
                last_run_at=s["last_run_at"],
                last_run_status=s["last_run_status"],
                last_error=s["last_error"],
                records_24h=int(s["records_24h"]),
                rejects_24h=int(s["rejects_24h"]),
                fresh=fresh,
            )
        )

    finished_1h = int(runs.finished_1h) if runs else 0
    failed_1h = int(runs.failed_1h) if runs else 0
    finished_24h = int(runs.finished_24h) if runs else 0
    failed_24h = int(runs.failed_24h) if runs else 0
    rate_1h = failed_1h / finished_1h if finished_1h else None
    rate_24h = failed_24h / finished_24h if finished_24h else None
    inbox_backlog = int(facts.inbox.get(cid, 0))
    outbox_backlog = int(facts.outbox.get(cid, 0))
    dead = int(facts.dead.get(cid, 0))

    down: list[str] = []
    if failures >= thresholds.down_after_failures:
        down.append(f"{failures} runs in a row failed: {short_error(last_error)}")
    if breaker_open:
        down.append(f"circuit breaker open on the last run: {short_error(last_error)}")
    degraded: list[str] = []
    if rate_1h is not None and rate_1h > thresholds.degraded_error_rate:
        degraded.append(
            f"{failed_1h} of {finished_1h} runs failed in the last hour "
            f"({rate_1h:.0%}, threshold {thresholds.degraded_error_rate:.0%})"
        )
    degraded += stale
    if inbox_backlog > thresholds.backlog_warning:
        degraded.append(
            f"{inbox_backlog} inbound events waiting (warning above {thresholds.backlog_warning})"
        )
    if outbox_backlog > thresholds.backlog_warning:
        degraded.append(
            f"{outbox_backlog} outbound changes waiting (warning above {thresholds.backlog_warning})"
        )
    if dead:
        degraded.append(f"{dead} outbound change{'s' if dead != 1 else ''} dead-lettered")

    if row.status == "paused":
        status, reasons = "paused", ["connection is paused", *down, *degraded]
    elif down:
        status, reasons = "down", down + degraded
    elif degraded:
        status, reasons = "degraded", degraded
    else:
        status, reasons = "healthy", []

    history = []
    for i, start in enumerate(facts.day_starts):
        day_runs = int(getattr(runs, f"d{i}_runs")) if runs else 0
        day_failed = int(getattr(runs, f"d{i}_failed")) if runs else 0
        if not day_runs:
            day_status = "no_runs"
        elif not day_failed:
            day_status = "healthy"
        elif day_failed < day_runs:
            day_status = "degraded"
        else:
            day_status = "down"
        history.append(
            DayHealth(day=start.date().isoformat(), runs=day_runs, failed=day_failed, status=day_status)
        )

    inc = facts.incidents.get(cid)
    incident = (
        Incident(
            id=inc.id,
            severity=inc.severity,
            reason=inc.reason,
            opened_at=utc(inc.opened_at),
            last_error=inc.last_error,
            dagster_run_id=inc.dagster_run_id,
        )
        if inc is not None
        else None
    )

    last_success = _newest(utc(runs.last_success) if runs else None, None)
    for s in streams:
        last_success = _newest(last_success, s.last_success_at)

    health = ConnectionHealth(
        connection_id=cid,
        tenant_id=row.tenant_id,
        connector=row.connector,
        connector_title=title,
        status=status,
        reasons=reasons,
        last_success_at=last_success,
        error_rate_1h=rate_1h,
        error_rate_24h=rate_24h,
        records_24h=int(runs.records_24h) if runs else 0,
        rejects_24h=int(runs.rejects_24h) if runs else 0,
        inbox_backlog=inbox_backlog,
        outbox_backlog=outbox_backlog,
        dead_letters=dead,
        consecutive_failures=failures,
        breaker_open=breaker_open,
        incident=incident,
        streams=streams,
        history=history,
    )
    return HealthDetails(
        health=health,
        thresholds=thresholds,
        consecutive_successes=successes,
        ever_failed=bool(streak.ever_failed) if streak else False,
        last_failed_error=last_error,
        last_failed_run_id=failed_row.dagster_run_id if failed_row else None,
    )
