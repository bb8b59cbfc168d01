"""Incidents: one per problem of a connection, opened, escalated and resolved from its derived health.

:func:`evaluate_incidents` compares each connection's health with its open incident and
writes what changed to the ``incidents`` table; the changes it returns say which ones
deserve an alert (``notify``). The alert sender records what it sent with :func:`mark_alerted`.

* degraded or down without an open incident: an incident opens (notify). When an incident
  of the same connection was resolved within ``flap_window_minutes``, that incident is
  reopened instead, without notifying: a flapping connection does not spam.
* an open ``degraded`` incident of a connection now ``down`` escalates (notify, once).
* an open incident of a connection that is healthy again resolves once the connection has
  ``recovery_successes`` successful runs in a row since its last failure (or has never had
  a failed run); notify only if the incident's own alert was sent (``alerted_at`` set).
* a paused connection's incident is left as it is.

Evaluating again without new data changes nothing and returns no changes.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import sqlalchemy as sa

from integration_pipelines.canonical.tables import incidents
from integration_pipelines.connectors.registry import LoadedConnector
from integration_pipelines.health.derive import HealthDetails, derive_health_details, utc

ChangeKind = Literal["opened", "escalated", "resolved"]


@dataclass(frozen=True)
class IncidentChange:
    """One thing that happened to an incident in an evaluation."""

    kind: ChangeKind
    connection_id: str
    tenant_id: str
    connector: str
    incident_id: int
    severity: Literal["degraded", "down"]
    reason: str
    last_error: str | None  # redacted (it comes from sync_runs.error)
    since: datetime  # when the incident opened
    dagster_run_id: str | None  # the newest failed run's
    notify: bool  # send an alert for this change


def evaluate_incidents(
    engine: sa.Engine,
    *,
    now: datetime | None = None,
    connectors: Mapping[str, LoadedConnector] | Iterable[LoadedConnector] | None = None,
) -> list[IncidentChange]:
    """Open, escalate, reopen and resolve incidents from the connections' health; the changes made."""
    now = utc(now) or datetime.now(UTC)
    details = derive_health_details(engine, now=now, connectors=connectors)
    changes: list[IncidentChange] = []
    with engine.begin() as conn:
        for d in details:
            change = _evaluate_one(conn, d, now)
            if change is not None:
                changes.append(change)
    return changes


def mark_alerted(
    engine: sa.Engine, incident_id: int, kind: Literal["incident", "recovery"], when: datetime
) -> None:
    """Record that the alert of `kind` for incident `incident_id` went out at `when`."""
    if kind == "incident":
        values = {"alerted_at": utc(when)}
    elif kind == "recovery":
        values = {"recovery_alerted_at": utc(when)}
    else:
        raise ValueError(f"kind must be 'incident' or 'recovery', not {kind!r}")
    with engine.begin() as conn:
        result = conn.execute(incidents.update().where(incidents.c.id == incident_id).values(**values))
    if result.rowcount == 0:
        raise LookupError(f"no incident {incident_id}")


def _reason(d: HealthDetails) -> str:
    """The incident's reason: the health's first (most severe) reason, in plain words."""
    return d.health.reasons[0] if d.health.reasons else d.health.status


def _change(kind: ChangeKind, d: HealthDetails, row: sa.Row | dict, notify: bool) -> IncidentChange:
    get = row.get if isinstance(row, dict) else row._mapping.get
    return IncidentChange(
        kind=kind,
        connection_id=d.health.connection_id,
        tenant_id=d.health.tenant_id,
        connector=d.health.connector,
        incident_id=get("id"),
        severity=get("severity"),
        reason=get("reason"),
        last_error=get("last_error"),
        since=utc(get("opened_at")),
        dagster_run_id=get("dagster_run_id"),
        notify=notify,
    )


def _evaluate_one(conn: sa.Connection, d: HealthDetails, now: datetime) -> IncidentChange | None:
    h = d.health
    status = h.status
    if status == "paused":
        return None
    open_row = conn.execute(
        sa.select(incidents)
        .where(incidents.c.connection_id == h.connection_id, incidents.c.status == "open")
        .order_by(incidents.c.id.desc())
        .limit(1)
    ).first()

    if status in ("degraded", "down"):
        if open_row is None:
            return _open(conn, d, now)
        if open_row.severity == "degraded" and status == "down":
            values = {
                "severity": "down",
                "reason": _reason(d),
                "last_error": d.last_failed_error,
                "dagster_run_id": d.last_failed_run_id,
                "updated_at": now,
            }
            conn.execute(incidents.update().where(incidents.c.id == open_row.id).values(**values))
            return _change("escalated", d, {**open_row._asdict(), **values}, notify=True)
        if d.last_failed_run_id != open_row.dagster_run_id and d.last_failed_run_id is not None:
            # newer failures of the same incident: keep its error current, without a change
            conn.execute(
                incidents.update()
                .where(incidents.c.id == open_row.id)
                .values(last_error=d.last_failed_error, dagster_run_id=d.last_failed_run_id, updated_at=now)
            )
        return None

    # healthy
    if open_row is None:
        return None
    recovered = not d.ever_failed or d.consecutive_successes >= d.thresholds.recovery_successes
    if not recovered:
        return None
    conn.execute(
        incidents.update()
        .where(incidents.c.id == open_row.id)
        .values(status="resolved", resolved_at=now, updated_at=now)
    )
    return _change("resolved", d, open_row, notify=open_row.alerted_at is not None)


def _open(conn: sa.Connection, d: HealthDetails, now: datetime) -> IncidentChange:
    h = d.health
    window = timedelta(minutes=d.thresholds.flap_window_minutes)
    recent = conn.execute(
        sa.select(incidents)
        .where(
            incidents.c.connection_id == h.connection_id,
            incidents.c.status == "resolved",
            incidents.c.resolved_at >= now - window,
        )
        .order_by(incidents.c.resolved_at.desc(), incidents.c.id.desc())
        .limit(1)
    ).first()
    values = {
        "status": "open",
        "severity": h.status,
        "reason": _reason(d),
        "last_error": d.last_failed_error,
        "dagster_run_id": d.last_failed_run_id,
        "updated_at": now,
    }
    if recent is not None and window > timedelta(0):
        values |= {"resolved_at": None, "recovery_alerted_at": None}
        conn.execute(incidents.update().where(incidents.c.id == recent.id).values(**values))
        return _change("opened", d, {**recent._asdict(), **values}, notify=False)
    values["opened_at"] = now
    incident_id = conn.execute(
        incidents.insert().values(connection_id=h.connection_id, **values)
    ).inserted_primary_key[0]
    return _change("opened", d, {**values, "id": incident_id}, notify=True)
