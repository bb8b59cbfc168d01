"""Incidents from health: open once, escalate once, resolve, reopen quietly when flapping."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from integration_pipelines.canonical.tables import incidents
from integration_pipelines.connectors.registry import LoadedConnector, load_connectors
from integration_pipelines.connectors.spec import HealthThresholds
from integration_pipelines.health.derive import utc
from integration_pipelines.health.incidents import evaluate_incidents, mark_alerted
from tests.health.test_derive import NOW, History


def at(minutes_ago: float):
    return NOW - timedelta(minutes=minutes_ago)


def beeline_with(**thresholds) -> dict[str, LoadedConnector]:
    beeline = load_connectors()["beeline"]
    spec = beeline.spec.model_copy(update={"health": HealthThresholds(**thresholds)})
    return {"beeline": LoadedConnector(spec=spec, path=beeline.path)}


def rows(engine: sa.Engine, connection_id: str) -> list[sa.Row]:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(incidents).where(incidents.c.connection_id == connection_id).order_by(incidents.c.id)
        ).all()


def test_three_failures_open_exactly_one_incident(engine, tenant):
    h = History(engine, tenant)
    h.run("succeeded", 240)
    h.run("failed", 200)
    h.run("failed", 190)
    last = h.run("failed", 180, error="beeline GET /jobs: 502 Bad Gateway after 5 attempts")

    changes = evaluate_incidents(engine, now=at(175))

    assert len(changes) == 1
    [change] = changes
    assert change.kind == "opened" and change.notify
    assert (change.connection_id, change.tenant_id, change.connector) == (h.id, tenant, "beeline")
    assert change.severity == "down"
    assert change.reason.startswith("3 runs in a row failed: beeline GET /jobs: 502 Bad Gateway")
    assert change.last_error == "beeline GET /jobs: 502 Bad Gateway after 5 attempts"
    assert change.dagster_run_id == last
    assert change.since == at(175)
    [row] = rows(engine, h.id)
    assert (row.id, row.status, row.severity, row.dagster_run_id) == (
        change.incident_id,
        "open",
        "down",
        last,
    )
    assert utc(row.opened_at) == utc(row.updated_at) == at(175) and row.resolved_at is None

    assert evaluate_incidents(engine, now=at(175)) == []
    assert evaluate_incidents(engine, now=at(174)) == []  # still down, nothing new
    assert [(r.id, utc(r.updated_at)) for r in rows(engine, h.id)] == [(row.id, at(175))]


def test_healthy_connections_open_nothing(engine, tenant):
    h = History(engine, tenant)
    h.run("succeeded", 10)
    paused = History(engine, tenant, connector="textkernel", status="paused")
    for minutes in (30, 20, 10):
        paused.run("failed", minutes)
    assert evaluate_incidents(engine, now=NOW) == []
    assert rows(engine, h.id) == [] and rows(engine, paused.id) == []


@pytest.mark.parametrize("alerted", [False, True])
def test_recovery_resolves_and_notifies_only_if_alerted(engine, tenant, alerted):
    h = History(engine, tenant)
    for minutes in (200, 190, 180):
        h.run("failed", minutes)
    [opened] = evaluate_incidents(engine, now=at(175))
    if alerted:
        mark_alerted(engine, opened.incident_id, "incident", at(174))
    h.run("succeeded", 100)

    changes = evaluate_incidents(engine, now=NOW)

    assert len(changes) == 1
    [resolved] = changes
    assert resolved.kind == "resolved" and resolved.incident_id == opened.incident_id
    assert resolved.notify is alerted
    assert resolved.since == at(175) and resolved.severity == "down"
    [row] = rows(engine, h.id)
    assert row.status == "resolved" and utc(row.resolved_at) == NOW
    assert (row.alerted_at is not None) is alerted
    assert evaluate_incidents(engine, now=NOW) == []


def test_recovery_waits_for_enough_successes(engine, tenant):
    connectors = beeline_with(recovery_successes=2, degraded_error_rate=1.0)
    h = History(engine, tenant)
    for minutes in (60, 50, 40):
        h.run("failed", minutes)
    assert [c.kind for c in evaluate_incidents(engine, now=at(35), connectors=connectors)] == ["opened"]
    h.run("succeeded", 30)
    assert evaluate_incidents(engine, now=at(25), connectors=connectors) == []
    h.run("succeeded", 20)
    assert [c.kind for c in evaluate_incidents(engine, now=at(15), connectors=connectors)] == ["resolved"]


def test_flapping_reopens_without_notifying(engine, tenant):
    connectors = beeline_with(degraded_error_rate=1.0, flap_window_minutes=30)
    h = History(engine, tenant)
    for minutes in (200, 190, 180):
        h.run("failed", minutes)
    [opened] = evaluate_incidents(engine, now=at(175), connectors=connectors)
    mark_alerted(engine, opened.incident_id, "incident", at(175))
    h.run("succeeded", 170)
    [resolved] = evaluate_incidents(engine, now=at(165), connectors=connectors)
    assert resolved.kind == "resolved" and resolved.notify
    mark_alerted(engine, resolved.incident_id, "recovery", at(165))
    for minutes in (164, 162, 160):
        h.run("failed", minutes)

    changes = evaluate_incidents(engine, now=at(150), connectors=connectors)

    assert len(changes) == 1
    [again] = changes
    assert again.kind == "opened" and not again.notify
    assert again.incident_id == opened.incident_id and again.since == at(175)
    [row] = rows(engine, h.id)
    assert row.status == "open" and row.resolved_at is None and row.recovery_alerted_at is None
    assert row.alerted_at is not None
    assert evaluate_incidents(engine, now=at(150), connectors=connectors) == []


def test_a_failure_after_the_flap_window_opens_a_new_incident(engine, tenant):
    connectors = beeline_with(degraded_error_rate=1.0, flap_window_minutes=30)
    h = History(engine, tenant)
    for minutes in (200, 190, 180):
        h.run("failed", minutes)
    [first] = evaluate_incidents(engine, now=at(175), connectors=connectors)
    h.run("succeeded", 170)
    evaluate_incidents(engine, now=at(165), connectors=connectors)
    for minutes in (120, 110, 100):
        h.run("failed", minutes)

    [second] = evaluate_incidents(engine, now=at(95), connectors=connectors)

    assert second.kind == "opened" and second.notify
    assert second.incident_id != first.incident_id
    assert [r.status for r in rows(engine, h.id)] == ["resolved", "open"]


def test_degraded_escalates_to_down_once(engine, tenant):
    h = History(engine, tenant)
    h.run("succeeded", 30)
    h.run("failed", 20)
    [opened] = evaluate_incidents(engine, now=at(15))
    assert (opened.kind, opened.severity, opened.notify) == ("opened", "degraded", True)
    assert "1 of 2 runs failed in the last hour" in opened.reason

    h.run("failed", 10)
    assert evaluate_incidents(engine, now=at(8)) == []  # two in a row: still degraded
    last = h.run("failed", 5)
    changes = evaluate_incidents(engine, now=at(3))

    assert len(changes) == 1
    [escalated] = changes
    assert (escalated.kind, escalated.severity, escalated.notify) == ("escalated", "down", True)
    assert escalated.incident_id == opened.incident_id and escalated.since == at(15)
    assert escalated.dagster_run_id == last
    assert escalated.reason.startswith("3 runs in a row failed")
    assert evaluate_incidents(engine, now=at(3)) == []
    assert evaluate_incidents(engine, now=at(2)) == []
    [row] = rows(engine, h.id)
    assert (row.status, row.severity) == ("open", "down")


def test_mark_alerted(engine, tenant):
    h = History(engine, tenant)
    for minutes in (30, 20, 10):
        h.run("failed", minutes)
    [opened] = evaluate_incidents(engine, now=NOW)
    mark_alerted(engine, opened.incident_id, "incident", at(1))
    mark_alerted(engine, opened.incident_id, "recovery", NOW)
    [row] = rows(engine, h.id)
    assert utc(row.alerted_at) == at(1) and utc(row.recovery_alerted_at) == NOW
    with pytest.raises(ValueError):
        mark_alerted(engine, opened.incident_id, "page", NOW)  # type: ignore[arg-type]
    with pytest.raises(LookupError):
        mark_alerted(engine, opened.incident_id + 999, "incident", NOW)
