"""Sensors that turn connection health into incidents and alerts.

`connection_health` re-evaluates every connection each minute; `sync_run_failed` reacts to a
failed sync run at once, so on-call hears within one failure cycle. Both go through the
incident logic, which keeps one alert per incident however often they run.
"""

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import sqlalchemy as sa

from integration_pipelines.canonical.tables import connections, incidents
from integration_pipelines.connectors.registry import LoadedConnector
from integration_pipelines.health.alerts import notify_changes
from integration_pipelines.resources.dagster_resources import IntegrationDatabase

PARTITION_TAG = "dagster/partition"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def summarise(engine: sa.Engine, changes: Sequence[Any], alerts_sent: int) -> str:
    """``2 incidents opened, 1 resolved, 3 alerts sent`` or ``all 8 connections healthy``."""
    if changes:
        kinds = Counter(c.kind for c in changes)
        parts = [
            f"{_plural(kinds[k], 'incident') if i == 0 else kinds[k]} {k}"
            for i, k in enumerate(k for k in ("opened", "escalated", "resolved") if kinds[k])
        ]
        return ", ".join([*parts, f"{_plural(alerts_sent, 'alert')} sent"])
    with engine.connect() as conn:
        total = conn.scalar(sa.select(sa.func.count()).select_from(connections)) or 0
        open_ = conn.scalar(sa.select(sa.func.count()).where(incidents.c.status == "open")) or 0
    if not open_:
        return f"all {_plural(total, 'connection')} healthy"
    return f"no change: {_plural(open_, 'open incident')} across {_plural(total, 'connection')}"


def evaluate_and_notify(engine: sa.Engine, connectors: Mapping[str, LoadedConnector] | None = None) -> str:
    """Open, escalate and resolve incidents, send the alerts due; returns the summary line."""
    from integration_pipelines.health.incidents import evaluate_incidents

    changes = evaluate_incidents(engine, connectors=connectors)
    sent = notify_changes(engine, changes)
    return summarise(engine, changes, sent)


def build_health_sensor(connectors: Mapping[str, LoadedConnector] | None = None) -> dg.SensorDefinition:
    """Every minute: derive health, update incidents, alert on what changed."""

    @dg.sensor(
        name="connection_health",
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Opens, escalates and resolves incidents from connections' health; sends alerts.",
    )
    def connection_health(
        context: dg.SensorEvaluationContext, database: IntegrationDatabase
    ) -> dg.SkipReason:
        summary = evaluate_and_notify(database.engine(), connectors)
        context.log.info(summary)
        return dg.SkipReason(summary)

    return connection_health


def build_run_failure_sensor(connectors: Mapping[str, LoadedConnector] | None = None) -> dg.SensorDefinition:
    """On a failed run: log it and evaluate incidents at once instead of waiting for the next tick."""

    @dg.run_failure_sensor(
        name="sync_run_failed",
        monitor_all_code_locations=False,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Evaluates incidents as soon as a run fails, so on-call hears within one failure cycle.",
    )
    def sync_run_failed(context: dg.RunFailureSensorContext, database: IntegrationDatabase) -> None:
        run = context.dagster_run
        partition = run.tags.get(PARTITION_TAG)
        failure = context.failure_event.message if context.failure_event else None
        context.log.warning(
            f"run {run.run_id} of {run.job_name} failed"
            + (f" for connection {partition}" if partition else "")
            + (f": {failure}" if failure else "")
        )
        if partition is None:
            return
        summary = evaluate_and_notify(database.engine(), connectors)
        context.log.info(f"after the failure of {partition}: {summary}")

    return sync_run_failed
