"""Health derivation: each status from synthetic run history, the 7-day strip, filters, thresholds."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from integration_pipelines.canonical.tables import (
    connections,
    inbox,
    incidents,
    outbox,
    sync_runs,
    sync_state,
    tenants,
)
from integration_pipelines.connectors.registry import LoadedConnector, load_connectors
from integration_pipelines.connectors.spec import HealthThresholds
from integration_pipelines.health.derive import derive_health, format_duration

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
BREAKER_ERROR = (
    "beeline GET /jobs: not called -- the circuit breaker is open after 5 failed calls in a row; "
    "calls resume after 30s, check the partner's status meanwhile"
)
_ids = itertools.count(1)


class History:
    """One connection with hand-written history: runs, sync state, inbox and outbox rows."""

    def __init__(self, engine: sa.Engine, tenant: str, connector: str = "beeline", status: str = "active"):
        self.engine = engine
        self.id = f"{tenant}/{connector}"
        with engine.begin() as conn:
            if conn.execute(sa.select(tenants.c.id).where(tenants.c.id == tenant)).first() is None:
                conn.execute(
                    tenants.insert().values(id=tenant, name=tenant, created_at=NOW - timedelta(days=30))
                )
            conn.execute(
                connections.insert().values(
                    id=self.id,
                    tenant_id=tenant,
                    connector=connector,
                    config={},
                    status=status,
                    created_at=NOW - timedelta(days=30),
                )
            )

    def run(
        self,
        status: str,
        minutes_ago: float,
        stream: str = "job_postings",
        records: int = 0,
        rejected: int = 0,
        error: str | None = None,
    ) -> str:
        """A run that finished `minutes_ago` before NOW (a running one has no finish)."""
        finished = NOW - timedelta(minutes=minutes_ago)
        run_id = f"run-{next(_ids)}"
        if status == "failed" and error is None:
            error = "beeline GET /jobs: 503 Service Unavailable after 5 attempts"
        with self.engine.begin() as conn:
            conn.execute(
                sync_runs.insert().values(
                    connection_id=self.id,
                    stream=stream,
                    dagster_run_id=run_id,
                    started_at=finished - timedelta(minutes=1),
                    finished_at=None if status == "running" else finished,
                    status=status,
                    records=records,
                    rejected=rejected,
                    error=error,
                )
            )
        if status == "succeeded":
            self.state(stream, finished)
        return run_id

    def state(self, stream: str, last_success_at: datetime | None, last_error: str | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sync_state.delete().where(
                    sync_state.c.connection_id == self.id, sync_state.c.stream == stream
                )
            )
            conn.execute(
                sync_state.insert().values(
                    connection_id=self.id,
                    stream=stream,
                    last_success_at=last_success_at,
                    last_error=last_error,
                    updated_at=NOW,
                )
            )

    def inbox(self, count: int, status: str = "pending") -> None:
        with self.engine.begin() as conn:
            conn.execute(
                inbox.insert(),
                [
                    {
                        "connection_id": self.id,
                        "event_id": f"ev-{next(_ids)}",
                        "event_type": "job.updated",
                        "received_at": NOW,
                        "payload": {},
                        "status": status,
                    }
                    for _ in range(count)
                ],
            )

    def outbox(self, count: int, status: str = "pending") -> None:
        with self.engine.begin() as conn:
            conn.execute(
                outbox.insert(),
                [
                    {
                        "connection_id": self.id,
                        "stream": "submissions",
                        "entity": "submission",
                        "record_id": f"rec-{next(_ids)}",
                        "operation": "update",
                        "payload": {},
                        "status": status,
                        "next_attempt_at": NOW,
                        "created_at": NOW,
                    }
                    for _ in range(count)
                ],
            )


def health_of(engine: sa.Engine, connection_id: str, **kwargs):
    [health] = derive_health(engine, now=NOW, connection_id=connection_id, **kwargs)
    return health


def test_healthy_connection_sums_the_last_day(engine, tenant):
    h = History(engine, tenant)
    h.run("succeeded", 30 * 60, records=1000, rejected=50)  # 30 h ago: outside the 24 h window
    h.run("succeeded", 90, records=10, rejected=1)
    h.run("succeeded", 20, stream="placements", records=5)
    h.run("succeeded", 10, records=7, rejected=2)

    health = health_of(engine, h.id)

    assert health.status == "healthy"
    assert health.reasons == []
    assert health.connector == "beeline" and health.connector_title == load_connectors()["beeline"].spec.title
    assert health.tenant_id == tenant
    assert health.last_success_at == NOW - timedelta(minutes=10)
    assert health.error_rate_1h == 0.0 and health.error_rate_24h == 0.0
    assert (health.records_24h, health.rejects_24h) == (22, 3)
    assert health.consecutive_failures == 0 and not health.breaker_open
    assert health.incident is None
    streams = {s.stream: s for s in health.streams}
    assert set(streams) == {"job_postings", "placements"}
    assert streams["job_postings"].records_24h == 17 and streams["job_postings"].rejects_24h == 3
    assert streams["job_postings"].fresh and streams["job_postings"].last_run_status == "succeeded"


def test_no_runs_means_no_rates_and_healthy(engine, tenant):
    h = History(engine, tenant)
    health = health_of(engine, h.id)
    assert health.status == "healthy"
    assert health.error_rate_1h is None and health.error_rate_24h is None
    assert health.last_success_at is None and health.streams == []
    assert [d.status for d in health.history] == ["no_runs"] * 7


def test_degraded_by_error_rate_in_the_last_hour(engine, tenant):
    h = History(engine, tenant)
    for minutes in (50, 40, 30):
        h.run("succeeded", minutes)
    h.run("failed", 20)
    h.run("succeeded", 10)  # the failure streak is broken: not down

    health = health_of(engine, h.id)

    assert health.error_rate_1h == pytest.approx(0.2)
    assert health.status == "healthy"  # 1 of 5 = 20 % is not above the 20 % threshold

    h.run("failed", 5)
    health = health_of(engine, h.id)
    assert health.error_rate_1h == pytest.approx(2 / 6)
    assert health.status == "degraded"
    assert any("2 of 6 runs failed in the last hour" in r for r in health.reasons)
    assert health.consecutive_failures == 1


def test_degraded_by_freshness(engine, tenant):
    h = History(engine, tenant)
    h.run("succeeded", 180)  # job_postings: 3 h ago, SLA 2 h
    h.run("succeeded", 10, stream="placements")

    health = health_of(engine, h.id)

    assert health.status == "degraded"
    assert health.reasons == ["job_postings last synced 3 h ago (SLA 2 h)"]
    assert {s.stream: s.fresh for s in health.streams} == {"job_postings": False, "placements": True}


def test_a_stream_that_never_succeeded_is_not_fresh_once_it_has_runs(engine, tenant):
    h = History(engine, tenant)
    h.run("succeeded", 10)
    h.run("running", 0, stream="submissions")  # a first run in flight is not yet stale
    assert health_of(engine, h.id).status == "healthy"
    h.run("interrupted", 5, stream="placements")

    health = health_of(engine, h.id)

    assert health.status == "degraded"
    assert health.reasons == ["placements never synced successfully (SLA 2 h)"]


def test_degraded_by_backlog_and_dead_letters(engine, tenant):
    h = History(engine, tenant)
    h.run("succeeded", 10)
    h.inbox(3)
    h.inbox(20, status="applied")
    h.outbox(2, status="pending")
    h.outbox(1, status="sending")
    h.outbox(5, status="delivered")
    h.outbox(4, status="superseded")
    beeline = load_connectors()["beeline"]
    tight = LoadedConnector(
        spec=beeline.spec.model_copy(update={"health": HealthThresholds(backlog_warning=2)}),
        path=beeline.path,
    )

    relaxed = health_of(engine, h.id)
    assert (relaxed.inbox_backlog, relaxed.outbox_backlog, relaxed.dead_letters) == (3, 3, 0)
    assert relaxed.status == "healthy"  # under the default warning of 500

    health = health_of(engine, h.id, connectors={"beeline": tight})
    assert health.status == "degraded"
    assert health.reasons == [
        "3 inbound events waiting (warning above 2)",
        "3 outbound changes waiting (warning above 2)",
    ]

    h.outbox(2, status="dead")
    health = health_of(engine, h.id)
    assert health.status == "degraded" and health.dead_letters == 2
    assert health.reasons == ["2 outbound changes dead-lettered"]


def test_down_after_consecutive_failures_across_streams(engine, tenant):
    h = History(engine, tenant)
    h.run("succeeded", 40)
    h.run("failed", 30, stream="placements")
    h.run("interrupted", 25)  # neither extends nor breaks the streak
    h.run("failed", 20)
    assert health_of(engine, h.id).status == "degraded"  # two in a row: not yet down
    h.run(
        "failed", 10, stream="submissions", error="beeline GET /submissions: 500 Internal Server Error\ntrace"
    )

    health = health_of(engine, h.id)

    assert health.status == "down"
    assert health.consecutive_failures == 3
    assert health.reasons[0] == "3 runs in a row failed: beeline GET /submissions: 500 Internal Server Error"
    assert not health.breaker_open
    last = {s.stream: s for s in health.streams}["submissions"]
    assert last.last_run_status == "failed" and last.last_error.startswith("beeline GET /submissions: 500")


def test_down_when_the_breaker_was_open(engine, tenant):
    h = History(engine, tenant)
    h.run("succeeded", 30)
    h.run("failed", 10, error=BREAKER_ERROR)

    health = health_of(engine, h.id)

    assert health.status == "down"
    assert health.breaker_open and health.consecutive_failures == 1
    assert health.reasons[0].startswith("circuit breaker open on the last run: beeline GET /jobs: not called")

    h.run("succeeded", 5)  # the breaker closed again
    health = health_of(engine, h.id)
    assert not health.breaker_open and health.status == "degraded"  # 1 of 3 failed in the hour


def test_paused_overrides_everything(engine, tenant):
    h = History(engine, tenant, status="paused")
    for minutes in (30, 20, 10):
        h.run("failed", minutes)

    health = health_of(engine, h.id)

    assert health.status == "paused"
    assert health.reasons[0] == "connection is paused"
    assert health.consecutive_failures == 3


def test_seven_day_history(engine, tenant):
    h = History(engine, tenant)
    day = 24 * 60
    noon_offset = 0  # NOW is 12:00 UTC, so k days ago at the same time is still day -k
    h.run("succeeded", 8 * day)  # outside the strip
    h.run("succeeded", 6 * day + noon_offset)
    h.run("succeeded", 5 * day)
    h.run("failed", 5 * day - 60)
    h.run("failed", 3 * day)
    h.run("failed", 3 * day - 60)
    h.run("running", 1 * day)  # unfinished runs are not counted
    h.run("succeeded", 10)

    health = health_of(engine, h.id)

    assert [d.day for d in health.history] == [
        "2026-03-04",
        "2026-03-05",
        "2026-03-06",
        "2026-03-07",
        "2026-03-08",
        "2026-03-09",
        "2026-03-10",
    ]
    assert [(d.runs, d.failed, d.status) for d in health.history] == [
        (1, 0, "healthy"),
        (2, 1, "degraded"),
        (0, 0, "no_runs"),
        (2, 2, "down"),
        (0, 0, "no_runs"),
        (0, 0, "no_runs"),
        (1, 0, "healthy"),
    ]
    assert health.error_rate_24h == 0.0


def test_tenant_and_connection_filters(engine, tenant):
    a = History(engine, tenant)
    b = History(engine, tenant, connector="textkernel")
    other = History(engine, f"{tenant}x")
    other.run("failed", 10)
    a.run("succeeded", 10)

    mine = derive_health(engine, now=NOW, tenant_id=tenant)
    assert [x.connection_id for x in mine] == sorted([a.id, b.id])
    assert [x.connection_id for x in derive_health(engine, now=NOW, connection_id=other.id)] == [other.id]
    everyone = derive_health(engine, now=NOW)
    assert [x.connection_id for x in everyone] == sorted([a.id, b.id, other.id])
    assert {x.connection_id: x.records_24h for x in mine} == {a.id: 0, b.id: 0}
    assert derive_health(engine, now=NOW, tenant_id="nobody") == []


def test_open_incident_is_attached(engine, tenant):
    h = History(engine, tenant)
    with engine.begin() as conn:
        conn.execute(
            incidents.insert().values(
                connection_id=h.id,
                status="open",
                severity="down",
                reason="3 runs in a row failed",
                last_error="boom",
                dagster_run_id="run-x",
                opened_at=NOW - timedelta(hours=1),
                updated_at=NOW,
            )
        )
    incident = health_of(engine, h.id).incident
    assert incident is not None
    assert (incident.severity, incident.reason, incident.dagster_run_id) == (
        "down",
        "3 runs in a row failed",
        "run-x",
    )
    assert incident.opened_at == NOW - timedelta(hours=1)


def test_aggregate_queries_do_not_grow_with_runs(engine, tenant):
    h = History(engine, tenant)
    statements: list[str] = []

    def count(*args):
        statements.append(args[2])

    h.run("succeeded", 10)
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        health_of(engine, h.id)
        few = len(statements)
        for minutes in range(20, 200, 5):
            h.run("succeeded", minutes)
        statements.clear()
        health_of(engine, h.id)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == few <= 12


def test_format_duration():
    assert format_duration(timedelta(minutes=12)) == "12 min"
    assert format_duration(timedelta(minutes=119)) == "119 min"
    assert format_duration(timedelta(hours=3, minutes=20)) == "3 h"
    assert format_duration(timedelta(days=3)) == "3 d"
